//! `event-engine bridge` against a real `nats-server` on loopback: two buses stand for two
//! machines, each with its own bridge process; messages cross once, in order and intact, also
//! when both bridges import and export the same pattern; a server restart is survived and its
//! losses counted; SIGTERM stops a bridge cleanly; bad arguments and an unreachable server are
//! one-line errors.

mod common;

use common::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use shm_ring::{Bus, BusError, Codec, Publisher, PyValue, Subscriber};
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest a test waits for anything (a hang guard, not a timing check).
const PATIENCE: Duration = Duration::from_secs(60);

#[test]
fn child_process() {
    child_main();
}

/// The `nats-server` binary (scripts/setup.sh installs it).
fn nats_server_binary() -> String {
    for candidate in ["/usr/sbin/nats-server", "/usr/bin/nats-server"] {
        if std::path::Path::new(candidate).exists() {
            return candidate.into();
        }
    }
    let found = Command::new("sh")
        .args(["-c", "command -v nats-server"])
        .output()
        .expect("run sh");
    let path = String::from_utf8_lossy(&found.stdout).trim().to_string();
    assert!(
        !path.is_empty(),
        "nats-server is not installed: run scripts/setup.sh (apt-get install nats-server)"
    );
    path
}

/// A loopback port nobody listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A real nats-server on a loopback port; killed on drop.
struct NatsServer {
    port: u16,
    child: Option<Child>,
}

impl NatsServer {
    fn start() -> NatsServer {
        let mut server = NatsServer {
            port: free_port(),
            child: None,
        };
        server.spawn();
        server
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts the server and waits for its "ready" log line.
    fn spawn(&mut self) {
        let mut child = Command::new(nats_server_binary())
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start nats-server");
        let lines = line_channel(child.stderr.take().unwrap());
        self.child = Some(child);
        let deadline = Instant::now() + PATIENCE;
        loop {
            let line = lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .expect("nats-server did not say it is ready");
            if line.contains("Server is ready") {
                break;
            }
        }
        // Keep draining its log so it never blocks on a full pipe.
        std::thread::spawn(move || while lines.recv().is_ok() {});
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Lines read from `pipe` by a thread, as they come.
fn line_channel(pipe: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits for a line containing `needle`, returning it.
fn wait_line(lines: &Receiver<String>, needle: &str) -> String {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) if line.contains(needle) => return line,
            Ok(_) => continue,
            Err(e) => panic!("no line containing {needle:?}: {e}"),
        }
    }
}

/// The bridge's counters as its stats line shows them.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
struct Stats {
    out: u64,
    inn: u64,
    dropped: u64,
    reconnects: u64,
    /// Times the exporter waited for an importer's acknowledgements (timing-dependent).
    held: u64,
    forgotten: u64,
}

fn parse_stats(line: &str) -> Stats {
    let words: Vec<&str> = line.split_whitespace().collect();
    let get = |name: &str| -> u64 {
        let i = words
            .iter()
            .rposition(|w| *w == name)
            .unwrap_or_else(|| panic!("no {name} in {line:?}"));
        words[i + 1].parse().unwrap()
    };
    Stats {
        out: get("out"),
        inn: get("in"),
        dropped: get("dropped"),
        reconnects: get("reconnects"),
        held: get("held"),
        forgotten: get("forgotten"),
    }
}

/// A running `event-engine bridge`; killed on drop if not stopped.
struct Bridge {
    child: Child,
    stdout: Receiver<String>,
    stderr: Receiver<String>,
}

impl Bridge {
    /// Starts a bridge on `bus` and waits until it is connected and subscribed.
    fn start(
        bus: &BusName,
        server: &NatsServer,
        id: &str,
        export: &[&str],
        import: &[&str],
    ) -> Bridge {
        Bridge::start_with(bus, server, id, export, import, &[])
    }

