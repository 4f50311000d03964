//! Shared helpers of the command-line tests: unique bus names removed on drop, running the
//! built `event-engine` binary, and child processes that hold a bus attachment.
//!
//! A child process is this same test executable started again with `EVENT_ENGINE_TEST_CHILD`
//! set and filtered to the test named `child_process`, which then plays the requested role
//! instead of returning at once.
#![allow(dead_code)]

use shm_ring::{Bus, BusConfig};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

const CHILD_ENV: &str = "EVENT_ENGINE_TEST_CHILD";
const READY: &str = "EVENT-ENGINE-CHILD-READY";

/// A bus name unique to this test process and call, whose file is removed on drop (also when
/// the test fails).
pub struct BusName(pub String);

impl BusName {
    /// A fresh name tagged with `tag`.
    pub fn new(tag: &str) -> BusName {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        BusName(format!("eecli-{tag}-{}-{n}", std::process::id()))
    }

    /// The file backing the bus.
    pub fn path(&self) -> std::path::PathBuf {
        shm_ring::shm_path(&self.0)
    }
}

impl Drop for BusName {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.path());
    }
}

/// A small geometry so tests are quick and fill the ring easily.
pub fn small_config() -> BusConfig {
    BusConfig {
        ring_capacity: 64,
        max_message: 4096,
        slab_memory: Some(80 << 10),
        max_processes: 16,
        max_subscribers: 8,
        ..BusConfig::default()
    }
}

/// Creates bus `name` with [`small_config`].
pub fn create(name: &BusName) -> Bus {
    Bus::create(&name.0, &small_config()).expect("create bus")
}

/// The `event-engine` command.
pub fn cli() -> Command {
    Command::new(env!("CARGO_BIN_EXE_event-engine"))
}

/// Runs `event-engine args...` to completion.
pub fn run(args: &[&str]) -> Output {
    cli().args(args).output().expect("run event-engine")
}

/// Stdout of a run, as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Stderr of a run, as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts the run failed with `code` and one `event-engine: error:` line containing `needle`.
pub fn assert_error(o: &Output, code: i32, needle: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(code), "stderr: {err}");
    assert!(
        err.starts_with("event-engine: error: "),
        "stderr is not an error line: {err:?}"
    );
    assert_eq!(err.lines().count(), 1, "more than one line: {err:?}");
    assert!(err.contains(needle), "{needle:?} not in {err:?}");
    assert!(!err.contains("panicked"), "{err:?}");
}

/// `inspect --json` of the bus, parsed.
pub fn inspect_json(name: &BusName) -> serde_json::Value {
    let o = run(&["inspect", &name.0, "--json"]);
    assert!(o.status.success(), "inspect failed: {}", stderr(&o));
    serde_json::from_slice(&o.stdout).expect("inspect --json prints JSON")
}

/// A child process holding an attachment to a bus; killed and waited for on drop.
pub struct ChildProcess {
    /// The child.
    pub child: Child,
    /// Its stdout after the ready line.
    pub stdout: BufReader<ChildStdout>,
}

impl ChildProcess {
    /// Starts a child that attaches to bus `name` as `role` (`subscriber` or `group:<name>`)
    /// and waits until it is attached.
    pub fn spawn(role: &str, name: &BusName) -> ChildProcess {
        let mut child = Command::new(std::env::current_exe().expect("test executable"))
            .args([
                "--exact",
                "child_process",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, format!("{role} {}", name.0))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn child");
        let mut stdout = BufReader::new(child.stdout.take().expect("child stdout"));
        let mut line = String::new();
        loop {
            line.clear();
            let n = stdout.read_line(&mut line).expect("read child stdout");
            assert!(n > 0, "child exited before attaching");
            // The harness may have started a "test child_process ... " line before ours.
            if line.trim_end().ends_with(READY) {
                break;
            }
        }
        ChildProcess { child, stdout }
    }

    /// The child's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILLs the child and waits for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The body of each test binary's `child_process` test: plays the role named in the
/// environment (when set) and otherwise returns at once.
pub fn child_main() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (role, name) = spec.split_once(' ').expect("role and bus name");
    let bus = Bus::open(name).expect("child: open bus");
    if let Some(rest) = role.strip_prefix("stall:") {
        return stalled_publisher(&bus, rest);
    }
    let _sub = match role.strip_prefix("group:") {
        Some(group) => bus.subscribe_group(group),
        None => bus.subscribe(),
    }
    .expect("child: subscribe");
    // Straight to the file descriptor: the test harness may capture `println!`.
    let mut out = std::io::stdout().lock();
    writeln!(out, "{READY}").expect("child: write");
    out.flush().expect("child: flush");
    drop(out);
    // Hold the attachment until the parent kills us or closes our stdin.
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
}

/// Role `stall:<claimed|addressed>:<topic>`: says it is ready, then publishes one message on
/// `<topic>` and stops itself (SIGSTOP) at that point of the publish, holding its claimed ring
/// position; once continued, it finishes the publish, says `published <pos>` and waits for its
/// stdin to close.
fn stalled_publisher(bus: &Bus, spec: &str) {
    use shm_ring::testing::{stop_next_publish_at, Point};
    let (at, topic) = spec.split_once(':').expect("stall point and topic");
    let at = match at {
        "claimed" => Point::Claimed,
        "addressed" => Point::Addressed,
        other => panic!("unknown stall point {other}"),
    };
    let mut publisher = bus.publisher().expect("child: publisher");
    let mut out = std::io::stdout().lock();
    writeln!(out, "{READY}").expect("child: write");
    out.flush().expect("child: flush");
    stop_next_publish_at(at);
    let pos = publisher
        .publish(topic, shm_ring::Codec::Raw, b"held", None)
        .expect("child: publish");
    writeln!(out, "published {pos:?}").expect("child: write");
    out.flush().expect("child: flush");
    drop(out);
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
}
