//! `event-engine reap` and `rm` against live buses, including a process killed while it
//! held a subscriber.

mod common;

use common::*;
use serde_json::Value;
use shm_ring::{Bus, Codec};

#[test]
fn child_process() {
    child_main();
}

fn slab_used(r: &Value) -> u64 {
    r["slab"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["used"].as_u64().unwrap())
        .sum()
}

fn row_of(r: &Value, pid: u32) -> Option<&Value> {
    r["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pid"] == pid)
}

#[test]
fn reap_frees_what_a_killed_subscriber_held() {
    let name = BusName::new("reap");
    let bus = create(&name);
    let mut child = ChildProcess::spawn("subscriber", &name);
    let pid = child.pid();
    let mut publisher = bus.publisher().unwrap();
    for _ in 0..8 {
        publisher
            .publish("job", Codec::Raw, &[1u8; 1000], None)
            .unwrap();
    }
    let before = inspect_json(&name);
    assert_eq!(slab_used(&before), 8);
    assert_eq!(before["ring"]["occupancy"], 8);
    assert_eq!(row_of(&before, pid).unwrap()["alive"], true);

    child.kill();
    let dead = inspect_json(&name);
    assert_eq!(row_of(&dead, pid).unwrap()["alive"], false);
    assert_eq!(slab_used(&dead), 8, "nothing is freed before the reap");

    let o = run(&["reap", &name.0]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("reaped 1 dead process"), "{text}");
    assert!(text.contains(&format!("pid {pid}")), "{text}");
    assert!(text.contains("slab blocks in use: 8 -> 0"), "{text}");

    let after = inspect_json(&name);
    assert!(row_of(&after, pid).is_none(), "{after:#}");
    assert_eq!(slab_used(&after), 0);
    assert_eq!(after["ring"]["occupancy"], 0);
    // The child held two rows: its bus handle and its subscriber.
    assert_eq!(after["counters"]["reaped"], 2);
    assert_eq!(after["summary"]["subscribers"], 0);

    // Nothing left to do the second time.
    let o = run(&["reap", &name.0, "--json"]);
    assert!(o.status.success());
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["reaped"].as_array().unwrap().len(), 0);
    assert_eq!(r["slab_used_after"], 0);
}

#[test]
fn rm_refuses_while_live_processes_are_attached_and_force_removes() {
    let name = BusName::new("rmlive");
    let bus = create(&name);
    let child = ChildProcess::spawn("group:workers", &name);
    let o = run(&["rm", &name.0]);
    assert_error(&o, 1, "in use");
    assert!(
        stderr(&o).contains(&child.pid().to_string()),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("--force"), "{}", stderr(&o));
    assert!(name.path().exists());

    let o = run(&["rm", &name.0, "--force"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!name.path().exists());
    assert!(matches!(
        Bus::open(&name.0),
        Err(shm_ring::BusError::NotFound { .. })
    ));
    drop(child);
    drop(bus);
    assert!(!name.path().exists());
}

#[test]
fn rm_removes_an_idle_bus_and_one_whose_processes_died() {
    let name = BusName::new("rmidle");
    drop(create(&name));
    let o = run(&["rm", &name.0]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("removed bus"));
    assert!(!name.path().exists());
    let listed: Value = serde_json::from_slice(&run(&["ls", "--json"]).stdout).unwrap();
    assert!(listed["buses"]
        .as_array()
        .unwrap()
        .iter()
        .all(|b| b["name"] != name.0.as_str()));

    let name = BusName::new("rmdead");
    drop(create(&name));
    let mut child = ChildProcess::spawn("subscriber", &name);
    child.kill();
    let o = run(&["rm", &name.0]);
    assert!(
        o.status.success(),
        "dead processes do not count: {}",
        stderr(&o)
    );
    assert!(!name.path().exists());
}

#[test]
fn rm_of_an_unreadable_file_needs_force() {
    let name = BusName::new("rmgarbage");
    std::fs::write(name.path(), vec![0u8; 8192]).unwrap();
    assert_error(&run(&["rm", &name.0]), 5, "--force");
    assert!(name.path().exists());
    assert!(run(&["rm", &name.0, "--force"]).status.success());
    assert!(!name.path().exists());
}

/// A directory at a bus's path is refused with an error that says to remove it with
/// `rm --force`; that command then does remove it, and what it holds.
#[test]
fn rm_force_removes_a_directory_at_the_bus_path() {
    struct RemoveDir(std::path::PathBuf);
    impl Drop for RemoveDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let name = BusName::new("rmdir");
    std::fs::create_dir(name.path()).unwrap();
    let _cleanup = RemoveDir(name.path());
    std::fs::write(name.path().join("stray"), b"x").unwrap();
    let o = run(&["inspect", &name.0]);
    assert!(
        stderr(&o).contains(&format!("event-engine rm --force {}", name.0)),
        "{}",
        stderr(&o)
    );
    assert_error(&run(&["rm", &name.0]), 5, "--force");
    assert!(name.path().exists());
    let o = run(&["rm", &name.0, "--force"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!name.path().exists());
}

/// A reap that drops a group says so: the group and the messages it still held, in the text
/// and in the JSON (a group with a retention of 0 goes with its last member).
#[test]
fn reap_reports_a_group_it_drops_with_its_backlog() {
    for json in [false, true] {
        let name = BusName::new("reapgroup");
        let bus = Bus::create(
            &name.0,
            &shm_ring::BusConfig {
                group_retention_ms: 0,
                ..small_config()
            },
        )
        .unwrap();
        let mut child = ChildProcess::spawn("group:w", &name);
        let pid = child.pid();
        let mut publisher = bus.publisher().unwrap();
        for _ in 0..5 {
            publisher
                .publish("job", Codec::Raw, &[1u8; 8], None)
                .unwrap();
        }
        child.kill();
        let o = if json {
            run(&["reap", &name.0, "--json"])
        } else {
            run(&["reap", &name.0])
        };
        assert!(o.status.success(), "{}", stderr(&o));
        let text = stdout(&o);
        if json {
            let r: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(r["reaped"][0]["pid"], pid, "{text}");
            assert_eq!(r["groups_expired"], 1, "{text}");
            assert_eq!(r["backlog_dropped"], 5, "{text}");
        } else {
            assert!(!text.contains("nothing to reap"), "{text}");
            assert!(text.contains("reaped 1 dead process"), "{text}");
            assert!(text.contains("dropped 1 group"), "{text}");
            assert!(text.contains("5 messages dropped"), "{text}");
        }
        assert!(inspect_json(&name)["groups"].as_array().unwrap().is_empty());
        drop((publisher, bus));
    }
}
