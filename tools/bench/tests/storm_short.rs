//! Short kill-storm and join/leave-churn runs with real processes (the `storm` program): nothing
//! lost from the steady publishers, nothing corrupt, no publisher held past its minute-long
//! deadline, and an idle bus once everyone has left. On the code before the reap's tombstone was
//! made its only write and addressing was decided after the claim, runs like these corrupted a
//! slot ("inline length 184") and wedged publishers behind an idle engine within 30 seconds.

use std::process::Command;

fn storm(mode: &str, seconds: &str) {
    let child = Command::new(env!("CARGO_BIN_EXE_storm"))
        .args([mode, "--seconds", seconds])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "storm {mode} failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("0 gaps and 0 missing") && stdout.contains(", 0 corrupt payloads"),
        "{stdout}"
    );
    assert!(stdout.contains("bus idle after everyone left"), "{stdout}");
    let file = format!("/dev/shm/event_engine.storm-{pid}");
    assert!(!std::path::Path::new(&file).exists(), "{file} left behind");
}

#[test]
fn a_kill_storm_loses_nothing_and_corrupts_nothing() {
    storm("kill", "8");
}

#[test]
fn a_join_and_leave_churn_loses_nothing_and_corrupts_nothing() {
    storm("churn", "8");
}
