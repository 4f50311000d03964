//! The processes attached to a bus: one entry per process-table row (a process holds one per
//! handle: its bus, each publisher, each subscriber) with what the row does and the process's
//! command line; the rows folded per process; counts by role; and the bridges among them.

use serde::Serialize;
use shm_ring::{BridgeRow, ProcessRow, Role, Snapshot};
use std::collections::HashSet;

/// One process-table row.
#[derive(Serialize, Debug)]
pub struct Process {
    /// Row index.
    pub row: u32,
    /// Process id.
    pub pid: u32,
    /// Whether the process runs.
    pub alive: bool,
    /// `bus`, `publisher`, `subscriber`, `group_member`, `holder` or `unknown`.
    pub role: &'static str,
    /// Group of a group member.
    pub group: Option<String>,
    /// Next position the subscriber reads.
    pub cursor: Option<u64>,
    /// Messages published that the subscriber has not received.
    pub lag: Option<u64>,
    /// A lossy subscriber (publishers take what it has not read rather than wait for it).
    pub lossy: bool,
    /// Messages a lossy subscriber missed that way.
    pub missed: u64,
    /// Messages received and acknowledged.
    pub delivered: u64,
    /// Messages published.
    pub published: u64,
    /// Messages received that a dead member had in flight.
    pub redelivered: u64,
    /// Last heartbeat, ns since the Unix epoch.
    pub last_heartbeat_ns: u64,
    /// Consumer entry of a subscriber or group member.
    pub consumer: Option<u32>,
    /// Messages it published that no consumer wanted.
    pub unrouted: u64,
    /// A publisher waiting for room: the consumer entries holding the slot it needs.
    pub waiting_for: Vec<u32>,
    /// Since when it waits, ns since the Unix epoch (0: not waiting).
    pub waiting_since_ns: u64,
    /// The process's command line (`/proc/PID/cmdline`, arguments joined by spaces) while it
    /// is alive and readable; null otherwise.
    pub command: Option<String>,
    /// A holder row: slab blocks its process keeps (views of received buffers, loans).
    pub held_blocks: u64,
    /// Their bytes (block sizes).
    pub held_bytes: u64,
    /// A subscriber: messages whose buffers it got as private copies, past its hold bounds.
    pub copies: u64,
}

impl Process {
    fn of(p: &ProcessRow) -> Process {
        Process {
            row: p.row,
            pid: p.pid,
            alive: p.alive,
            role: role_name(p.role),
            group: p.group.clone(),
            cursor: p.cursor,
            lag: p.lag,
            lossy: p.lossy,
            missed: p.missed,
            delivered: p.delivered,
            published: p.published,
            redelivered: p.redelivered,
            last_heartbeat_ns: p.last_heartbeat_ns,
            consumer: p.consumer,
            unrouted: p.unrouted,
            waiting_for: p.waiting_for.clone(),
            waiting_since_ns: p.waiting_since_ns,
            command: p.alive.then(|| command_of(p.pid)).flatten(),
            held_blocks: p.held_blocks,
            held_bytes: p.held_bytes,
            copies: p.copies,
        }
    }

    /// Whether the row receives messages (a fan-out subscriber or a group member).
    pub fn subscribes(&self) -> bool {
        matches!(self.role, "subscriber" | "group_member")
    }
}

/// The process-table rows of `s`, in row order, with the command lines of the live processes.
pub fn processes(s: &Snapshot) -> Vec<Process> {
    s.processes.iter().map(Process::of).collect()
}

/// The command line of live process `pid`, arguments joined by spaces (`None` when it cannot
/// be read: gone, or another user's process on a hardened /proc).
pub fn command_of(pid: u32) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let words: Vec<String> = raw
        .split(|&b| b == 0)
        .filter(|w| !w.is_empty())
        .map(|w| String::from_utf8_lossy(w).into_owned())
        .collect();
    (!words.is_empty()).then(|| words.join(" "))
}

/// The JSON name of a role.
pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::Bus => "bus",
        Role::Publisher => "publisher",
        Role::Subscriber => "subscriber",
        Role::GroupMember => "group_member",
        Role::Holder => "holder",
        _ => "unknown",
    }
}

/// Counts by kind of attachment.
#[derive(Serialize, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Distinct processes (pid and start time) holding rows.
    pub processes: u32,
    /// Of those, processes that are alive.
    pub alive: u32,
    /// Process-table rows in use (a process holds one per bus handle, publisher and subscriber).
    pub rows: u32,
    /// Publisher rows.
    pub publishers: u32,
    /// Fan-out subscriber rows.
    pub subscribers: u32,
    /// Group member rows.
    pub group_members: u32,
    /// Attached bus handles.
    pub handles: u32,
    /// Groups.
    pub groups: u32,
    /// Distinct processes holding at least one publisher row.
    pub publishing_processes: u32,
    /// Distinct processes holding at least one fan-out subscriber row.
    pub subscribing_processes: u32,
    /// Distinct processes holding at least one group member row.
    pub member_processes: u32,
}

