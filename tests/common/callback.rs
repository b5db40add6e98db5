//! What the sans-IO call-back tests share: a call manager without sockets whose media
//! side records what it was asked to play, a card's call-back request (the issuer's two
//! numbers, the visitor's number with an extension), and the trunk's side of each
//! exchange: what the switch sent, and the far end's responses.
#![allow(dead_code)]

use freecall::billing::Authorization;
use freecall::call::{Command, Extras, Flow, Manager, Originate, Settings, Target};
use freecall::clock::NowForTests;
use freecall::config::Config;
use freecall::media::{
    Endpoints, LegFormat, MediaControl, MediaError, MediaId, MediaStats, Play, Remote, Side,
};
use freecall::numbers::DestinationKind;
use freecall::routing::Routing;
use freecall::sip::{Message, Transport, parse_datagram};
use freecall::transaction::{Peer, Timers};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const SWITCH: &str = "127.0.0.1:5060";
pub const TRUNK: &str = "127.0.0.1:5080";

/// Media that remembers what the call layer asked of it.
#[derive(Clone, Default)]
pub struct Recorded(Arc<Mutex<Vec<String>>>);

impl Recorded {
    pub fn log(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
    pub fn push(&self, s: String) {
        self.0.lock().unwrap().push(s);
    }
}

impl MediaControl for Recorded {
    fn allocate(&mut self) -> Result<(MediaId, Endpoints), MediaError> {
        Ok((
            MediaId(1),
            Endpoints {
                a: "127.0.0.1:40000".parse().unwrap(),
                b: "127.0.0.1:40002".parse().unwrap(),
            },
        ))
    }
    fn set_remote(&mut self, _: MediaId, side: Side, r: Remote) {
        self.push(format!("remote {side:?} {:?}", r.rtp));
    }
    fn set_format(&mut self, _: MediaId, side: Side, f: LegFormat) {
        self.push(format!("format {side:?} {}", f.name()));
    }
    fn arm(&mut self, _: MediaId) {
        self.push("arm".into());
    }
    fn play(&mut self, _: MediaId, side: Side, what: Play) {
        self.push(format!("play {side:?} {what:?}"));
    }
    fn stop_playing(&mut self, _: MediaId, side: Side) {
        self.push(format!("stop {side:?}"));
    }
    fn record(&mut self, _: MediaId, path: std::path::PathBuf) {
        self.push(format!("record {}", path.display()));
    }
    fn stats(&self, _: MediaId) -> Option<MediaStats> {
        None
    }
    fn release(&mut self, _: MediaId) {
        self.push("release".into());
    }
}

pub fn manager(media: Recorded) -> Manager {
    manager_with(media, "", None)
}

/// `manager` with lines added to the trunk's entry, and the number visitors are shown.
pub fn manager_with(media: Recorded, trunk_extra: &str, visitor_sees: Option<&str>) -> Manager {
    let cfg = Config::from_toml(&format!(
        "[sip]\nlisten = \"{SWITCH}\"\n[media]\naddress = \"127.0.0.1\"\nport_min = 20000\nport_max = 30000\n\
[[trunks]]\nname = \"pstn\"\naddress = \"{TRUNK}\"\n{trunk_extra}\
[[routes]]\nprefix = \"\"\ntrunks = [\"pstn\"]\n"
    ))
    .unwrap();
    let settings = Settings {
        advertised: SWITCH.parse().unwrap(),
        user_agent: "freecall-test".into(),
        max_calls: 100,
        ring_timeout: Duration::from_secs(180),
        timers: Timers::default(),
        seed: 7,
        billing: None,
        media: freecall::call::CallMedia {
            announce: true,
            warning: Duration::from_secs(60),
            ..Default::default()
        },
        node: "test".into(),
        records: true,
        trunk_ping: None,
        placed_ring: Duration::from_secs(30),
        placed_answer: Duration::from_secs(15),
        visitor_sees: visitor_sees.map(str::to_string),
        limits: Default::default(),
    };
    let mut m = Manager::new(settings, Routing::from_config(&cfg), Box::new(media));
    m.set_wall_clock(Instant::now_for_tests(), 1_780_000_000_000);
    m
}

fn target(number: &str, kind: DestinationKind, post_dial: &str) -> Target {
    Target {
        number: number.into(),
        destination: kind,
        post_dial: post_dial.into(),
        registered: None,
    }
}

fn auth(reservation: i64, call_id: &str, max_secs: i64) -> Authorization {
    Authorization {
        reservation,
        call_id: call_id.into(),
        account: 3,
        max_secs,
        limit_reason: "guild exhausted",
    }
}

pub fn callback(max_secs: i64) -> Command {
    callback_with(max_secs, Extras::default())
}

pub fn callback_with(max_secs: i64, extras: Extras) -> Command {
    Command::Originate(Box::new(Originate {
        id: "fc-cb1".into(),
        flow: Flow::Callback,
        first: vec![
            target("01011112222", DestinationKind::Mobile, ""),
            target("0255550000", DestinationKind::Landline, ""),
        ],
        second: target("025561234", DestinationKind::Landline, "235"),
        billing: vec![
            auth(11, "fc-cb1/issuer", max_secs),
            auth(12, "fc-cb1/visitor", max_secs),
        ],
        card: Some(7),
        account: Some(3),
        language: "ko".into(),
        extras,
    }))
}

pub fn trunk() -> Peer {
    Peer {
        transport: Transport::Udp,
        addr: TRUNK.parse().unwrap(),
    }
}

/// What the switch sent since the last call, parsed.
pub fn sent(m: &mut Manager) -> Vec<Message> {
    std::iter::from_fn(|| m.poll_transmit())
        .map(|t| {
            assert_eq!(t.dest, TRUNK.parse::<SocketAddr>().unwrap());
            parse_datagram(&t.bytes).expect("the switch sends parsable SIP")
        })
        .collect()
}

pub fn invites(msgs: &[Message]) -> Vec<&Message> {
    msgs.iter()
        .filter(|m| m.method().map(|x| x.as_str()) == Some("INVITE"))
        .collect()
}

pub fn requests<'a>(msgs: &'a [Message], method: &str) -> Vec<&'a Message> {
    msgs.iter()
        .filter(|m| m.method().map(|x| x.as_str()) == Some(method))
        .collect()
}

pub const PHONE_SDP: &str = "v=0\r\no=p 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
m=audio 4000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n";

/// The far end's response to a request the switch sent.
pub fn respond(req: &Message, code: u16, tag: &str, sdp: bool) -> Message {
    let body = if sdp { PHONE_SDP } else { "" };
    let text = format!(
        "SIP/2.0 {code} X\r\nVia: {}\r\nFrom: {}\r\nTo: {};tag={tag}\r\nCall-ID: {}\r\nCSeq: {} {}\r\n\
Contact: <sip:phone@{TRUNK}>\r\n{}Content-Length: {}\r\n\r\n{body}",
        req.header("Via").unwrap(),
        req.from,
        req.to,
        req.call_id,
        req.cseq,
        req.cseq_method.as_str(),
        if sdp {
            "Content-Type: application/sdp\r\n"
        } else {
            ""
        },
        body.len()
    );
    parse_datagram(text.as_bytes()).unwrap()
}

pub fn progress(m: &mut Manager) -> Vec<String> {
    std::iter::from_fn(|| m.poll_progress())
        .map(|p| match p.cause {
            Some(c) => format!("{}: {}", p.state, c.code()),
            None => p.state,
        })
        .collect()
}