    /// [`Bridge::start`] with extra command-line arguments.
    fn start_with(
        bus: &BusName,
        server: &NatsServer,
        id: &str,
        export: &[&str],
        import: &[&str],
        extra: &[&str],
    ) -> Bridge {
        let mut cmd = cli();
        cmd.args(["bridge", &bus.0, "--nats", &server.url(), "--id", id]);
        cmd.args(extra);
        cmd.args(["--stats-every", "0"]);
        for p in export {
            cmd.args(["--export", p]);
        }
        for p in import {
            cmd.args(["--import", p]);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start bridge");
        let stdout = line_channel(child.stdout.take().unwrap());
        let stderr = line_channel(child.stderr.take().unwrap());
        let ready = wait_line(&stdout, "ready");
        assert!(
            ready.starts_with(&format!("bridge {id}: bus {}", bus.0)),
            "{ready}"
        );
        Bridge {
            child,
            stdout,
            stderr,
        }
    }

    /// SIGTERMs the bridge, checks it exits 0, and returns its final counters.
    fn stop(mut self) -> Stats {
        kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM).unwrap();
        let line = wait_line(&self.stdout, "stopped;");
        let deadline = Instant::now() + PATIENCE;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "bridge did not exit after SIGTERM"
            );
            // Polling a child's exit: there is no event to wait on with a deadline.
            std::thread::sleep(Duration::from_millis(20));
        };
        let errors: Vec<String> = self.stderr.try_iter().collect();
        assert_eq!(status.code(), Some(0), "stderr: {errors:?}");
        parse_stats(&line)
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The bytes message `i` carries: its number, then bytes derived from it (a damaged or
/// misplaced payload does not pass).
fn payload(i: u64, len: usize) -> Vec<u8> {
    let mut p = i.to_le_bytes().to_vec();
    p.extend((0..len.saturating_sub(8)).map(|k| (i as usize * 31 + k) as u8));
    p
}

fn number(payload: &[u8]) -> u64 {
    u64::from_le_bytes(payload[..8].try_into().unwrap())
}

/// A message as received: topic, codec tag, payload.
type Received = (String, u8, Vec<u8>);

/// Collects messages from `sub` on a thread until `want` of those accepted by `keep` arrived
/// (or PATIENCE ran out); the rest of the stream is returned with them, in order.
fn collect(
    mut sub: Subscriber,
    want: usize,
    keep: fn(&str) -> bool,
) -> std::thread::JoinHandle<(Vec<Received>, Subscriber)> {
    std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut kept = 0;
        let deadline = Instant::now() + PATIENCE;
        while kept < want && Instant::now() < deadline {
            sub.recv_batch(256, Some(Duration::from_millis(100)), |m| {
                if keep(m.topic) {
                    kept += 1;
                }
                got.push((m.topic.to_string(), m.codec, m.payload.to_vec()));
            })
            .unwrap();
        }
        (got, sub)
    })
}

fn publish(p: &mut Publisher, topic: &str, i: u64) {
    // Even numbers as raw bytes, odd ones as a pickled call (what Python's put sends).
    if i.is_multiple_of(2) {
        p.publish(topic, Codec::Raw, &payload(i, 64), Some(PATIENCE))
            .unwrap();
    } else {
        p.publish_pickled(
            topic,
            &[
                PyValue::Int(i as i64),
                PyValue::Float(123.45),
                PyValue::Str("AAPL".into()),
            ],
            &[("size", PyValue::Int(100))],
            Some(PATIENCE),
        )
        .unwrap();
    }
}

fn check_intact(i: u64, topic: &str, m: &Received) {
    assert_eq!(m.0, topic, "message {i}");
    if i.is_multiple_of(2) {
        assert_eq!(
            (m.1, &m.2),
            (Codec::Raw as u8, &payload(i, 64)),
            "message {i}"
        );
    } else {
        assert_eq!(m.1, Codec::Pickle as u8, "message {i}");
        let expected = shm_ring::wire::pickle::encode_call(
            &[
                PyValue::Int(i as i64),
                PyValue::Float(123.45),
                PyValue::Str("AAPL".into()),
            ],
            &[("size", PyValue::Int(100))],
        );
        assert_eq!(m.2, expected, "message {i}");
    }
}

const PATTERN: &str = "Market.{kind}.+symbol";

