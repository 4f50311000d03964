//! `tick-producer` against a live bus: a Rust subscriber in this test receives what the binary
//! publishes and checks counts, order per topic and the decoded payloads, raw and pickled.

use event_engine_bench::ticks;
use shm_ring::{Bus, BusConfig, Codec, PyValue};
use std::collections::HashMap;
use std::process::{Command, Output};
use std::time::Duration;

/// A unique bus name whose file is removed when dropped, even if the test fails.
struct BusGuard(String);

impl BusGuard {
    fn new(tag: &str) -> BusGuard {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        BusGuard(format!("test-tick-{tag}-{}-{nanos}", std::process::id()))
    }
}

impl Drop for BusGuard {
    fn drop(&mut self) {
        let _ = Bus::unlink(&self.0);
        assert!(!shm_ring::shm_path(&self.0).exists());
    }
}

fn cfg() -> BusConfig {
    BusConfig {
        ring_capacity: 256,
        max_message: 4096,
        slab_memory: Some(600 << 10),
        max_processes: 16,
        ..BusConfig::default()
    }
}

fn producer(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tick-producer"));
    c.args(args);
    c
}

/// Runs the producer while `sub` takes `n` messages; returns them (topic, codec, payload) and
/// the producer's output.
fn run_and_receive(
    sub: &mut shm_ring::Subscriber,
    mut cmd: Command,
    n: usize,
) -> (Vec<(String, u8, Vec<u8>)>, Output) {
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut got = Vec::new();
    while got.len() < n {
        match sub.recv(Some(Duration::from_secs(30))).unwrap() {
            Some(m) => got.push((m.topic.to_string(), m.codec, m.payload.to_vec())),
            None => panic!("no message after {} of {n}", got.len()),
        }
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "tick-producer failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(sub.recv(Some(Duration::ZERO)).unwrap().is_none());
    (got, out)
}

fn summary(out: &Output) -> serde_json::Value {
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    assert_eq!(text.lines().count(), 1, "one JSON line: {text:?}");
    serde_json::from_str(text.trim()).unwrap()
}

#[test]
fn pickled_ticks_round_robin_over_symbols() {
    let g = BusGuard::new("pickled");
    let bus = Bus::create(&g.0, &cfg()).unwrap();
    let mut sub = bus.subscribe().unwrap();
    const N: usize = 3001;
    let cmd = producer(&[
        "--bus",
        &g.0,
        "--symbols",
        "AAPL,MSFT,IBM",
        "--count",
        &N.to_string(),
        "--pickled",
        "--wait-subscribers",
        "1",
    ]);
    let (got, out) = run_and_receive(&mut sub, cmd, N);
    let mut next: HashMap<String, i64> = HashMap::new();
    for (topic, codec, body) in &got {
        assert_eq!(*codec, Codec::Pickle as u8);
        let symbol = topic.strip_prefix("Market.Data.").expect("a market topic");
        let seq = next.entry(topic.clone()).or_insert(0);
        let want = PyValue::Tuple(vec![
            PyValue::Tuple(vec![
                PyValue::Int(*seq),
                PyValue::Float(ticks::price(*seq as u64)),
                PyValue::Str(symbol.to_string()),
            ]),
            PyValue::Dict(vec![(
                "size".into(),
                PyValue::Int(ticks::size(*seq as u64) as i64),
            )]),
        ]);
        assert_eq!(shm_ring::wire::pickle::decode(body).unwrap(), want);
        *seq += 1;
    }
    assert_eq!(next["Market.Data.AAPL"], 1001);
    assert_eq!(next["Market.Data.MSFT"], 1000);
    assert_eq!(next["Market.Data.IBM"], 1000);
    let s = summary(&out);
    assert_eq!(s["total"], N as u64);
    assert_eq!(s["encoding"], "pickled");
    assert_eq!(s["published"]["Market.Data.AAPL"], 1001);
    assert_eq!(s["published"]["Market.Data.MSFT"], 1000);
    assert_eq!(s["published"]["Market.Data.IBM"], 1000);
    assert!(s["msgs_per_s"].as_f64().unwrap() > 0.0);
}

#[test]
fn raw_ticks_on_one_topic() {
    let g = BusGuard::new("raw");
    let bus = Bus::create(&g.0, &cfg()).unwrap();
    let mut sub = bus.subscribe().unwrap();
    const N: usize = 2000;
    let cmd = producer(&[
        "--bus",
        &g.0,
        "--topic",
        "Market.Data.AAPL",
        "--count",
        &N.to_string(),
        "--raw-size",
        "64",
        "--wait-subscribers",
        "1",
    ]);
    let (got, out) = run_and_receive(&mut sub, cmd, N);
    for (i, (topic, codec, body)) in got.iter().enumerate() {
        assert_eq!(topic, "Market.Data.AAPL");
        assert_eq!(*codec, Codec::Raw as u8);
        assert_eq!(body.len(), 64);
        let (seq, price, size, symbol) = ticks::read_raw(body).unwrap();
        let i = i as u64;
        assert_eq!(
            (seq, price, size, symbol.as_str()),
            (i, ticks::price(i), ticks::size(i), "AAPL")
        );
    }
    let s = summary(&out);
    assert_eq!(s["published"]["Market.Data.AAPL"], N as u64);
    assert_eq!(s["encoding"], "raw64");
}

#[test]
fn waiting_for_absent_subscribers_is_a_clear_error() {
    let g = BusGuard::new("wait");
    let bus = Bus::create(&g.0, &cfg()).unwrap();
    let _sub = bus.subscribe().unwrap();
    let out = producer(&[
        "--bus",
        &g.0,
        "--count",
        "10",
        "--wait-subscribers",
        "2",
        "--wait-timeout",
        "0.2",
    ])
    .output()
    .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("only 1 of 2 subscribers attached"),
        "stderr: {err}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn bad_arguments_are_refused_with_a_reason() {
    let g = BusGuard::new("args");
    for (args, says) in [
        (vec!["--raw-size", "16"], "too small"),
        (vec!["--symbols", "AA/PL"], "is not a symbol"),
        (vec!["--rate=-1"], "non-negative"),
    ] {
        let mut all = vec!["--bus", g.0.as_str(), "--count", "1"];
        all.extend(args.iter().copied());
        let out = producer(&all).output().unwrap();
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
    let out = producer(&["--bus", "bad/name", "--count", "1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad/name"));
}
