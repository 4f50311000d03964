//! `event-engine publish` and `event-engine tail` against live buses: published arguments arrive
//! decoded as Python would see them, and tail shows traffic without ever holding publishers back
//! (unless asked to be lossless).

mod common;

use common::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use shm_ring::wire::pickle::decode;
use shm_ring::{Codec, PyValue};
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::Duration;

/// Longest a test waits for a line from `tail` before failing (a hang guard, not a timing check).
const PATIENCE: Duration = Duration::from_secs(30);

#[test]
fn child_process() {
    child_main();
}

#[test]
fn publish_delivers_json_arguments_as_python_arguments() {
    let name = BusName::new("pub");
    let bus = create(&name);
    let mut sub = bus.subscribe().unwrap();
    let o = run(&[
        "publish",
        &name.0,
        "md.tick.AAPL",
        r#"[1, "a", 2.5, [true, null], {"k": "v"}]"#,
        "--kwargs",
        r#"{"venue": "X", "qty": 5}"#,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("published 1 message on md.tick.AAPL"),
        "{}",
        stdout(&o)
    );

    let m = sub.recv(Some(PATIENCE)).unwrap().expect("a message");
    assert_eq!(m.topic, "md.tick.AAPL");
    assert_eq!(m.codec, Codec::Pickle as u8);
    let value = decode(m.payload).unwrap();
    let PyValue::Tuple(pair) = &value else {
        panic!("not an (args, kwargs) tuple: {value}")
    };
    assert_eq!(
        pair[0],
        PyValue::Tuple(vec![
            PyValue::Int(1),
            PyValue::Str("a".into()),
            PyValue::Float(2.5),
            PyValue::List(vec![PyValue::Bool(true), PyValue::None]),
            PyValue::Dict(vec![("k".into(), PyValue::Str("v".into()))]),
        ])
    );
    assert_eq!(
        pair[1],
        PyValue::Dict(vec![
            ("venue".into(), PyValue::Str("X".into())),
            ("qty".into(), PyValue::Int(5)),
        ])
    );

    // A scalar is one argument; no arguments at all is an empty call.
    assert!(run(&["publish", &name.0, "t", "42"]).status.success());
    let m = sub.recv(Some(PATIENCE)).unwrap().unwrap();
    assert_eq!(decode(m.payload).unwrap().to_string(), "((42,), {})");
    assert!(run(&["publish", &name.0, "t"]).status.success());
    let m = sub.recv(Some(PATIENCE)).unwrap().unwrap();
    assert_eq!(decode(m.payload).unwrap().to_string(), "((), {})");
}

#[test]
fn publish_raw_count_and_rate() {
    let name = BusName::new("raw");
    let bus = create(&name);
    let mut sub = bus.subscribe().unwrap();
    let o = run(&[
        "publish", &name.0, "log.line", "--raw", "hello", "--count", "5", "--rate", "1000",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("published 5 messages"),
        "{}",
        stdout(&o)
    );
    let mut got = Vec::new();
    while got.len() < 5 {
        let m = sub.recv(Some(PATIENCE)).unwrap().expect("five messages");
        assert_eq!(m.codec, Codec::Raw as u8);
        got.push((m.seq, m.payload.to_vec()));
    }
    assert!(got.iter().all(|(_, p)| p == b"hello"));
    assert!(got.windows(2).all(|w| w[0].0 < w[1].0), "in order: {got:?}");
    assert!(sub.recv(Some(Duration::ZERO)).unwrap().is_none());
    assert!(!stderr(&o).contains("no subscriber"), "{}", stderr(&o));
    drop(sub);
    let o = run(&["publish", &name.0, "log.line", "1"]);
    assert!(o.status.success());
    assert!(
        stderr(&o).contains("no subscriber on bus") && stderr(&o).contains("reached nobody"),
        "{}",
        stderr(&o)
    );
    assert!(
        stdout(&o).contains("no subscriber wanted them"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn publish_usage_errors_publish_nothing() {
    let name = BusName::new("pubusage");
    let bus = create(&name);
    let mut sub = bus.subscribe().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["md.{symbol}", "1"], "not exact"),
        (&["md.+symbol"], "not exact"),
        (&["md.(a|b)"], "not exact"),
        (&["md.tick", "[1,"], "ARGS_JSON is not valid JSON"),
        (&["md.tick", "--kwargs", "[1]"], "must be a JSON object"),
        (&["md.tick", "1", "--raw", "x"], "cannot be used with"),
        (
            &["md.tick", "--rate", "0"],
            "--rate must be a positive number",
        ),
    ];
    for (args, needle) in cases {
        let mut all = vec!["publish", name.0.as_str()];
        all.extend_from_slice(args);
        assert_error(&run(&all), 2, needle);
    }
    assert!(sub.recv(Some(Duration::ZERO)).unwrap().is_none());
    // A payload larger than the bus allows is named with both sizes.
    let big = "x".repeat(10_000);
    assert_error(&run(&["publish", &name.0, "t", "--raw", &big]), 1, "4096");
}

/// A running `event-engine tail`, killed on drop, with its output lines arriving on channels.
struct Tail {
    child: Child,
    out: Receiver<String>,
    err: Receiver<String>,
    /// The line it printed on stderr once reading.
    started: String,
}

impl Tail {
    fn start(args: &[&str]) -> Tail {
        let mut child = cli()
            .arg("tail")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = |r: Box<dyn std::io::Read + Send>| {
            let (tx, rx) = channel();
            std::thread::spawn(move || {
                for line in BufReader::new(r).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
            rx
        };
        let out = lines(Box::new(child.stdout.take().unwrap()));
        let err = lines(Box::new(child.stderr.take().unwrap()));
        // It says so once its observer (or subscriber) is in place: messages from now on are seen.
        let started = err.recv_timeout(PATIENCE).expect("tail starts");
        assert!(started.starts_with("tailing bus"), "{started}");
        Tail {
            child,
            out,
            err,
            started,
        }
    }

    fn line(&self) -> String {
        self.out.recv_timeout(PATIENCE).expect("a line from tail")
    }

    fn signal(&self, sig: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), sig).unwrap();
    }

    /// Waits for the exit and returns whether it succeeded and the rest of stderr.
    fn finish(&mut self) -> (bool, String) {
        let ok = self.child.wait().unwrap().success();
        let rest: Vec<String> = self.err.iter().collect();
        (ok, rest.join("\n"))
    }
}

impl Drop for Tail {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn tail_filters_by_topic_and_stops_after_n() {
    let name = BusName::new("tailn");
    let bus = create(&name);
    let mut tail = Tail::start(&[&name.0, "--topic", "md.{symbol}", "-n", "3"]);
    let mut publisher = bus.publisher().unwrap();
    publisher
        .publish_pickled("other.x", &[PyValue::Int(-1)], &[], None)
        .unwrap();
    for (i, sym) in ["A", "B", "C", "D"].iter().enumerate() {
        let args = [PyValue::Int(i as i64), PyValue::Str(sym.to_string())];
        publisher
            .publish_pickled(
                &format!("md.{sym}"),
                &args,
                &[("px", PyValue::Float(1.5))],
                None,
            )
            .unwrap();
    }
    publisher
        .publish("md.raw", Codec::Raw, b"\x00hi", None)
        .unwrap();
    let lines: Vec<String> = (0..3).map(|_| tail.line()).collect();
    let (ok, err) = tail.finish();
    assert!(ok, "{err}");
    assert!(
        lines[0].contains(" md.A ") && lines[0].ends_with("(0, 'A', px=1.5)"),
        "{lines:?}"
    );
    assert!(
        lines[1].contains(" md.B ") && lines[1].ends_with("(1, 'B', px=1.5)"),
        "{lines:?}"
    );
    assert!(lines[2].contains(" md.C "), "{lines:?}");
    let pid = std::process::id().to_string();
    assert!(
        lines.iter().all(|l| l.contains(&pid)),
        "publisher pid shown: {lines:?}"
    );
    assert!(err.contains("3 messages shown"), "{err}");
    // It left the bus cleanly: no row of its own remains.
    let r = inspect_json(&name);
    assert!(r["processes"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["pid"] != tail.child.id()));
}

#[test]
fn tail_never_holds_back_a_full_speed_publisher() {
    never_holds_back_a_full_speed_publisher(&[]);
}

#[test]
fn an_observing_tail_never_holds_back_a_full_speed_publisher() {
    never_holds_back_a_full_speed_publisher(&["--observe"]);
}

/// A tail started with `mode` shows what passes, and while it is frozen a publisher gets through
/// many ring-fulls; what tail missed meanwhile it counts, so every message is shown or skipped.
fn never_holds_back_a_full_speed_publisher(mode: &[&str]) {
    let name = BusName::new("tailfast");
    let bus = create(&name);
    let capacity = bus.config().ring_capacity as u64;
    let mut sub = bus.subscribe().unwrap();
    let mut args = vec![name.0.as_str()];
    args.extend_from_slice(mode);
    let mut tail = Tail::start(&args);
    let mut publisher = bus.publisher().unwrap();
    let mut published = 0u64;

    // Seen as they pass (an observer sees them because the idle subscriber keeps them in the
    // ring).
    for i in 0..10 {
        let args = [PyValue::Int(i), PyValue::Str("a".into())];
        publisher.publish_pickled("a.x", &args, &[], None).unwrap();
        published += 1;
    }
    for i in 0..10 {
        let line = tail.line();
        assert!(line.ends_with(&format!("({i}, 'a')")), "{line}");
    }

    // Frozen, tail cannot read at all; the publisher must still get through many ring-fulls
    // (a bounded wait makes a hold-up fail the test instead of hanging it).
    tail.signal(Signal::SIGSTOP);
    let burst = 20 * capacity;
    let drain = std::thread::spawn(move || {
        let want = 10 + burst;
        let mut got = 0;
        while got < want {
            got += sub
                .recv_batch(256, Some(PATIENCE), |_| {})
                .expect("subscriber receives") as u64;
        }
        sub
    });
    for i in 0..burst {
        publisher
            .publish("b.x", Codec::Raw, &i.to_le_bytes(), Some(PATIENCE))
            .expect("the publisher is not held back by tail");
        published += 1;
    }
    let _sub = drain.join().unwrap();
    tail.signal(Signal::SIGCONT);

    // A marker that stays in the ring (the subscriber no longer reads) shows tail caught up.
    publisher
        .publish_pickled("end.x", &[PyValue::Str("end".into())], &[], None)
        .unwrap();
    published += 1;
    let mut shown = 10u64;
    let mut skipped_lines = 0u64;
    loop {
        let line = tail.line();
        if let Some(rest) = line.strip_prefix("-- skipped ") {
            skipped_lines += rest.split(' ').next().unwrap().parse::<u64>().unwrap();
            continue;
        }
        shown += 1;
        if line.contains(" end.x ") {
            break;
        }
    }
    tail.signal(Signal::SIGINT);
    let (ok, err) = tail.finish();
    assert!(ok, "Ctrl-C ends tail cleanly: {err}");
    let summary = err
        .lines()
        .find(|l| l.starts_with("tail: "))
        .unwrap_or_else(|| panic!("no summary in {err:?}"));
    let skipped: u64 = summary
        .split(", ")
        .nth(1)
        .and_then(|s| s.strip_suffix(" skipped"))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no skipped count in {summary:?}"));
    assert_eq!(skipped, skipped_lines, "{summary}");
    // Whatever it missed while frozen it counted: every message was shown or skipped.
    assert_eq!(shown + skipped, published, "{summary}");
    assert!(skipped >= burst - capacity, "{summary}");
    assert!(
        summary.starts_with(&format!("tail: {shown} messages shown")),
        "{summary}"
    );
}

#[test]
fn tail_json_prints_one_object_per_message() {
    let name = BusName::new("tailjson");
    let bus = create(&name);
    let mut tail = Tail::start(&[&name.0, "--json", "-n", "2"]);
    let mut publisher = bus.publisher().unwrap();
    let seq = publisher
        .publish_pickled(
            "md.A",
            &[PyValue::Int(7)],
            &[("side", PyValue::Str("buy".into()))],
            None,
        )
        .unwrap();
    publisher
        .publish("md.raw", Codec::Raw, b"hi", None)
        .unwrap();
    let first: serde_json::Value = serde_json::from_str(&tail.line()).unwrap();
    let second: serde_json::Value = serde_json::from_str(&tail.line()).unwrap();
    let (ok, err) = tail.finish();
    assert!(ok, "{err}");
    assert_eq!(first["seq"], seq.expect("tail's subscriber wants it"));
    assert_eq!(first["topic"], "md.A");
    assert_eq!(first["codec"], "pickle");
    assert_eq!(first["payload"], "(7, side='buy')");
    assert_eq!(first["publisher_pid"], std::process::id());
    assert!(first["timestamp_ns"].as_u64().unwrap() > 0);
    assert_eq!(second["codec"], "raw");
    assert_eq!(second["payload"], "b'hi'");
    assert_eq!(second["size"], 2);
}

#[test]
fn tail_shows_compact_puts_as_arguments_and_survives_hostile_payloads() {
    let name = BusName::new("tailhostile");
    let bus = create(&name);
    let mut tail = Tail::start(&[&name.0, "-n", "3"]);
    let mut publisher = bus.publisher().unwrap();
    // What a Python `put(topic, 4242, 123.5, "ZQXW", size=100)` sends.
    let args = [
        PyValue::Int(4242),
        PyValue::Float(123.5),
        PyValue::Str("ZQXW".into()),
    ];
    let body = shm_ring::wire::compact::encode_call(&args, &[("size", PyValue::Int(100))]).unwrap();
    publisher
        .publish("md.put", Codec::Compact, &body, None)
        .unwrap();
    // A pickle nesting a tuple 3,000 deep: decoding it fully would overflow the stack on drop.
    let mut deep = vec![0x80, 2, b')'];
    deep.extend(std::iter::repeat_n(0x85u8, 3000));
    deep.push(b'.');
    publisher
        .publish("md.deep", Codec::Pickle, &deep, None)
        .unwrap();
    publisher
        .publish("md.after", Codec::Raw, b"ok", None)
        .unwrap();
    let lines = [tail.line(), tail.line(), tail.line()];
    let (ok, err) = tail.finish();
    assert!(ok, "{err}");
    assert!(lines[0].contains(" md.put pid "), "{lines:?}");
    assert!(
        lines[0].ends_with("(4242, 123.5, 'ZQXW', size=100)"),
        "{lines:?}"
    );
    assert!(lines[1].contains("md.deep"), "{lines:?}");
    assert!(
        lines[1].contains("undecodable pickle payload") && lines[1].contains("nested too deeply"),
        "{lines:?}"
    );
    assert!(lines[2].ends_with("b'ok'"), "{lines:?}");
    assert!(err.contains("3 messages shown (1 undecodable)"), "{err}");
}

/// The payloads `tail` shows for raw messages `0..n`, in order, from its output lines.
fn raw_numbers(lines: &[String]) -> Vec<u64> {
    lines
        .iter()
        .map(|l| {
            let text = l
                .rsplit_once(" b'")
                .and_then(|(_, t)| t.strip_suffix('\''))
                .unwrap_or_else(|| panic!("no raw payload in {l:?}"));
            text.parse().unwrap_or_else(|_| panic!("{l:?}"))
        })
        .collect()
}

/// What `tail` printed after it was frozen: the raw payload numbers shown, and the counts of its
/// `-- skipped N ...` lines, up to and including the line of topic `last_topic`.
fn shown_and_skipped(tail: &Tail, last_topic: &str) -> (Vec<u64>, u64) {
    let mut shown = Vec::new();
    let mut skipped = 0u64;
    loop {
        let line = tail.line();
        if let Some(rest) = line.strip_prefix("-- skipped ") {
            assert!(rest.contains("fell a full ring behind"), "{line}");
            skipped += rest.split(' ').next().unwrap().parse::<u64>().unwrap();
            continue;
        }
        shown.extend(raw_numbers(std::slice::from_ref(&line)));
        if line.contains(&format!(" {last_topic} ")) {
            return (shown, skipped);
        }
    }
}

#[test]
fn tail_by_default_sees_every_message_of_a_bus_with_no_other_subscriber() {
    let name = BusName::new("taillossy");
    let bus = create(&name);
    let capacity = bus.config().ring_capacity as u64;
    let mut publisher = bus.publisher().unwrap();
    // Nobody wants the topic yet: the publisher drops the message, and keeps that answer in its
    // interest cache.
    assert_eq!(
        publisher
            .publish("md.AAPL", Codec::Raw, b"0", Some(Duration::ZERO))
            .unwrap(),
        None
    );
    let mut tail = Tail::start(&[&name.0, "--topic", "md.{symbol}"]);
    // The cached answer is stale once tail has joined: the next publish addresses tail. Ten
    // ring-fulls, half a ring at a time, each half shown before the next is published: tail
    // keeps up, so it shows every matching message, in order, and nothing else.
    let n = 10 * capacity;
    let half = capacity / 2;
    let mut lines = Vec::new();
    for i in 0..n {
        assert_eq!(
            publisher
                .publish("other.x", Codec::Raw, b"no", Some(Duration::ZERO))
                .unwrap(),
            None,
            "tail wants only md.{{symbol}}"
        );
        let seq = publisher
            .publish(
                "md.AAPL",
                Codec::Raw,
                i.to_string().as_bytes(),
                Some(Duration::ZERO),
            )
            .expect("a lossy tail never holds the publisher back");
        assert!(seq.is_some(), "message {i} is addressed to tail");
        if (i + 1) % half == 0 {
            while (lines.len() as u64) < i + 1 {
                lines.push(tail.line());
            }
        }
    }
    assert_eq!(raw_numbers(&lines), (0..n).collect::<Vec<_>>());
    assert!(
        tail.started.contains("lossy subscriber")
            && tail.started.contains("never holds publishers back"),
        "{}",
        tail.started
    );
    let tail_pid = tail.child.id();
    let r = inspect_json(&name);
    assert!(
        r["processes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["pid"] == tail_pid && p["role"] == "subscriber" && p["lossy"] == true),
        "tail is a lossy subscriber: {r}"
    );

    // Frozen, tail reads nothing; the publisher still never waits: it takes from tail what tail
    // has not read. Back, tail says how many it missed and goes on.
    tail.signal(Signal::SIGSTOP);
    let burst = 5 * capacity;
    for i in n..n + burst {
        publisher
            .publish(
                "md.AAPL",
                Codec::Raw,
                i.to_string().as_bytes(),
                Some(Duration::ZERO),
            )
            .expect("a frozen lossy tail never holds the publisher back");
    }
    tail.signal(Signal::SIGCONT);
    let last = n + burst;
    publisher
        .publish("md.END", Codec::Raw, last.to_string().as_bytes(), None)
        .unwrap()
        .expect("addressed to tail");
    let (shown, skipped) = shown_and_skipped(&tail, "md.END");
    assert!(shown.windows(2).all(|w| w[0] < w[1]), "in order: {shown:?}");
    assert_eq!(shown.last(), Some(&last));
    assert_eq!(shown.len() as u64 + skipped, burst + 1, "{shown:?}");
    assert!(skipped >= burst - capacity, "{skipped}");

    tail.signal(Signal::SIGINT);
    let (ok, err) = tail.finish();
    assert!(ok, "Ctrl-C ends tail cleanly: {err}");
    let total = n + shown.len() as u64;
    assert!(
        err.contains(&format!(
            "tail: {total} messages shown (0 undecodable), {skipped} skipped"
        )),
        "{err}"
    );
    // It left the bus: nobody wants the topic any more.
    assert_eq!(
        publisher
            .publish("md.AAPL", Codec::Raw, b"x", Some(Duration::ZERO))
            .unwrap(),
        None
    );
}

#[test]
fn a_killed_tail_is_reaped_like_any_subscriber() {
    let name = BusName::new("taillossykilled");
    let bus = create(&name);
    let capacity = bus.config().ring_capacity as u64;
    let mut tail = Tail::start(&[&name.0]);
    let tail_pid = tail.child.id();
    tail.signal(Signal::SIGKILL);
    let _ = tail.child.wait();
    // Dead and unreaped, it still never holds a publisher back.
    let mut publisher = bus.publisher().unwrap();
    for i in 0..3 * capacity {
        publisher
            .publish("md.x", Codec::Raw, &i.to_le_bytes(), Some(Duration::ZERO))
            .expect("a dead lossy tail never holds the publisher back");
    }
    let o = run(&["reap", &name.0]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains(&tail_pid.to_string()), "{}", stdout(&o));
    let r = inspect_json(&name);
    assert_eq!(r["summary"]["subscribers"], 0, "{r}");
    assert_eq!(
        publisher
            .publish("md.x", Codec::Raw, b"x", Some(Duration::ZERO))
            .unwrap(),
        None,
        "nobody wants it once tail was reaped"
    );
    drop(publisher);
    drop(bus);
    assert!(shm_ring::inspect(&name.0).unwrap().is_idle());
}

#[test]
fn tail_is_lossless_or_an_observer_not_both() {
    let name = BusName::new("tailmodes");
    let _bus = create(&name);
    assert_error(
        &run(&["tail", &name.0, "--lossless", "--observe"]),
        2,
        "cannot be used with",
    );
}

#[test]
fn lossless_tail_shows_every_matching_message_in_order() {
    let name = BusName::new("taillossless");
    let bus = create(&name);
    let capacity = bus.config().ring_capacity as u64;
    // No other subscriber: a lossy tail would see nothing here.
    let mut tail = Tail::start(&[&name.0, "--lossless", "--topic", "md.{symbol}"]);
    assert!(
        tail.started.contains("losslessly") && tail.started.contains("wait"),
        "it says it may hold publishers back: {}",
        tail.started
    );
    let mut publisher = bus.publisher().unwrap();
    let n = 10 * capacity;
    let mut lines = Vec::new();
    for i in 0..n {
        // Unwanted topics take no ring position and never wait for tail.
        assert_eq!(
            publisher
                .publish("other.x", Codec::Raw, b"no", Some(Duration::ZERO))
                .unwrap(),
            None
        );
        // Many ring-fulls: the publisher waits for tail whenever it is a full ring behind.
        publisher
            .publish(
                "md.AAPL",
                Codec::Raw,
                i.to_string().as_bytes(),
                Some(PATIENCE),
            )
            .expect("tail keeps reading");
        while let Ok(line) = tail.out.try_recv() {
            lines.push(line);
        }
    }
    while (lines.len() as u64) < n {
        lines.push(tail.line());
    }
    assert_eq!(raw_numbers(&lines), (0..n).collect::<Vec<_>>());
    assert!(lines.iter().all(|l| l.contains(" md.AAPL ")), "{lines:?}");
    let tail_pid = tail.child.id();
    let r = inspect_json(&name);
    assert!(
        r["processes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["pid"] == tail_pid && p["role"] == "subscriber"),
        "tail subscribes: {r}"
    );
    tail.signal(Signal::SIGTERM);
    let (ok, err) = tail.finish();
    assert!(ok, "SIGTERM ends tail cleanly: {err}");
    assert!(
        err.contains(&format!(
            "tail: {n} messages shown (0 undecodable), lossless"
        )),
        "{err}"
    );
    // It left: no row of its own, no consumer left behind.
    let r = inspect_json(&name);
    assert!(
        r["processes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["pid"] != tail_pid),
        "{r}"
    );
    assert_eq!(
        publisher
            .publish("md.AAPL", Codec::Raw, b"x", Some(Duration::ZERO))
            .unwrap(),
        None,
        "nobody wants it once tail left"
    );
}

#[test]
fn a_killed_lossless_tail_holds_publishers_only_until_reaped() {
    let name = BusName::new("tailkilled");
    let bus = create(&name);
    let capacity = bus.config().ring_capacity as u64;
    let mut tail = Tail::start(&[&name.0, "--lossless"]);
    let mut publisher = bus.publisher().unwrap();
    // Stopped, tail reads nothing: once the ring is full the publisher is held back.
    tail.signal(Signal::SIGSTOP);
    let mut sent = 0u64;
    while publisher
        .publish("md.x", Codec::Raw, b"x", Some(Duration::ZERO))
        .is_ok()
    {
        sent += 1;
        assert!(sent <= 2 * capacity, "tail never held the publisher back");
    }
    assert!(sent >= capacity - 1, "{sent}");
    let r = inspect_json(&name);
    assert!(r["counters"]["full_waits"].as_u64().unwrap() >= 1, "{r}");
    // Killed without a chance to leave: its row and consumer stay until someone reaps them.
    let tail_pid = tail.child.id();
    tail.signal(Signal::SIGKILL);
    let _ = tail.child.wait();
    let o = run(&["reap", &name.0]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains(&tail_pid.to_string()), "{}", stdout(&o));
    // Nothing holds the publisher back any more (nobody wants the topic now).
    for _ in 0..2 * capacity {
        assert_eq!(
            publisher
                .publish("md.x", Codec::Raw, b"x", Some(Duration::ZERO))
                .unwrap(),
            None
        );
    }
    drop(publisher);
    drop(bus);
    assert!(shm_ring::inspect(&name.0).unwrap().is_idle());
}

#[test]
fn a_blocked_publisher_reaps_a_killed_lossless_tail_by_itself() {
    let name = BusName::new("tailselfreap");
    let bus = create(&name);
    let capacity = bus.config().ring_capacity as u64;
    let mut tail = Tail::start(&[&name.0, "--lossless"]);
    tail.signal(Signal::SIGSTOP);
    tail.signal(Signal::SIGKILL);
    let _ = tail.child.wait();
    // No reap command: the publisher waiting for the dead tail's slots reaps it itself.
    let mut publisher = bus.publisher().unwrap();
    for i in 0..3 * capacity {
        publisher
            .publish("md.x", Codec::Raw, &i.to_le_bytes(), Some(PATIENCE))
            .expect("a dead tail does not wedge the publisher");
    }
    let r = inspect_json(&name);
    assert_eq!(r["summary"]["subscribers"], 0, "{r}");
}