#[test]
fn messages_cross_once_in_order_between_buses_that_both_import_and_export_a_pattern() {
    const N: u64 = 20_000;
    const BACK: u64 = 1_000;
    let server = NatsServer::start();
    let (name_a, name_b) = (BusName::new("bridge-a"), BusName::new("bridge-b"));
    let (bus_a, bus_b) = (create(&name_a), create(&name_b));
    let from_a = |t: &str| t.starts_with("Market.FromA.");
    let from_b = |t: &str| t.starts_with("Market.FromB.");
    let on_b = collect(bus_b.subscribe().unwrap(), N as usize, from_a);
    let on_a = collect(bus_a.subscribe().unwrap(), (N + BACK) as usize, |_| true);
    let bridge_a = Bridge::start(&name_a, &server, "machine-a", &[PATTERN], &[PATTERN]);
    let bridge_b = Bridge::start(&name_b, &server, "machine-b", &[PATTERN], &[PATTERN]);

    // A topic per symbol: order must hold for one publisher across topics too.
    let topics = ["Market.FromA.AAPL", "Market.FromA.MSFT", "Market.FromA.SPY"];
    let a = {
        let bus = bus_a.clone();
        std::thread::spawn(move || {
            let mut p = bus.publisher().unwrap();
            for i in 0..N {
                publish(&mut p, topics[i as usize % 3], i);
            }
        })
    };
    let mut p = bus_b.publisher().unwrap();
    for i in 0..BACK {
        publish(&mut p, "Market.FromB.AAPL", i);
    }
    a.join().unwrap();

    let (got_b, sub_b) = on_b.join().unwrap();
    let (got_a, sub_a) = on_a.join().unwrap();
    let stats_a = bridge_a.stop();
    let stats_b = bridge_b.stop();

    let crossed: Vec<&Received> = got_b.iter().filter(|m| from_a(&m.0)).collect();
    assert_eq!(crossed.len() as u64, N, "messages from A that reached B");
    for (i, m) in crossed.iter().enumerate() {
        check_intact(i as u64, topics[i % 3], m);
    }
    let back: Vec<&Received> = got_a.iter().filter(|m| from_b(&m.0)).collect();
    assert_eq!(back.len() as u64, BACK, "messages from B that reached A");
    for (i, m) in back.iter().enumerate() {
        check_intact(i as u64, "Market.FromB.AAPL", m);
    }
    // Once: A saw its own messages once (none came back), B saw no copy of A's.
    assert_eq!(got_a.iter().filter(|m| from_a(&m.0)).count() as u64, N);
    let late = |mut sub: Subscriber| {
        let mut n = 0;
        while sub.recv(Some(Duration::ZERO)).unwrap().is_some() {
            n += 1;
        }
        n
    };
    assert_eq!(late(sub_b), 0, "bus B got more than it should");
    assert_eq!(late(sub_a), 0, "bus A got more than it should");
    // Each bridge exported only its own bus's messages and imported only the other's.
    // Whether a bridge had to wait for the other's acknowledgements depends on timing.
    let expect = |out, inn, held| Stats {
        out,
        inn,
        dropped: 0,
        reconnects: 0,
        held,
        forgotten: 0,
    };
    assert_eq!(stats_a, expect(N, BACK, stats_a.held));
    assert_eq!(stats_b, expect(BACK, N, stats_b.held));
}

#[test]
fn several_bridges_on_one_server_never_export_again_what_they_imported() {
    let server = NatsServer::start();
    let names = [
        BusName::new("ring-a"),
        BusName::new("ring-b"),
        BusName::new("ring-c"),
    ];
    let buses: Vec<Bus> = names.iter().map(create).collect();
    let subs: Vec<_> = buses
        .iter()
        .map(|b| collect(b.subscribe().unwrap(), 100, |_| true))
        .collect();
    let bridges: Vec<Bridge> = names
        .iter()
        .enumerate()
        .map(|(i, n)| Bridge::start(n, &server, &format!("b{i}"), &["Md.+x"], &["Md.+x"]))
        .collect();
    let mut p = buses[0].publisher().unwrap();
    for i in 0..100 {
        p.publish("Md.X", Codec::Raw, &payload(i, 16), None)
            .unwrap();
    }
    for (i, handle) in subs.into_iter().enumerate() {
        let (got, mut sub) = handle.join().unwrap();
        let numbers: Vec<u64> = got.iter().map(|m| number(&m.2)).collect();
        assert_eq!(
            numbers,
            (0..100).collect::<Vec<_>>(),
            "what the subscriber of bus {} received",
            names[i].0
        );
        assert!(sub.recv(Some(Duration::ZERO)).unwrap().is_none());
    }
    let stats: Vec<Stats> = bridges.into_iter().map(Bridge::stop).collect();
    assert_eq!((stats[0].out, stats[0].inn), (100, 0));
    for s in &stats[1..] {
        assert_eq!((s.out, s.inn, s.dropped), (0, 100, 0));
    }
}

