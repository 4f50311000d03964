//! The W4 program end to end in its everyday build (no iceoryx2): one run of every workload exits
//! successfully, prints the table, and leaves no bus file behind.

use std::process::Command;

#[test]
fn one_run_prints_a_table_and_cleans_up() {
    let child = Command::new(env!("CARGO_BIN_EXE_w4"))
        .args(["--messages", "10000", "--runs", "1"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "w4 failed:\n{stdout}\n{stderr}");
    for row in [
        "W4 throughput: shm-ring (2 procs)",
        "W4 throughput: crossbeam ArrayQueue (2 threads)",
        "W4 latency, busy-poll: shm-ring (2 procs)",
        "W4 latency, busy-poll: crossbeam ArrayQueue (2 threads)",
        "W4 wake-up, parked: shm-ring (2 procs)",
    ] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(row))
            .unwrap_or_else(|| panic!("no row {row:?} in:\n{stdout}"));
        assert!(line.contains("1x"), "row not checked: {line}");
    }
    assert!(stdout.contains("1x10000"), "{stdout}");
    assert!(stdout.contains("Targets:"), "{stdout}");
    let prefix = format!("event_engine.w4-{pid}-");
    let left: Vec<_> = std::fs::read_dir("/dev/shm")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .collect();
    assert!(left.is_empty(), "bus files left behind: {left:?}");
}
