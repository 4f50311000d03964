//! The W4 program end to end in its everyday build (no iceoryx2): one run of every workload exits
//! successfully, prints the table with every row checked for exactly the messages sent, and leaves
//! no bus file behind.

use std::process::Command;

/// Runs w4 with `args`, asserts it succeeded and left no bus file, and returns its stdout.
fn w4(args: &[&str]) -> String {
    let child = Command::new(env!("CARGO_BIN_EXE_w4"))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "w4 failed:\n{stdout}\n{stderr}");
    let prefix = format!("event_engine.w4-{pid}-");
    let left: Vec<_> = std::fs::read_dir("/dev/shm")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .collect();
    assert!(left.is_empty(), "bus files left behind: {left:?}");
    stdout
}

/// Asserts the table has a row starting with `row` whose "checked" column is `checked`.
fn assert_row(stdout: &str, row: &str, checked: &str) {
    let line = stdout
        .lines()
        .find(|l| l.starts_with(row))
        .unwrap_or_else(|| panic!("no row {row:?} in:\n{stdout}"));
    assert_eq!(
        line.split_whitespace().last(),
        Some(checked),
        "row not checked for {checked}: {line}"
    );
}

#[test]
fn one_run_prints_a_table_and_cleans_up() {
    let stdout = w4(&["--messages", "10000", "--runs", "1"]);
    for (row, checked) in [
        (
            "W4 throughput: shm-ring (2 procs, 1 msg/publish)",
            "1x10000",
        ),
        // 10000 is not a multiple of 32: the last call publishes a shorter run.
        (
            "W4 throughput: shm-ring (2 procs, publish_many runs of 32)",
            "1x10000",
        ),
        ("W4 throughput: crossbeam ArrayQueue (2 threads)", "1x10000"),
        (
            "W4 latency, busy-poll: shm-ring (2 procs, 1 msg/publish)",
            "1x100000",
        ),
        (
            "W4 latency, busy-poll: crossbeam ArrayQueue (2 threads)",
            "1x100000",
        ),
        (
            "W4 wake-up, parked: shm-ring (2 procs, 1 msg/publish)",
            "1x2000",
        ),
    ] {
        assert_row(&stdout, row, checked);
    }
    assert!(stdout.contains("Targets:"), "{stdout}");
    assert!(
        stdout.contains("crossbeam's ArrayQueue has no batch push"),
        "{stdout}"
    );
}

#[test]
fn batch_row_with_a_topic_too_long_for_the_slot() {
    // 80 + 64 bytes do not fit the 136 inline bytes of a slot: publish_many falls back to one
    // publish per message through the slab, and every message must still arrive once, in order.
    let topic = "T".repeat(80);
    let stdout = w4(&[
        "--messages",
        "5001",
        "--runs",
        "1",
        "--batch",
        "7",
        "--topic",
        &topic,
        "--latency-messages",
        "1000",
        "--parked-messages",
        "0",
        "--no-crossbeam",
    ]);
    assert_row(
        &stdout,
        "W4 throughput: shm-ring (2 procs, publish_many runs of 7)",
        "1x5001",
    );
    assert_row(
        &stdout,
        "W4 throughput: shm-ring (2 procs, 1 msg/publish)",
        "1x5001",
    );
}

#[test]
fn batch_zero_leaves_the_batch_row_out() {
    let stdout = w4(&[
        "--messages",
        "1000",
        "--runs",
        "1",
        "--batch",
        "0",
        "--latency-messages",
        "1000",
        "--parked-messages",
        "0",
        "--no-crossbeam",
    ]);
    assert_row(
        &stdout,
        "W4 throughput: shm-ring (2 procs, 1 msg/publish)",
        "1x1000",
    );
    assert!(!stdout.contains("publish_many"), "{stdout}");
}
