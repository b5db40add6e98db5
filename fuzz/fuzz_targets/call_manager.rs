//! The whole sans-IO call manager from the first byte: a sequence of datagrams from a few
//! sources and timer ticks, cut from the input. It may not panic, and it may send only to
//! a sender or a configured trunk — never to an address a message merely names.
#![no_main]
use freecall::call::{Manager, Settings};
use freecall::clock::NowForTests;
use freecall::config::Config;
use freecall::media::NullMedia;
use freecall::routing::Routing;
use freecall::sip::Transport;
use freecall::transaction::{Peer, Timers};
use libfuzzer_sys::fuzz_target;
use std::time::{Duration, Instant};

fn manager() -> Manager {
    let cfg = Config::from_toml(
        "[sip]\nlisten = \"127.0.0.1:5060\"\n[media]\naddress = \"127.0.0.1\"\nport_min = 20000\nport_max = 30000\n\
[[peers]]\nname = \"pbx\"\naddress = \"127.0.0.1/32\"\n\
[[trunks]]\nname = \"t0\"\naddress = \"127.0.0.1:5080\"\n[[trunks]]\nname = \"t1\"\naddress = \"127.0.0.1:5081\"\n\
[[routes]]\nprefix = \"\"\ntrunks = [\"t0\", \"t1\"]\n",
    )
    .expect("config");
    let settings = Settings {
        advertised: "127.0.0.1:5060".parse().unwrap(),
        user_agent: "freecall-fuzz".into(),
        max_calls: 100,
        ring_timeout: Duration::from_secs(180),
        timers: Timers::default(),
        seed: 7,
        billing: None,
        media: Default::default(),
        node: "fuzz".into(),
        records: true,
        trunk_ping: Some(Duration::from_secs(30)),
        placed_ring: Duration::from_secs(30),
        placed_answer: Duration::from_secs(15),
        visitor_sees: None,
        limits: Default::default(),
    };
    Manager::new(
        settings,
        Routing::from_config(&cfg),
        Box::new(NullMedia::new()),
    )
}

/// Where a datagram comes from: the trusted PBX, a stranger, or a trunk (answers).
const SOURCES: [&str; 4] = [
    "127.0.0.1:5070",
    "127.0.0.2:5070",
    "127.0.0.1:5080",
    "127.0.0.1:5081",
];

fuzz_target!(|data: &[u8]| {
    let mut m = manager();
    let mut now = Instant::now_for_tests();
    // Records: [op][len hi][len lo][bytes…]; op's low 2 bits pick the source, bit 2 a
    // tick of (op >> 3) × 100 ms before it, bit 7 TCP framing.
    let mut rest = data;
    while rest.len() >= 3 {
        let (op, len) = (rest[0], usize::from(u16::from_be_bytes([rest[1], rest[2]])));
        rest = &rest[3..];
        let take = len.min(rest.len());
        let (bytes, after) = rest.split_at(take);
        rest = after;
        if op & 4 != 0 {
            now += Duration::from_millis(u64::from(op >> 3) * 100);
            m.handle_timeout(now);
        }
        let tcp = op & 0x80 != 0;
        let from = Peer {
            transport: if tcp { Transport::Tcp } else { Transport::Udp },
            addr: SOURCES[usize::from(op & 3)].parse().unwrap(),
        };
        m.handle_bytes(now, from, bytes, tcp, Duration::ZERO);
        while let Some(t) = m.poll_transmit() {
            let ok = SOURCES.contains(&t.dest.to_string().as_str());
            assert!(ok, "sent to {}", t.dest);
        }
        while m.poll_billing().is_some() {}
    }
    now += Duration::from_secs(64);
    m.handle_timeout(now);
    while let Some(t) = m.poll_transmit() {
        assert!(
            SOURCES.contains(&t.dest.to_string().as_str()),
            "sent to {}",
            t.dest
        );
    }
});