#[test]
fn a_server_restart_is_survived_and_what_it_lost_is_counted() {
    let mut server = NatsServer::start();
    let (name_a, name_b) = (BusName::new("restart-a"), BusName::new("restart-b"));
    let (bus_a, bus_b) = (create(&name_a), create(&name_b));
    let mut sub_b = bus_b.subscribe().unwrap();
    // A window small enough to fill while the server is down: the restart must not wedge it.
    let bridge_a = Bridge::start_with(
        &name_a,
        &server,
        "restart-a",
        &["Md.+x"],
        &[],
        &["--window", "256"],
    );
    let bridge_b = Bridge::start(&name_b, &server, "restart-b", &[], &["Md.+x"]);

    // A publisher that keeps going through the restart until told to stop.
    let done = Arc::new(AtomicBool::new(false));
    let publisher = {
        let (bus, done) = (bus_a.clone(), done.clone());
        std::thread::spawn(move || {
            let mut p = bus.publisher().unwrap();
            let mut i = 0u64;
            while !done.load(Ordering::Relaxed) {
                match p.publish(
                    "Md.X",
                    Codec::Raw,
                    &payload(i, 32),
                    Some(Duration::from_millis(100)),
                ) {
                    Ok(_) => i += 1,
                    Err(BusError::Timeout) => continue,
                    Err(e) => panic!("{e}"),
                }
            }
            i
        })
    };
    let mut received = Vec::new();
    let take = |sub: &mut Subscriber, received: &mut Vec<u64>, until: &dyn Fn(&[u64]) -> bool| {
        let deadline = Instant::now() + PATIENCE;
        while !until(received) {
            assert!(
                Instant::now() < deadline,
                "stream stalled at {}",
                received.len()
            );
            sub.recv_batch(256, Some(Duration::from_millis(100)), |m| {
                received.push(number(m.payload))
            })
            .unwrap();
        }
    };
    take(&mut sub_b, &mut received, &|r| r.len() >= 2_000);
    server.stop();
    server.spawn();
    wait_line(&bridge_a.stderr, "reconnected");
    wait_line(&bridge_b.stderr, "reconnected");
    let before = received.len();
    take(&mut sub_b, &mut received, &|r| r.len() >= before + 2_000);
    done.store(true, Ordering::Relaxed);
    let sent = publisher.join().unwrap();
    take(&mut sub_b, &mut received, &|r| {
        r.last() == Some(&(sent - 1))
    });

    let stats_a = bridge_a.stop();
    let stats_b = bridge_b.stop();
    eprintln!(
        "restart: sent {sent}, received {}, exporter {stats_a:?}, importer {stats_b:?}",
        received.len()
    );
    assert!(
        received.windows(2).all(|w| w[0] < w[1]),
        "out of order or repeated"
    );
    assert_eq!(
        stats_a.out, sent,
        "the exporter handed every message to NATS"
    );
    assert_eq!((stats_a.reconnects, stats_b.reconnects), (1, 1));
    // What the restart lost is exactly what B counts as dropped.
    assert_eq!(received.len() as u64 + stats_b.dropped, sent, "{stats_b:?}");
    assert_eq!(stats_b.inn, received.len() as u64);
}

#[test]
fn an_unreachable_server_is_a_one_line_error_within_the_connect_timeout() {
    let name = BusName::new("bridge-down");
    let _bus = create(&name);
    // Nobody listens: refused at once.
    let url = format!("nats://127.0.0.1:{}", free_port());
    let o = run(&[
        "bridge",
        &name.0,
        "--nats",
        &url,
        "--export",
        "a.b",
        "--connect-timeout",
        "2",
    ]);
    assert_error(&o, 1, "cannot connect to NATS at 127.0.0.1");
    // A bus that does not exist is not created when the bridge cannot start.
    let absent = BusName::new("bridge-never");
    let o = run(&["bridge", &absent.0, "--nats", &url, "--export", "a.b"]);
    assert_error(&o, 1, "cannot connect to NATS");
    assert!(!absent.path().exists());
    // Something listens but never answers: the connect timeout bounds the wait.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("nats://{}", silent.local_addr().unwrap());
    let start = Instant::now();
    let o = run(&[
        "bridge",
        &name.0,
        "--nats",
        &url,
        "--import",
        "a.b",
        "--connect-timeout",
        "1",
    ]);
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
    assert_error(&o, 1, "cannot connect to NATS");
}

