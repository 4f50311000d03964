//! Out-of-band buffers land where `wire::buffers` says, on 64-byte boundaries of shared memory
//! (the slab block starts aligned and holds the topic first), whatever the topic's length.

mod common;

use common::BusGuard;
use event_engine_shm::wire::buffers::{self, ALIGN};
use event_engine_shm::{Bus, BusConfig, Codec};
use std::time::Duration;

const SEC: Option<Duration> = Some(Duration::from_secs(5));

#[test]
fn buffers_start_on_64_byte_boundaries_of_the_block() {
    let g = BusGuard::new("oob-align");
    let cfg = BusConfig {
        ring_capacity: 16,
        max_message: 1 << 16,
        ..BusConfig::default()
    };
    let bus = Bus::create(&g.name, &cfg).unwrap();
    let mut sub = bus.subscribe().unwrap();
    let mut publisher = bus.publisher().unwrap();
    for topic_len in [1, 7, 63, 64, 65, 200] {
        let topic = "t".repeat(topic_len);
        let bufs: [&[u8]; 3] = [&[1; 1000], &[2; 5], &[3; 3000]];
        let lens: Vec<usize> = bufs.iter().map(|b| b.len()).collect();
        let layout = buffers::plan(topic.len(), 37, &lens).unwrap();
        publisher
            .publish_with(&topic, Codec::PickleBuffers, layout.len, SEC, |out| {
                buffers::write_header(&layout, out);
                out[layout.pickle.clone()].fill(b'P');
                for (r, b) in layout.buffers.iter().zip(bufs) {
                    out[r.clone()].copy_from_slice(b);
                }
            })
            .unwrap();
        let m = sub.recv(SEC).unwrap().unwrap();
        let read = buffers::parse(m.payload).unwrap();
        assert_eq!(read, layout);
        for (r, b) in read.buffers.iter().zip(bufs) {
            let data = &m.payload[r.clone()];
            assert_eq!(data, b);
            assert_eq!(
                data.as_ptr() as usize % ALIGN,
                0,
                "topic of {topic_len} bytes"
            );
        }
    }
}
