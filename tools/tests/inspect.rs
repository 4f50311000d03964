//! `event-engine inspect`, `ls` and the error cases every subcommand shares, run as a user would
//! against live buses made by this test process and its children.

mod common;

use common::*;
use serde_json::Value;
use shm_ring::Codec;
use std::time::Duration;

#[test]
fn child_process() {
    child_main();
}

fn find_process<'a>(report: &'a Value, pid: u32, role: &str) -> &'a Value {
    report["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pid"] == pid && p["role"] == role)
        .unwrap_or_else(|| panic!("no {role} row for pid {pid} in {report:#}"))
}

#[test]
fn inspect_json_reports_known_counts() {
    let name = BusName::new("inspect");
    let bus = create(&name);
    let mut p1 = bus.publisher().unwrap();
    let _p2 = bus.publisher().unwrap();
    let mut fanout = bus.subscribe().unwrap();
    let mut worker = bus.subscribe_group("workers").unwrap();
    let child = ChildProcess::spawn("group:workers", &name);

    let payload = vec![7u8; 1000];
    for _ in 0..5 {
        p1.publish("md.tick", Codec::Raw, &payload, None).unwrap();
    }
    let t = Some(Duration::from_secs(5));
    assert_eq!(fanout.recv_batch(2, t, |_| {}).unwrap(), 2);
    assert_eq!(worker.recv_batch(1, t, |_| {}).unwrap(), 1);

    let r = inspect_json(&name);
    let me = std::process::id();
    assert_eq!(r["schema"], 1);
    assert_eq!(r["name"], name.0.as_str());
    assert_eq!(r["geometry"]["ring_capacity"], 64);
    assert_eq!(r["geometry"]["max_message"], 4096);
    assert_eq!(r["ring"]["head"], 5);
    assert_eq!(r["ring"]["capacity"], 64);
    assert_eq!(r["counters"]["published"], 5);
    let s = &r["summary"];
    assert_eq!(s["publishers"], 2);
    assert_eq!(s["subscribers"], 1);
    assert_eq!(s["group_members"], 2);
    assert_eq!(s["groups"], 1);
    // This test process and the child, each holding several rows.
    assert_eq!(s["processes"], 2);
    assert_eq!(s["alive"], 2);
    assert!(s["rows"].as_u64().unwrap() >= 5, "{s}");
    // Counted in processes: this one holds two publisher rows, both hold a group member row.
    assert_eq!(s["publishing_processes"], 1);
    assert_eq!(s["subscribing_processes"], 1);
    assert_eq!(s["member_processes"], 2);

    let sub = find_process(&r, me, "subscriber");
    assert_eq!(sub["lag"], 3);
    assert_eq!(sub["delivered"], 2);
    assert_eq!(sub["alive"], true);
    let pubrow = find_process(&r, me, "publisher");
    assert!(pubrow["cursor"].is_null() && pubrow["lag"].is_null());
    let theirs = find_process(&r, child.pid(), "group_member");
    assert_eq!(theirs["group"], "workers");
    assert_eq!(theirs["alive"], true);
    // Live processes come with their command line (the test binary, for both).
    let exe = std::env::current_exe().unwrap();
    let exe_name = exe.file_name().unwrap().to_str().unwrap();
    for row in [sub, theirs] {
        let command = row["command"]
            .as_str()
            .unwrap_or_else(|| panic!("no command in {row}"));
        assert!(command.contains(exe_name), "{command}");
    }

    let groups = r["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0]["name"], "workers");
    assert_eq!(groups[0]["members"], 2);
    assert_eq!(groups[0]["lag"], 4);
    // The first message reached both consumers and was released; the other four are still
    // pending for someone, so each holds a slab block.
    let used: u64 = r["slab"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["used"].as_u64().unwrap())
        .sum();
    assert_eq!(used, 4);
    assert_eq!(r["ring"]["occupancy"], 4);

    // The readable view shows the same things.
    let o = run(&["inspect", &name.0]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    for needle in [
        "PROCESSES",
        "GROUPS",
        "SLAB",
        "COUNTERS",
        "workers",
        &child.pid().to_string(),
        "occupancy 4/64",
        "attached: 2 processes (2 alive): 1 publishing, 1 subscribing, 2 in groups",
        "publishes, subscribes, member of workers",
        exe_name,
    ] {
        assert!(text.contains(needle), "{needle:?} not in:\n{text}");
    }
    // One line per process; the rows only with --verbose.
    let my_lines = text
        .lines()
        .filter(|l| l.trim_start().starts_with(&format!("{me} ")))
        .count();
    assert_eq!(my_lines, 1, "{text}");
    assert!(!text.contains("LAST WAIT"), "{text}");
    let o = run(&["inspect", "--verbose", &name.0]);
    assert!(o.status.success(), "{}", stderr(&o));
    let verbose = stdout(&o);
    for needle in ["ROWS", "LAST WAIT", "group_member", "publisher"] {
        assert!(verbose.contains(needle), "{needle:?} not in:\n{verbose}");
    }
    let my_rows = verbose
        .lines()
        .filter(|l| l.split_whitespace().nth(1) == Some(me.to_string().as_str()))
        .count();
    assert!(my_rows >= 4, "{verbose}");
}

#[test]
fn ls_lists_a_bus() {
    let name = BusName::new("ls");
    let bus = create(&name);
    let _sub = bus.subscribe().unwrap();

    let o = run(&["ls", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let entry = v["buses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == name.0.as_str())
        .unwrap_or_else(|| panic!("{} not listed in {v:#}", name.0));
    // The bus handle and the subscriber are two rows of one process.
    assert_eq!(entry["attached"], 1);
    assert_eq!(entry["alive"], 1);
    assert!(entry["error"].is_null());
    assert!(entry["size"].as_u64().unwrap() > 0);
    // AGE is the bus's age, as inspect has it.
    let created = entry["created_ns"].as_u64().unwrap();
    assert_eq!(inspect_json(&name)["created_ns"], created);

    let o = run(&["ls"]);
    assert!(o.status.success());
    let text = stdout(&o);
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("{} ", name.0)))
        .unwrap_or_else(|| panic!("no line for {} in:\n{text}", name.0));
    assert!(line.ends_with("ok"), "{line}");
}

#[test]
fn unknown_bus() {
    let name = BusName::new("missing");
    for cmd in ["inspect", "reap", "rm", "tail", "watch"] {
        assert_error(&run(&[cmd, &name.0]), 3, "does not exist");
    }
    assert_error(&run(&["publish", &name.0, "a.b"]), 3, "does not exist");
}

#[test]
fn bad_name() {
    for cmd in ["inspect", "reap", "rm", "tail", "watch"] {
        assert_error(&run(&[cmd, "../x"]), 4, "invalid bus name");
    }
    assert_error(&run(&["publish", "a/b", "t"]), 4, "invalid bus name");
}

#[test]
fn garbage_file_is_reported_as_corrupt() {
    let name = BusName::new("garbage");
    std::fs::write(name.path(), vec![0xabu8; 64 * 1024]).unwrap();
    let o = run(&["inspect", &name.0]);
    assert_error(&o, 5, "corrupt");
    assert!(stderr(&o).contains("magic"), "{}", stderr(&o));
    // A file too short for a header.
    std::fs::write(name.path(), b"hello").unwrap();
    assert_error(&run(&["inspect", &name.0, "--json"]), 5, "corrupt");
    // ls still lists it, with the reason.
    let v: Value = serde_json::from_slice(&run(&["ls", "--json"]).stdout).unwrap();
    let entry = v["buses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == name.0.as_str())
        .expect("garbage file listed");
    assert!(entry["error"].as_str().unwrap().contains("corrupt"));
}

#[test]
fn wrong_layout_version_is_named() {
    let name = BusName::new("version");
    drop(create(&name));
    let mut bytes = std::fs::read(name.path()).unwrap();
    // The header starts with the 8-byte magic, then the little-endian u32 layout version.
    bytes[8] = 99;
    std::fs::write(name.path(), &bytes).unwrap();
    let o = run(&["inspect", &name.0]);
    assert_error(&o, 5, "layout version");
    assert!(stderr(&o).contains("99"), "{}", stderr(&o));
}

#[test]
fn usage_errors() {
    assert_error(&run(&["inspect"]), 2, "NAME");
    assert_error(&run(&["frobnicate"]), 2, "frobnicate");
    let o = run(&["--help"]);
    assert!(o.status.success());
    assert!(stdout(&o).contains("Exit status"));
}

#[test]
fn inspect_help_documents_every_json_field() {
    let name = BusName::new("schema");
    let bus = create(&name);
    let _sub = bus.subscribe_group("g").unwrap();
    let _publisher = bus.publisher().unwrap();
    let r = inspect_json(&name);
    let help = stdout(&run(&["inspect", "--help"]));
    let mut fields: Vec<String> = r.as_object().unwrap().keys().cloned().collect();
    for section in ["geometry", "ring", "summary", "counters"] {
        fields.extend(r[section].as_object().unwrap().keys().cloned());
    }
    for list in ["processes", "groups", "slab"] {
        fields.extend(r[list][0].as_object().unwrap().keys().cloned());
    }
    for field in fields {
        assert!(
            help.contains(&field),
            "{field} is not documented in:\n{help}"
        );
    }
}

#[test]
fn inspect_shows_topics_their_rates_consumers_and_unrouted_messages() {
    let name = BusName::new("topics");
    let bus = create(&name);
    let me = std::process::id();
    let _md = bus
        .subscribe_with(&shm_ring::SubscribeOptions {
            topics: Some(vec!["md.{symbol}".into()]),
            ..Default::default()
        })
        .unwrap();
    let mut publisher = bus.publisher().unwrap();
    for _ in 0..5 {
        publisher
            .publish("md.A", Codec::Raw, &[1; 10], None)
            .unwrap();
    }
    publisher
        .publish("md.B", Codec::Raw, &[1; 3], None)
        .unwrap();
    for _ in 0..2 {
        assert_eq!(
            publisher.publish("news.x", Codec::Raw, b"n", None).unwrap(),
            None
        );
    }
    // Messages keep flowing while inspect takes its two snapshots.
    let flowing = std::thread::spawn(move || {
        for _ in 0..40 {
            publisher
                .publish("md.A", Codec::Raw, &[1; 10], None)
                .unwrap();
            std::thread::sleep(Duration::from_millis(15));
        }
        publisher
    });
    let o = run(&["inspect", &name.0, "--json", "--interval", "300"]);
    let publisher = flowing.join().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    let topic = |t: &str| {
        r["topics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["topic"] == t)
            .unwrap_or_else(|| panic!("{t} not in {r:#}"))
            .clone()
    };
    let a = topic("md.A");
    let a_messages = a["messages"].as_u64().unwrap();
    assert!((6..=45).contains(&a_messages), "{a}");
    assert_eq!(a["bytes"].as_u64().unwrap(), 10 * a_messages);
    assert!(a["messages_per_s"].as_f64().unwrap() > 0.0, "{a}");
    assert_eq!(a["publishers"], serde_json::json!([me]));
    assert_eq!(a["consumers"][0]["pids"], serde_json::json!([me]));
    assert_eq!(a["consumers"][0]["group"], Value::Null);
    assert_eq!(topic("md.B")["bytes"], 3);
    let news = topic("news.x");
    assert_eq!(
        (news["messages"].as_u64(), news["unrouted"].as_u64()),
        (Some(0), Some(2))
    );
    assert_eq!(news["consumers"], serde_json::json!([]));
    assert_eq!(r["counters"]["unrouted"], 2);
    assert!(r["rates_over_ms"].as_u64().unwrap() >= 300);
    assert_eq!(
        r["consumers"][0]["topics"],
        serde_json::json!(["md.{symbol}"])
    );
    assert_eq!(r["blocked"], serde_json::json!([]));

    // Without an interval: totals, no rates. A publisher that left still counts.
    drop(publisher);
    let o = run(&["inspect", &name.0, "--interval", "0"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.contains("TOPICS (no rates; totals since the bus was created)"),
        "{text}"
    );
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("news.x"))
        .unwrap();
    assert!(line.contains(" 2 ") && line.contains("none"), "{line}");
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("md.A"))
        .unwrap();
    assert!(line.contains(&format!("pid {me}")), "{line}");
    assert!(text.contains("UNROUTED"), "{text}");
}

#[test]
fn inspect_names_the_consumer_a_blocked_publisher_waits_for() {
    let name = BusName::new("blocked");
    let bus = create(&name);
    // A group whose only member never reads: the ring fills and the publisher waits for it.
    let child = ChildProcess::spawn("group:workers", &name);
    let mut publisher = bus.publisher().unwrap();
    while publisher
        .publish("md.x", Codec::Raw, b"x", Some(Duration::ZERO))
        .is_ok()
    {}
    let waiting = std::thread::spawn(move || {
        let r = publisher.publish("md.x", Codec::Raw, b"x", Some(Duration::from_secs(60)));
        (publisher, r)
    });
    let mut r = inspect_json(&name);
    for _ in 0..100 {
        if !r["blocked"].as_array().unwrap().is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
        r = inspect_json(&name);
    }
    let b = &r["blocked"][0];
    assert_eq!(b["pid"], std::process::id(), "{r:#}");
    assert!(b["since_ns"].as_u64().unwrap() > 0);
    assert_eq!(b["waiting_for"][0]["group"], "workers");
    assert_eq!(
        b["waiting_for"][0]["pids"],
        serde_json::json!([child.pid()])
    );

    let o = run(&["inspect", &name.0, "--interval", "0"]);
    let text = stdout(&o);
    assert!(text.contains("BLOCKED PUBLISHERS"), "{text}");
    let line = text
        .lines()
        .find(|l| l.contains(&format!("group workers (pid {})", child.pid())))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains("s ago"), "{line}");
    let exe = std::env::current_exe().unwrap();
    assert!(
        line.contains(exe.to_str().unwrap()),
        "the member's command line: {line}"
    );

    // The member dies; the group keeps its backlog for its retention, so the publisher still
    // waits, now for a group with no member.
    drop(child);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let r = loop {
        let r = inspect_json(&name);
        if r["blocked"][0]["waiting_for"][0]["pids"] == serde_json::json!([]) {
            break r;
        }
        assert!(std::time::Instant::now() < deadline, "{r:#}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(r["blocked"][0]["waiting_for"][0]["group"], "workers");
    let text = stdout(&run(&["inspect", &name.0, "--interval", "0"]));
    assert!(text.contains("group workers (no member)"), "{text}");

    // A new member takes up the backlog: the publisher goes on.
    let mut worker = bus.subscribe_group("workers").unwrap();
    while !waiting.is_finished() {
        worker
            .recv_batch(256, Some(Duration::from_millis(50)), |_| {})
            .unwrap();
    }
    let (_publisher, result) = waiting.join().unwrap();
    assert!(result.is_ok(), "{result:?}");
    assert_eq!(inspect_json(&name)["blocked"], serde_json::json!([]));
}

/// A process that shrinks the file at `path` to one page and grows it back to `size`, over and
/// over, as user `uid` (another user's own file, changed under a reader); killed when dropped.
struct Shrinker(std::process::Child);

impl Shrinker {
    fn start(path: &std::path::Path, size: u64, uid: Option<u32>) -> Shrinker {
        let code = "import os, sys\n\
                    path, size, uid = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])\n\
                    if uid >= 0:\n    os.setgid(uid); os.setuid(uid)\n\
                    fd = os.open(path, os.O_RDWR)\n\
                    print('shrinking', flush=True)\n\
                    while True:\n    os.ftruncate(fd, 4096); os.ftruncate(fd, size)\n";
        let mut child = Shrinker(
            std::process::Command::new("python3")
                .args(["-c", code])
                .arg(path)
                .arg(size.to_string())
                .arg(uid.map_or(-1, i64::from).to_string())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("python3 runs the shrinker"),
        );
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.0.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        assert_eq!(line.trim(), "shrinking");
        child
    }
}

impl Drop for Shrinker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn ls_survives_bus_files_shrunk_under_it() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: making a file of another user needs root");
        return;
    }
    const NOBODY: u32 = 65534;
    let theirs = BusName::new("ls-theirs");
    let mine = BusName::new("ls-mine");
    drop(create(&theirs));
    drop(create(&mine));
    std::os::unix::fs::chown(theirs.path(), Some(NOBODY), Some(NOBODY)).unwrap();
    let size = std::fs::metadata(mine.path()).unwrap().len();
    // Another user shrinks and regrows their own file; and a file of ours shrinks too.
    let shrinkers = [
        Shrinker::start(&theirs.path(), size, Some(NOBODY)),
        Shrinker::start(&mine.path(), size, None),
    ];
    let (mut crashes, mut runs, mut read_theirs) = (Vec::new(), 0, 0);
    for _ in 0..150 {
        let o = run(&["ls", "--json"]);
        runs += 1;
        if !o.status.success() {
            crashes.push(format!("{:?}", o.status));
            continue;
        }
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        let entry = v["buses"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["name"] == theirs.0.as_str())
            .cloned()
            .expect("the other user's bus is listed");
        let error = entry["error"].as_str().unwrap_or_default();
        if !error.contains("belongs to uid 65534") {
            read_theirs += 1;
        }
    }
    drop(shrinkers);
    assert!(
        crashes.is_empty(),
        "ls crashed in {} of {runs} runs: {crashes:?}",
        crashes.len()
    );
    assert_eq!(
        read_theirs, 0,
        "ls read another user's file instead of refusing it"
    );
}