#[test]
fn bad_arguments_are_one_line_usage_errors() {
    let name = BusName::new("bridge-args");
    let _bus = create(&name);
    let url = "nats://127.0.0.1:4222";
    let cases: &[(&[&str], &str)] = &[
        (
            &["--nats", "nats://127.0.0.1:notaport", "--export", "a"],
            "is not a NATS URL",
        ),
        (&["--nats", url, "--export", "a.*"], "'*' or '>'"),
        (
            &["--nats", url, "--import", "Log./open"],
            "unclosed pattern",
        ),
        (&["--nats", url, "--import", "a..b"], "empty part"),
        (&["--nats", url], "give at least one --export or --import"),
        (
            &["--nats", url, "--export", "a", "--connect-timeout", "0"],
            "--connect-timeout",
        ),
        (
            &["--nats", url, "--export", "a", "--id", "has space"],
            "--id",
        ),
        (&["--nats", url, "--export", "a", "--id", "a..b"], "--id"),
        (
            &["--nats", url, "--export", "a", "--ack-timeout", "0.5"],
            "--ack-timeout 0.5 is too short",
        ),
    ];
    for (extra, needle) in cases {
        let mut args = vec!["bridge", name.0.as_str()];
        args.extend_from_slice(extra);
        assert_error(&run(&args), 2, needle);
    }
    let o = run(&["bridge", "../bad", "--nats", url, "--export", "a"]);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
}

#[test]
fn import_patterns_keep_only_what_they_match_and_plain_nats_messages_arrive_raw() {
    let server = NatsServer::start();
    let name = BusName::new("bridge-filter");
    let bus = create(&name);
    let mut sub = bus.subscribe().unwrap();
    let bridge = Bridge::start(
        &name,
        &server,
        "filter",
        &[],
        &["Md.(AAPL|MSFT)", "Md./^S/"],
    );
    // Any NATS client may publish: without headers, the body arrives as raw bytes.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = async_nats::connect(server.url()).await.unwrap();
        for subject in [
            "Md.AAPL",
            "Md.IBM",
            "Md.SPY",
            "Md.(AAPL|MSFT)",
            "Md.MSFT",
            "Md.AAPL.L2",
        ] {
            client
                .publish(subject, subject.as_bytes().to_vec().into())
                .await
                .unwrap();
        }
        client.flush().await.unwrap();
    });
    let mut got = Vec::new();
    while got.len() < 3 {
        let m = sub.recv(Some(PATIENCE)).unwrap().expect("a message");
        assert_eq!(m.codec, Codec::Raw as u8);
        assert_eq!(m.payload, m.topic.as_bytes());
        got.push(m.topic.to_string());
    }
    assert_eq!(got, ["Md.AAPL", "Md.SPY", "Md.MSFT"]);
    let stats = bridge.stop();
    assert_eq!((stats.inn, stats.dropped), (3, 0));
    assert!(sub.recv(Some(Duration::ZERO)).unwrap().is_none());
}

#[test]
fn without_flow_control_what_a_full_far_bus_makes_nats_drop_is_counted_and_order_is_kept() {
    const N: u64 = 3_000;
    let server = NatsServer::start();
    let (name_a, name_b) = (BusName::new("slow-a"), BusName::new("slow-b"));
    let (bus_a, bus_b) = (create(&name_a), create(&name_b));
    // Nobody reads bus B during the burst: its ring (64), the bridge's queue and a small
    // import buffer fill, and with an exporter that does not wait for acknowledgements
    // (--window 0), NATS drops the rest for this subscriber.
    let mut sub_b = bus_b.subscribe().unwrap();
    let bridge_a = Bridge::start_with(
        &name_a,
        &server,
        "slow-a",
        &["Md.+x"],
        &[],
        &["--window", "0"],
    );
    let bridge_b = Bridge::start_with(
        &name_b,
        &server,
        "slow-b",
        &[],
        &["Md.+x"],
        &["--import-buffer", "100"],
    );
    let mut p = bus_a.publisher().unwrap();
    for i in 0..N {
        p.publish("Md.X", Codec::Raw, &payload(i, 32), None)
            .unwrap();
    }
    wait_line(&bridge_b.stderr, "messages are being lost");
    // Reading now, with one more message at a time until one arrives: the stream's end is then
    // known, so every loss before it shows as a gap.
    let mut received: Vec<u64> = Vec::new();
    let mut sent = N;
    let deadline = Instant::now() + PATIENCE;
    while received.last().is_none_or(|&last| last < N) {
        assert!(Instant::now() < deadline, "stalled at {}", received.len());
        p.publish("Md.X", Codec::Raw, &payload(sent, 32), None)
            .unwrap();
        sent += 1;
        sub_b
            .recv_batch(4096, Some(Duration::from_millis(100)), |m| {
                received.push(number(m.payload))
            })
            .unwrap();
    }
    while received.last() != Some(&(sent - 1)) {
        assert!(Instant::now() < deadline, "stalled at {}", received.len());
        let before = received.len();
        sub_b
            .recv_batch(4096, Some(Duration::from_millis(100)), |m| {
                received.push(number(m.payload))
            })
            .unwrap();
        if received.len() == before {
            // Nothing for 100 ms: NATS may have dropped the last message too (it drops for a
            // slow importer until that one catches up), and the importer sees a loss only in
            // the serial of a later message. One more ends the stream again; a message lost
            // anywhere else still breaks the count below.
            p.publish("Md.X", Codec::Raw, &payload(sent, 32), None)
                .unwrap();
            sent += 1;
        }
    }
    let stats_a = bridge_a.stop();
    let stats_b = bridge_b.stop();
    assert!(
        received.windows(2).all(|w| w[0] < w[1]),
        "out of order or repeated"
    );
    assert_eq!(stats_a.out, sent);
    assert!(
        stats_b.dropped > 0,
        "nothing was lost: the buffer never filled"
    );
    assert_eq!(received.len() as u64 + stats_b.dropped, sent, "{stats_b:?}");
}

