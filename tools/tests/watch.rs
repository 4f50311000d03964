//! `event-engine watch` run as a user would, with stdout not a terminal: a clear refusal, or a
//! plain one-shot view with `--once`. The live view's drawing is unit-tested in `cmd::watch::view`.

mod common;

use common::*;
use shm_ring::Codec;

#[test]
fn watch_needs_a_terminal_or_once() {
    let name = BusName::new("watch");
    let bus = create(&name);
    let _sub = bus.subscribe().unwrap();
    let mut publisher = bus.publisher().unwrap();
    publisher.publish("t", Codec::Raw, b"x", None).unwrap();

    // Tests run with stdout piped.
    assert_error(&run(&["watch", &name.0]), 1, "needs a terminal");
    assert_error(&run(&["watch", &name.0, "--interval", "10"]), 2, "10");

    let o = run(&["watch", &name.0, "--once", "--interval", "50"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    for needle in [
        format!("bus {}", name.0),
        "RING".into(),
        "ring 1/64".into(),
        "SLAB".into(),
        format!("pid {} subscriber lag 1", std::process::id()),
    ] {
        assert!(text.contains(&needle), "{needle:?} not in\n{text}");
    }
    assert!(!text.contains("q quits"));
}