/// Counts of `snap`'s rows by role.
pub fn summary(snap: &Snapshot) -> Summary {
    let mut s = Summary {
        groups: snap.groups.len() as u32,
        ..Summary::default()
    };
    let mut seen = HashSet::new();
    let mut seen_in_role = HashSet::new();
    for p in &snap.processes {
        s.rows += 1;
        if seen.insert((p.pid, p.start_time)) {
            s.processes += 1;
            s.alive += u32::from(p.alive);
        }
        let first_of_role =
            u32::from(seen_in_role.insert((p.pid, p.start_time, role_name(p.role))));
        match p.role {
            Role::Publisher => {
                s.publishers += 1;
                s.publishing_processes += first_of_role;
            }
            Role::Subscriber => {
                s.subscribers += 1;
                s.subscribing_processes += first_of_role;
            }
            Role::GroupMember => {
                s.group_members += 1;
                s.member_processes += first_of_role;
            }
            Role::Bus => s.handles += 1,
            _ => {}
        }
    }
    s
}

/// One attached process with its rows folded together (what the readable view lists).
#[derive(Debug, PartialEq, Eq)]
pub struct ProcessSummary {
    /// Process id.
    pub pid: u32,
    /// Whether it runs.
    pub alive: bool,
    /// Its rows.
    pub rows: u32,
    /// Publisher rows.
    pub publishers: u32,
    /// Fan-out subscriber rows.
    pub subscribers: u32,
    /// Of those, lossy ones.
    pub lossy: u32,
    /// Messages its lossy subscribers missed.
    pub missed: u64,
    /// Groups it is a member of, in row order, each once.
    pub groups: Vec<String>,
    /// Messages it published.
    pub published: u64,
    /// Messages it received and acknowledged.
    pub delivered: u64,
    /// Largest lag of its subscriber rows (`None` when it does not subscribe).
    pub lag: Option<u64>,
    /// Its command line (see [`Process::command`]).
    pub command: Option<String>,
    /// Slab blocks it holds (views and loans).
    pub held_blocks: u64,
    /// Their bytes.
    pub held_bytes: u64,
    /// Messages its subscribers got as private copies past their hold bounds.
    pub copies: u64,
}

impl ProcessSummary {
    fn new(p: &Process) -> ProcessSummary {
        ProcessSummary {
            pid: p.pid,
            alive: p.alive,
            rows: 0,
            publishers: 0,
            subscribers: 0,
            lossy: 0,
            missed: 0,
            groups: Vec::new(),
            published: 0,
            delivered: 0,
            lag: None,
            command: p.command.clone(),
            held_blocks: 0,
            held_bytes: 0,
            copies: 0,
        }
    }

    /// Adds row `p` of this process.
    fn add(&mut self, p: &Process) {
        self.rows += 1;
        self.published += p.published;
        self.delivered += p.delivered;
        self.lossy += u32::from(p.lossy);
        self.missed += p.missed;
        self.held_blocks += p.held_blocks;
        self.held_bytes += p.held_bytes;
        self.copies += p.copies;
        if let Some(lag) = p.lag {
            self.lag = Some(self.lag.map_or(lag, |l| l.max(lag)));
        }
        match p.role {
            "publisher" => self.publishers += 1,
            "subscriber" => self.subscribers += 1,
            _ => {}
        }
        if let Some(g) = &p.group {
            if !self.groups.contains(g) {
                self.groups.push(g.clone());
            }
        }
        if self.command.is_none() {
            self.command.clone_from(&p.command);
        }
    }
}

/// `rows` folded per process, in order of first row.
pub fn per_process(rows: &[Process]) -> Vec<ProcessSummary> {
    let mut out: Vec<ProcessSummary> = Vec::new();
    for p in rows {
        let at = out
            .iter()
            .position(|q| q.pid == p.pid && q.alive == p.alive)
            .unwrap_or_else(|| {
                out.push(ProcessSummary::new(p));
                out.len() - 1
            });
        out[at].add(p);
    }
    out
}

/// A bridge attached to the bus: its process and the counters its row holds.
#[derive(Serialize, Debug, Clone)]
pub struct Bridge {
    /// Its pid.
    pub pid: u32,
    /// Whether it still runs.
    pub alive: bool,
    /// Server and counters, as the bridge's row holds them (flattened into this object).
    #[serde(flatten)]
    pub row: BridgeRow,
}

/// The bridges attached to `s`.
pub fn bridges(s: &Snapshot) -> Vec<Bridge> {
    s.processes
        .iter()
        .filter_map(|p| {
            Some(Bridge {
                pid: p.pid,
                alive: p.alive,
                row: p.bridge.clone()?,
            })
        })
        .collect()
}