#[test]
fn a_bridge_creates_its_bus_when_it_does_not_exist_yet() {
    let server = NatsServer::start();
    let name = BusName::new("bridge-creates");
    let bridge = Bridge::start(&name, &server, "creator", &["Md.+x"], &["Md.+x"]);
    wait_line(&bridge.stderr, "did not exist; created it");
    let bus = Bus::open(&name.0).expect("the bridge created the bus");
    let default = shm_ring::BusConfig::default();
    assert_eq!(
        (bus.config().ring_capacity, bus.config().max_message),
        (default.ring_capacity, default.max_message)
    );
    drop(bus);
    assert_eq!(
        bridge.stop(),
        Stats {
            out: 0,
            inn: 0,
            dropped: 0,
            reconnects: 0,
            held: 0,
            forgotten: 0,
        }
    );
}

#[test]
fn inspect_and_watch_show_each_bridge_with_its_counters() {
    const N: u64 = 100;
    let server = NatsServer::start();
    let (name_a, name_b) = (BusName::new("bridge-ia"), BusName::new("bridge-ib"));
    let (bus_a, bus_b) = (create(&name_a), create(&name_b));
    let on_b = collect(bus_b.subscribe().unwrap(), N as usize, |_| true);
    let bridge_a = Bridge::start(&name_a, &server, "inspect-a", &[PATTERN], &[]);
    let bridge_b = Bridge::start(&name_b, &server, "inspect-b", &[], &[PATTERN]);
    let mut p = bus_a.publisher().unwrap();
    for i in 0..N {
        publish(&mut p, "Market.FromA.AAPL", i);
    }
    let (got, _sub) = on_b.join().unwrap();
    assert_eq!(got.len() as u64, N);

    // The counters reach the bus within a tick of the bridge's main loop.
    let bridge_of = |name: &BusName, pid: u32, key: &str| {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let r = inspect_json(name);
            let bridges = r["bridges"].as_array().unwrap().clone();
            assert_eq!(bridges.len(), 1, "{r:#}");
            let b = bridges[0].clone();
            assert_eq!(b["pid"], pid);
            if b[key] == N || Instant::now() > deadline {
                return b;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let a = bridge_of(&name_a, bridge_a.child.id(), "out");
    assert_eq!(a["server"], server.url().as_str());
    assert_eq!(
        (&a["out"], &a["in"], &a["dropped"], &a["reconnects"]),
        (&N.into(), &0.into(), &0.into(), &0.into()),
        "{a}"
    );
    let b = bridge_of(&name_b, bridge_b.child.id(), "in");
    assert_eq!((&b["out"], &b["in"]), (&0.into(), &N.into()), "{b}");

    let o = run(&["inspect", &name_b.0, "--interval", "0"]);
    let text = stdout(&o);
    let line = text
        .lines()
        .find(|l| {
            l.trim_start().starts_with(&bridge_b.child.id().to_string()) && l.contains("nats://")
        })
        .unwrap_or_else(|| panic!("no bridge line in\n{text}"));
    assert!(text.contains("BRIDGES"), "{text}");
    assert!(line.contains(&format!(" {N} ")), "{line}");
    let o = run(&["watch", &name_b.0, "--once", "--interval", "50"]);
    let text = stdout(&o);
    assert!(
        text.contains(&format!("bridge pid {}", bridge_b.child.id())),
        "{text}"
    );
    assert!(text.contains(&format!("in {N}")), "{text}");

    bridge_a.stop();
    bridge_b.stop();
    // A bridge that left is no longer listed.
    assert_eq!(inspect_json(&name_a)["bridges"], serde_json::json!([]));
}

/// One counter of the only bridge attached to bus `name`, as `inspect --json` shows it.
fn bridge_counter(name: &BusName, key: &str) -> u64 {
    let r = inspect_json(name);
    let bridges = r["bridges"].as_array().expect("bridges").clone();
    assert_eq!(bridges.len(), 1, "{r:#}");
    bridges[0][key]
        .as_u64()
        .unwrap_or_else(|| panic!("no {key} in {r:#}"))
}

/// Waits until `ready()` holds, looking every 20 ms (the state is in another process: there is
/// nothing to block on).
fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends one message on `Md.Warm` from bus `from` and waits until `far` receives it: the far
/// bridge has then put a message of the exporter on its bus, and acknowledges it at once, so
/// the exporter counts it from then on (an importer counts from its first acknowledgement).
fn warm_up(from: &Bus, far: &mut Subscriber) {
    let mut p = from.publisher().unwrap();
    p.publish("Md.Warm", Codec::Raw, b"warm", None).unwrap();
    let m = far
        .recv(Some(PATIENCE))
        .unwrap()
        .expect("the warm-up message");
    assert_eq!(m.topic, "Md.Warm");
}

/// A publisher on its own thread that sends `n` messages on `Md.X`, waiting as long as the bus
/// is full (a refusal fails the test); `done` is set once the last is published.
fn patient_publisher(bus: &Bus, n: u64, done: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    let bus = bus.clone();
    std::thread::spawn(move || {
        let mut p = bus.publisher().unwrap();
        for i in 0..n {
            p.publish("Md.X", Codec::Raw, &payload(i, 32), None)
                .unwrap();
        }
        done.store(true, Ordering::Release);
    })
}

#[test]
fn a_far_bus_slower_for_good_holds_the_local_publisher_back_and_nothing_is_dropped() {
    // 80 rings of the far bus; the importer's buffer holds 500, far fewer.
    const N: u64 = 80 * 64;
    let server = NatsServer::start();
    let (name_a, name_b) = (BusName::new("flow-a"), BusName::new("flow-b"));
    let (bus_a, bus_b) = (create(&name_a), create(&name_b));
    // The far bus's only engine: it reads nothing until told to go on.
    let mut sub_b = bus_b.subscribe().unwrap();
    let bridge_a = Bridge::start_with(
        &name_a,
        &server,
        "flow-a",
        &["Md.+x"],
        &[],
        &["--window", "200", "--ack-timeout", "1"],
    );
    let bridge_b = Bridge::start_with(
        &name_b,
        &server,
        "flow-b",
        &[],
        &["Md.+x"],
        &["--import-buffer", "500"],
    );
    warm_up(&bus_a, &mut sub_b);
    let done = Arc::new(AtomicBool::new(false));
    let publisher = patient_publisher(&bus_a, N, done.clone());

    // The exporter waits for the importer, and the local publisher waits for the exporter.
    wait_until("the exporter is held", || {
        bridge_counter(&name_a, "held") > 0
    });
    let bridge_pid = u64::from(bridge_a.child.id());
    wait_until("the publisher waits for the bridge", || {
        inspect_json(&name_a)["blocked"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| {
                b["pid"] == std::process::id()
                    && b["waiting_for"].as_array().unwrap().iter().any(|w| {
                        w["pids"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .any(|p| p.as_u64() == Some(bridge_pid))
                    })
            })
    });
    // Slow for longer than the acknowledgement timeout: an importer that is alive but slow
    // keeps holding the exporter, it is not forgotten.
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !done.load(Ordering::Acquire),
        "the publisher was not held back"
    );
    assert_eq!(bridge_counter(&name_a, "forgotten"), 0);
    assert_eq!(bridge_counter(&name_b, "dropped"), 0);

    // The far engine goes on: everything arrives, in order.
    let mut received = Vec::new();
    let deadline = Instant::now() + PATIENCE;
    while (received.len() as u64) < N {
        assert!(Instant::now() < deadline, "stalled at {}", received.len());
        sub_b
            .recv_batch(256, Some(Duration::from_millis(100)), |m| {
                assert_eq!(m.payload, payload(number(m.payload), 32));
                received.push(number(m.payload));
            })
            .unwrap();
    }
    publisher.join().unwrap();
    assert!(
        received.iter().copied().eq(0..N),
        "lost, repeated or out of order"
    );
    let stats_a = bridge_a.stop();
    let stats_b = bridge_b.stop();
    assert_eq!((stats_a.out, stats_a.dropped), (N + 1, 0), "{stats_a:?}");
    assert_eq!((stats_b.inn, stats_b.dropped), (N + 1, 0), "{stats_b:?}");
    assert!(sub_b.recv(Some(Duration::ZERO)).unwrap().is_none());
}

#[test]
fn a_killed_importer_holds_the_exporter_no_longer_than_the_ack_timeout() {
    const N: u64 = 40 * 64;
    let server = NatsServer::start();
    let (name_a, name_b) = (BusName::new("gone-a"), BusName::new("gone-b"));
    let (bus_a, bus_b) = (create(&name_a), create(&name_b));
    // Bus B fills and stays full: its importer falls a window behind.
    let mut stuck = bus_b.subscribe().unwrap();
    let bridge_a = Bridge::start_with(
        &name_a,
        &server,
        "gone-a",
        &["Md.+x"],
        &[],
        &["--window", "100", "--ack-timeout", "1"],
    );
    let mut bridge_b = Bridge::start(&name_b, &server, "gone-b", &[], &["Md.+x"]);
    warm_up(&bus_a, &mut stuck);
    let done = Arc::new(AtomicBool::new(false));
    let publisher = patient_publisher(&bus_a, N, done.clone());
    wait_until("the exporter is held", || {
        bridge_counter(&name_a, "held") > 0
    });
    assert!(!done.load(Ordering::Acquire));

    bridge_b.child.kill().unwrap();
    bridge_b.child.wait().unwrap();
    let killed = Instant::now();
    let line = wait_line(&bridge_a.stderr, "forgotten");
    assert!(line.contains("importer gone-b"), "{line}");
    publisher.join().unwrap();
    wait_until("the exporter sent everything", || {
        bridge_counter(&name_a, "out") == N + 1
    });
    let waited = killed.elapsed();
    // The timeout, plus a tick, plus what a loaded machine adds.
    assert!(
        waited < Duration::from_secs(10),
        "held {waited:?} after the kill"
    );
    assert!(
        waited >= Duration::from_millis(900),
        "forgotten too soon: {waited:?}"
    );
    let stats_a = bridge_a.stop();
    assert_eq!((stats_a.out, stats_a.dropped), (N + 1, 0), "{stats_a:?}");
    assert_eq!(stats_a.forgotten, 1);
}

#[test]
fn an_importer_that_stops_releases_the_exporter_at_once() {
    const N: u64 = 40 * 64;
    let server = NatsServer::start();
    let (name_a, name_b) = (BusName::new("bye-a"), BusName::new("bye-b"));
    let (bus_a, bus_b) = (create(&name_a), create(&name_b));
    let mut stuck = bus_b.subscribe().unwrap();
    // A timeout far longer than the test: only the importer's goodbye can release the exporter.
    let bridge_a = Bridge::start_with(
        &name_a,
        &server,
        "bye-a",
        &["Md.+x"],
        &[],
        &["--window", "100", "--ack-timeout", "600"],
    );
    let bridge_b = Bridge::start(&name_b, &server, "bye-b", &[], &["Md.+x"]);
    warm_up(&bus_a, &mut stuck);
    let done = Arc::new(AtomicBool::new(false));
    let publisher = patient_publisher(&bus_a, N, done.clone());
    wait_until("the exporter is held", || {
        bridge_counter(&name_a, "held") > 0
    });
    // Its bus stays full, so what it holds is refused (dropped) when it stops.
    let stats_b = bridge_b.stop();
    assert!(stats_b.inn + stats_b.dropped < N, "{stats_b:?}");
    publisher.join().unwrap();
    wait_until("the exporter sent everything", || {
        bridge_counter(&name_a, "out") == N + 1
    });
    let stats_a = bridge_a.stop();
    assert_eq!((stats_a.dropped, stats_a.forgotten), (0, 0), "{stats_a:?}");
}
