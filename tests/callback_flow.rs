//! A card's call-back driven through the call manager without sockets or sleeping: the
//! issuer's phone and the visitor's phone are the test, time is a value it moves, and the
//! media side records what the switch asked it to play.
//!
//! What a user would see: the issuer's phone rings first (each of the card's numbers in
//! turn), hears the visitor's number and the question, presses 1 or 2; only then is the
//! visitor dialled, post-dial digits go to the visitor's side, and both legs' money is
//! settled once with one record.

use freecall::billing::{Authorization, BillingRequest};
use freecall::call::{
    Command, EndCause, Extras, Flow, Greetings, Manager, Originate, Settings, Target, Voice,
};
use freecall::clip::Clip;
use freecall::clock::NowForTests;
use freecall::config::Config;
use freecall::media::{
    Endpoints, LegFormat, MediaControl, MediaError, MediaEvent, MediaId, MediaStats, Play, Remote,
    Side,
};
use freecall::numbers::DestinationKind;
use freecall::routing::Routing;
use freecall::sip::{Message, Transport, parse_datagram};
use freecall::transaction::{Peer, Timers};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SWITCH: &str = "127.0.0.1:5060";
const TRUNK: &str = "127.0.0.1:5080";

/// Media that remembers what the call layer asked of it.
#[derive(Clone, Default)]
struct Recorded(Arc<Mutex<Vec<String>>>);

impl Recorded {
    fn log(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
    fn push(&self, s: String) {
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

fn manager(media: Recorded) -> Manager {
    manager_with(media, "", None)
}

/// `manager` with lines added to the trunk's entry, and the number visitors are shown.
fn manager_with(media: Recorded, trunk_extra: &str, visitor_sees: Option<&str>) -> Manager {
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

fn callback(max_secs: i64) -> Command {
    callback_with(max_secs, Extras::default())
}

fn callback_with(max_secs: i64, extras: Extras) -> Command {
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

fn trunk() -> Peer {
    Peer {
        transport: Transport::Udp,
        addr: TRUNK.parse().unwrap(),
    }
}

/// What the switch sent since the last call, parsed.
fn sent(m: &mut Manager) -> Vec<Message> {
    std::iter::from_fn(|| m.poll_transmit())
        .map(|t| {
            assert_eq!(t.dest, TRUNK.parse::<SocketAddr>().unwrap());
            parse_datagram(&t.bytes).expect("the switch sends parsable SIP")
        })
        .collect()
}

fn invites(msgs: &[Message]) -> Vec<&Message> {
    msgs.iter()
        .filter(|m| m.method().map(|x| x.as_str()) == Some("INVITE"))
        .collect()
}

/// One message per dialog (retransmissions dropped).
fn distinct(msgs: Vec<&Message>) -> Vec<&Message> {
    let mut out: Vec<&Message> = Vec::new();
    for m in msgs {
        if !out.iter().any(|o| o.call_id == m.call_id) {
            out.push(m);
        }
    }
    out
}

fn requests<'a>(msgs: &'a [Message], method: &str) -> Vec<&'a Message> {
    msgs.iter()
        .filter(|m| m.method().map(|x| x.as_str()) == Some(method))
        .collect()
}

const PHONE_SDP: &str = "v=0\r\no=p 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
m=audio 4000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n";

/// The far end's response to a request the switch sent.
fn respond(req: &Message, code: u16, tag: &str, sdp: bool) -> Message {
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

/// A BYE from the far end of the dialog `invite` set up (answered with `tag`).
fn bye_from(invite: &Message, tag: &str) -> Message {
    let text = format!(
        "BYE sip:freecall@{SWITCH} SIP/2.0\r\nVia: SIP/2.0/UDP {TRUNK};branch=z9hG4bKbye{tag}\r\nMax-Forwards: 70\r\n\
From: {};tag={tag}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: 5 BYE\r\nContent-Length: 0\r\n\r\n",
        invite.to, invite.from, invite.call_id
    );
    parse_datagram(text.as_bytes()).unwrap()
}

fn progress(m: &mut Manager) -> Vec<String> {
    std::iter::from_fn(|| m.poll_progress())
        .map(|p| match p.cause {
            Some(c) => format!("{}: {}", p.state, c.code()),
            None => p.state,
        })
        .collect()
}

/// The issuer's first number answers; returns its INVITE.
fn issuer_answers(m: &mut Manager, t0: Instant) -> Message {
    m.handle_command(t0, callback(600));
    let out = sent(m);
    let inv = invites(&out);
    assert_eq!(inv.len(), 1, "only the issuer is dialled first");
    let issuer = inv[0].clone();
    assert_eq!(issuer.uri_user.as_deref(), Some("01011112222"));
    // The issuer's phone shows the visitor's number.
    assert_eq!(issuer.from_user.as_deref(), Some("025561234"));
    m.handle_message(t0, trunk(), respond(&issuer, 180, "iss", false));
    m.handle_message(
        t0 + Duration::from_secs(3),
        trunk(),
        respond(&issuer, 200, "iss", true),
    );
    let out = sent(m);
    assert_eq!(
        requests(&out, "ACK").len(),
        1,
        "the issuer's answer is acknowledged"
    );
    issuer
}

#[test]
fn the_issuer_presses_1_then_the_visitor_is_called_and_both_legs_are_settled_once() {
    let media = Recorded::default();
    let mut m = manager(media.clone());
    let t0 = Instant::now_for_tests();
    let issuer = issuer_answers(&mut m, t0);
    assert_eq!(
        progress(&mut m),
        ["requested", "calling_issuer", "issuer_answered"]
    );
    let log = media.log();
    assert!(log.contains(&"play A Prompt(\"callback-request.ko\")".to_string()));
    let digits: Vec<&String> = log.iter().filter(|l| l.contains("digit-")).collect();
    assert_eq!(
        digits.len(),
        9,
        "the visitor's number read out digit by digit"
    );
    assert!(digits[0].contains("digit-0.ko") && digits[8].contains("digit-4.ko"));
    assert!(log.contains(&"play A Prompt(\"callback-press.ko\")".to_string()));
    // The issuer's answer time is persisted (crash recovery bills from it).
    let billing: Vec<BillingRequest> = std::iter::from_fn(|| m.poll_billing()).collect();
    assert!(matches!(
        billing.as_slice(),
        [BillingRequest::Answered {
            reservation: 11,
            ..
        }]
    ));

    let t1 = t0 + Duration::from_secs(10);
    m.handle_media_event(t1, MediaEvent::PlayDone(MediaId(1), Side::A));
    assert!(invites(&sent(&mut m)).is_empty(), "nobody else dialled yet");
    m.handle_media_event(t1, MediaEvent::Digit(MediaId(1), Side::A, '1'));
    assert_eq!(progress(&mut m), ["accepted", "calling_visitor"]);
    let out = sent(&mut m);
    let inv = invites(&out);
    assert_eq!(inv.len(), 1);
    let visitor = inv[0].clone();
    assert_eq!(visitor.uri_user.as_deref(), Some("025561234"));
    assert_eq!(visitor.from_user.as_deref(), Some("01011112222"));
    assert!(media.log().contains(&"play A Ringback".to_string()));

    let t2 = t1 + Duration::from_secs(5);
    m.handle_message(t2, trunk(), respond(&visitor, 200, "vis", true));
    assert_eq!(progress(&mut m), ["connected"]);
    let log = media.log();
    assert!(log.contains(&"play B Digits(\"235\")".to_string()));
    assert!(log.contains(&"stop A".to_string()));

    // The visitor hangs up after 65 s: 200 to it, BYE to the issuer.
    let t3 = t2 + Duration::from_secs(65);
    m.handle_message(t3, trunk(), bye_from(&visitor, "vis"));
    let out = sent(&mut m);
    assert!(out.iter().any(|r| r.status() == Some(200)));
    let byes = requests(&out, "BYE");
    assert_eq!(byes.len(), 1);
    assert_eq!(byes[0].call_id, issuer.call_id);
    assert_eq!(
        progress(&mut m),
        ["ended: hung-up"],
        "the requester learns who ended it"
    );
    let billing: Vec<BillingRequest> = std::iter::from_fn(|| m.poll_billing()).collect();
    let settles: Vec<_> = billing
        .iter()
        .filter_map(|b| match b {
            BillingRequest::Settle(s) => Some(s),
            _ => None,
        })
        .collect();
    assert_eq!(settles.len(), 1, "one settlement for the call");
    let s = settles[0];
    assert_eq!(s.reservation, 12);
    assert_eq!(s.legs.len(), 1);
    assert_eq!(s.legs[0].reservation, 11);
    let (issuer_ms, visitor_ms) = (s.legs[0].answered_ms.unwrap(), s.answered_ms.unwrap());
    assert_eq!(
        visitor_ms - issuer_ms,
        12_000,
        "each leg from its own answer"
    );
    assert_eq!(s.ended_ms - visitor_ms, 65_000);
    let record = s.record.as_ref().expect("one record");
    assert_eq!(record.call_id, "fc-cb1");
    assert_eq!(record.caller, "025561234");
    assert_eq!(record.callee, "01011112222");
    assert_eq!(record.ended_by, "caller");
    assert_eq!(record.legs.len(), 2);
    assert_eq!(record.legs[0].role, "issuer");
    assert_eq!(record.legs[0].destination, "mobile");
    assert_eq!(record.legs[1].destination, "landline");
    assert_eq!(m.active_calls(), 0);
}

/// The carrier wants E.164 and the caller asserted; the service shows visitors its own
/// line instead of the issuer's number.
#[test]
fn each_leg_is_shown_the_caller_as_the_trunk_wants_and_visitors_may_see_the_services_line() {
    let mut m = manager_with(
        Recorded::default(),
        "caller_id = \"pai\"\ncaller_format = \"e164\"\n",
        Some("0215880000"),
    );
    let t0 = Instant::now_for_tests();
    m.handle_command(t0, callback(600));
    let out = sent(&mut m);
    let issuer = invites(&out)[0].clone();
    assert_eq!(
        issuer.from_user.as_deref(),
        Some("+8225561234"),
        "the visitor's number"
    );
    assert_eq!(
        issuer.header("P-Asserted-Identity"),
        Some("<sip:+8225561234@127.0.0.1;user=phone>")
    );
    m.handle_message(t0, trunk(), respond(&issuer, 200, "iss", true));
    let t1 = t0 + Duration::from_secs(10);
    m.handle_media_event(t1, MediaEvent::PlayDone(MediaId(1), Side::A));
    m.handle_media_event(t1, MediaEvent::Digit(MediaId(1), Side::A, '1'));
    let out = sent(&mut m);
    let visitor = invites(&out)[0].clone();
    assert_eq!(visitor.uri_user.as_deref(), Some("025561234"));
    assert_eq!(
        visitor.from_user.as_deref(),
        Some("+82215880000"),
        "the service's line"
    );
    assert_eq!(
        visitor.header("P-Asserted-Identity"),
        Some("<sip:+82215880000@127.0.0.1;user=phone>")
    );
    assert_eq!(visitor.header("Privacy"), None);
}

#[test]
fn the_issuer_declines_and_the_visitor_is_never_dialled() {
    let mut m = manager(Recorded::default());
    let t0 = Instant::now_for_tests();
    let issuer = issuer_answers(&mut m, t0);
    progress(&mut m);
    m.handle_media_event(t0, MediaEvent::Digit(MediaId(1), Side::A, '2'));
    let out = sent(&mut m);
    assert!(invites(&out).is_empty());
    let byes = requests(&out, "BYE");
    assert_eq!(byes.len(), 1);
    assert_eq!(byes[0].call_id, issuer.call_id);
    assert_eq!(progress(&mut m), ["declined", "ended: declined"]);
    let billing: Vec<BillingRequest> = std::iter::from_fn(|| m.poll_billing()).collect();
    let s = billing
        .iter()
        .find_map(|b| match b {
            BillingRequest::Settle(s) => Some(s),
            _ => None,
        })
        .unwrap();
    assert_eq!(s.answered_ms, None, "the visitor's leg costs nothing");
    assert!(
        s.legs[0].answered_ms.is_some(),
        "the issuer's leg was answered"
    );
}

#[test]
fn an_issuer_who_does_not_answer_is_tried_on_the_next_number_then_the_request_ends() {
    let mut m = manager(Recorded::default());
    let t0 = Instant::now_for_tests();
    m.handle_command(t0, callback(600));
    let first = invites(&sent(&mut m))[0].clone();
    m.handle_message(t0, trunk(), respond(&first, 180, "r1", false));
    // 30 s of ringing pass in no time.
    let mut t = t0;
    let mut out = Vec::new();
    while let Some(at) = m.next_timeout() {
        if at > t0 + Duration::from_secs(31) {
            break;
        }
        t = at;
        m.handle_timeout(at);
        out.extend(sent(&mut m));
    }
    assert!(t >= t0 + Duration::from_secs(30));
    // (Retransmissions over the 30 s are counted once: nobody answered them here.)
    let cancels = distinct(requests(&out, "CANCEL"));
    assert_eq!(cancels.len(), 1, "the first number is cancelled");
    assert_eq!(cancels[0].call_id, first.call_id);
    let next = distinct(invites(&out));
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].uri_user.as_deref(), Some("0255550000"));
    let second = next[0].clone();
    m.handle_message(t, trunk(), respond(&first, 487, "r1", false));
    m.handle_message(t, trunk(), respond(&second, 480, "r2", false));
    let out = sent(&mut m);
    assert!(invites(&out).is_empty(), "the visitor is never dialled");
    assert_eq!(
        progress(&mut m),
        ["requested", "calling_issuer", "ended: no-answer"]
    );
}

#[test]
fn a_busy_visitor_ends_the_request_with_that_cause() {
    let mut m = manager(Recorded::default());
    let t0 = Instant::now_for_tests();
    issuer_answers(&mut m, t0);
    m.handle_media_event(t0, MediaEvent::Digit(MediaId(1), Side::A, '1'));
    let visitor = invites(&sent(&mut m))[0].clone();
    m.handle_message(t0, trunk(), respond(&visitor, 486, "v", false));
    let out = sent(&mut m);
    assert_eq!(requests(&out, "BYE").len(), 1, "the issuer is hung up");
    let p = progress(&mut m);
    assert_eq!(p.last().unwrap(), "ended: busy");
}

#[test]
fn the_call_is_cut_at_the_reserved_limit_with_a_warning_first() {
    let media = Recorded::default();
    let mut m = manager(media.clone());
    let t0 = Instant::now_for_tests();
    m.handle_command(t0, callback(200));
    let issuer = invites(&sent(&mut m))[0].clone();
    m.handle_message(t0, trunk(), respond(&issuer, 200, "iss", true));
    m.handle_media_event(t0, MediaEvent::Digit(MediaId(1), Side::A, '1'));
    let visitor = invites(&sent(&mut m))[0].clone();
    m.handle_message(t0, trunk(), respond(&visitor, 200, "vis", true));
    progress(&mut m);
    let mut byes_at = Vec::new();
    while let Some(at) = m.next_timeout() {
        if at > t0 + Duration::from_secs(300) {
            break;
        }
        m.handle_timeout(at);
        for r in sent(&mut m) {
            // Each BYE once (the far ends here never answer it, so it is retransmitted).
            let first = !byes_at.iter().any(|(_, _, id)| *id == r.call_id);
            if r.method().map(|x| x.as_str()) == Some("BYE") && first {
                let reason = r.header("Reason").unwrap_or("").to_string();
                byes_at.push((at - t0, reason, r.call_id.clone()));
            }
        }
    }
    assert_eq!(byes_at.len(), 2, "both legs hung up");
    assert_eq!(byes_at[0].0, Duration::from_secs(200));
    assert!(byes_at[0].1.contains("guild exhausted"));
    let warned = media
        .log()
        .iter()
        .filter(|l| l.contains("one-minute-left"))
        .count();
    assert_eq!(warned, 2, "both parties hear the warning");
    assert_eq!(
        progress(&mut m),
        ["ended: limit-reached"],
        "{:?}",
        EndCause::LimitReached("guild exhausted").text()
    );
}

#[test]
fn a_digit_sent_as_sip_info_is_taken_like_rfc_4733() {
    let mut m = manager(Recorded::default());
    let t0 = Instant::now_for_tests();
    let issuer = issuer_answers(&mut m, t0);
    progress(&mut m);
    let body = "Signal=1\r\nDuration=160\r\n";
    let info = format!(
        "INFO sip:freecall@{SWITCH} SIP/2.0\r\nVia: SIP/2.0/UDP {TRUNK};branch=z9hG4bKinfo\r\nMax-Forwards: 70\r\n\
From: {};tag=iss\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: 2 INFO\r\nContent-Type: application/dtmf-relay\r\n\
Content-Length: {}\r\n\r\n{body}",
        issuer.to,
        issuer.from,
        issuer.call_id,
        body.len()
    );
    m.handle_message(t0, trunk(), parse_datagram(info.as_bytes()).unwrap());
    let out = sent(&mut m);
    assert!(out.iter().any(|r| r.status() == Some(200)));
    assert_eq!(invites(&out).len(), 1, "the visitor is dialled");
    assert_eq!(progress(&mut m), ["accepted", "calling_visitor"]);
}

/// A clip of `ms` milliseconds (what an issuer uploaded).
fn clip(ms: usize) -> Clip {
    Clip(Arc::from(vec![1000i16; ms * 8]))
}

fn settlement(m: &mut Manager) -> freecall::billing::Settlement {
    std::iter::from_fn(|| m.poll_billing())
        .find_map(|b| match b {
            BillingRequest::Settle(s) => Some(s),
            _ => None,
        })
        .expect("the call is settled")
}

#[test]
fn an_issuer_who_declines_leaves_the_visitor_the_cards_greeting_and_pays_only_their_own_time() {
    let media = Recorded::default();
    let mut m = manager(media.clone());
    let t0 = Instant::now_for_tests();
    let extras = Extras {
        greetings: Greetings {
            declined: Some(Voice::Uploaded(clip(4000))),
            ..Default::default()
        },
        ..Default::default()
    };
    m.handle_command(t0, callback_with(600, extras));
    let issuer = invites(&sent(&mut m))[0].clone();
    m.handle_message(t0, trunk(), respond(&issuer, 200, "iss", true));
    sent(&mut m);
    progress(&mut m);
    // The issuer presses 2 after 8 s: hung up, and only then is the visitor dialled.
    let t1 = t0 + Duration::from_secs(8);
    m.handle_media_event(t1, MediaEvent::Digit(MediaId(1), Side::A, '2'));
    let out = sent(&mut m);
    let byes = requests(&out, "BYE");
    assert_eq!(byes.len(), 1);
    assert_eq!(
        byes[0].call_id, issuer.call_id,
        "the issuer is hung up first"
    );
    let inv = invites(&out);
    assert_eq!(inv.len(), 1, "the visitor is dialled to hear the greeting");
    let visitor = inv[0].clone();
    assert_eq!(visitor.uri_user.as_deref(), Some("025561234"));
    assert_eq!(progress(&mut m), ["declined", "calling_visitor"]);

    let t2 = t1 + Duration::from_secs(6);
    m.handle_message(t2, trunk(), respond(&visitor, 200, "vis", true));
    assert!(requests(&sent(&mut m), "ACK").len() == 1);
    assert_eq!(progress(&mut m), ["greeting"]);
    let log = media.log();
    assert!(
        log.contains(&"play B Digits(\"235\")".to_string()),
        "the extension is dialled first: {log:?}"
    );
    assert!(
        log.contains(&"play B Clip(Clip(4000 ms))".to_string()),
        "the issuer's own greeting: {log:?}"
    );
    assert!(
        !log.iter().any(|l| l.contains("callback-connected")),
        "nobody is connected"
    );
    // The greeting has been played: the visitor is hung up, the call ends as declined.
    let t3 = t2 + Duration::from_secs(5);
    m.handle_media_event(t3, MediaEvent::PlayDone(MediaId(1), Side::B));
    let out = sent(&mut m);
    let byes = requests(&out, "BYE");
    assert_eq!(byes.len(), 1);
    assert_eq!(byes[0].call_id, visitor.call_id);
    assert!(byes[0].header("Reason").unwrap_or("").contains("declined"));
    assert_eq!(progress(&mut m), ["ended: declined"]);
    let s = settlement(&mut m);
    let issuer_leg = &s.legs[0];
    assert_eq!(
        issuer_leg.ended_ms.unwrap() - issuer_leg.answered_ms.unwrap(),
        8_000,
        "the issuer's leg is billed up to its own hang-up, not the greeting"
    );
    assert_eq!(
        s.ended_ms - s.answered_ms.unwrap(),
        5_000,
        "the visitor's leg from its answer to the greeting's end"
    );
    let record = s.record.as_ref().unwrap();
    assert_eq!(record.cause, EndCause::Declined.text());
    assert_eq!(record.legs[0].ended_ms, issuer_leg.ended_ms.unwrap());
    assert_eq!(m.active_calls(), 0);
}

#[test]
fn an_issuer_who_does_not_answer_or_is_busy_leaves_the_shipped_greeting_in_the_cards_language() {
    for (issuer_status, event) in [(486u16, "busy"), (480, "no-answer")] {
        let media = Recorded::default();
        let mut m = manager(media.clone());
        let t0 = Instant::now_for_tests();
        let extras = Extras {
            greetings: Greetings {
                no_answer: Some(Voice::Shipped),
                busy: Some(Voice::Shipped),
                declined: None,
            },
            ..Default::default()
        };
        m.handle_command(t0, callback_with(600, extras));
        let first = invites(&sent(&mut m))[0].clone();
        m.handle_message(t0, trunk(), respond(&first, issuer_status, "i1", false));
        let mut out = sent(&mut m);
        if issuer_status == 480 {
            // Not there: the issuer's next number is tried before anyone else.
            let second = invites(&out)[0].clone();
            assert_eq!(second.uri_user.as_deref(), Some("0255550000"));
            m.handle_message(t0, trunk(), respond(&second, 480, "i2", false));
            out = sent(&mut m);
        }
        let visitor = invites(&out)
            .into_iter()
            .find(|i| i.uri_user.as_deref() == Some("025561234"))
            .expect("the visitor is dialled to hear the greeting")
            .clone();
        m.handle_message(t0, trunk(), respond(&visitor, 200, "vis", true));
        sent(&mut m);
        let wanted = format!("play B Prompt(\"greeting-{event}.ko\")");
        assert!(media.log().contains(&wanted), "{event}: {:?}", media.log());
        m.handle_media_event(
            t0 + Duration::from_secs(9),
            MediaEvent::PlayDone(MediaId(1), Side::B),
        );
        let p = progress(&mut m);
        assert_eq!(p.last().unwrap(), &format!("ended: {event}"), "{p:?}");
        let s = settlement(&mut m);
        assert_eq!(s.legs[0].answered_ms, None, "the issuer's leg cost nothing");
        assert!(s.answered_ms.is_some());
    }
}

#[test]
fn a_visitor_who_does_not_take_the_greeting_call_ends_the_request_as_the_issuer_did() {
    let mut m = manager(Recorded::default());
    let t0 = Instant::now_for_tests();
    let extras = Extras {
        greetings: Greetings {
            declined: Some(Voice::Shipped),
            ..Default::default()
        },
        ..Default::default()
    };
    m.handle_command(t0, callback_with(600, extras));
    let issuer = invites(&sent(&mut m))[0].clone();
    m.handle_message(t0, trunk(), respond(&issuer, 603, "iss", false));
    let visitor = invites(&sent(&mut m))[0].clone();
    m.handle_message(t0, trunk(), respond(&visitor, 486, "vis", false));
    sent(&mut m);
    let p = progress(&mut m);
    assert_eq!(p.last().unwrap(), "ended: declined", "{p:?}");
    let s = settlement(&mut m);
    assert_eq!((s.answered_ms, s.legs[0].answered_ms), (None, None));
}

#[test]
fn the_issuers_whisper_comes_before_the_question_and_a_recorded_call_is_announced_to_both() {
    let media = Recorded::default();
    let mut m = manager(media.clone());
    let t0 = Instant::now_for_tests();
    let extras = Extras {
        whisper: Some(clip(1500)),
        record: true,
        ..Default::default()
    };
    m.handle_command(t0, callback_with(600, extras));
    let issuer = invites(&sent(&mut m))[0].clone();
    m.handle_message(t0, trunk(), respond(&issuer, 200, "iss", true));
    let log = media.log();
    let plays: Vec<&String> = log.iter().filter(|l| l.starts_with("play A")).collect();
    assert_eq!(plays[0], "play A Clip(Clip(1500 ms))", "{plays:?}");
    assert_eq!(plays[1], "play A Prompt(\"callback-request.ko\")");
    m.handle_media_event(t0, MediaEvent::Digit(MediaId(1), Side::A, '1'));
    let visitor = invites(&sent(&mut m))[0].clone();
    m.handle_message(t0, trunk(), respond(&visitor, 200, "vis", true));
    sent(&mut m);
    let log = media.log();
    let record_at = log
        .iter()
        .position(|l| l.starts_with("record ") && l.ends_with("fc-cb1.wav"))
        .expect("the call is recorded");
    let notice = |side: &str| {
        log.iter()
            .position(|l| *l == format!("play {side} Prompt(\"call-recorded.ko\")"))
            .unwrap_or_else(|| panic!("{side} hears that the call is recorded: {log:?}"))
    };
    assert!(
        record_at < notice("A") && record_at < notice("B"),
        "the notice is recorded too"
    );
    let digits = log
        .iter()
        .position(|l| l == "play B Digits(\"235\")")
        .unwrap();
    assert!(
        digits < notice("B"),
        "the extension is dialled before the notice"
    );
    let rows: Vec<_> = std::iter::from_fn(|| m.poll_billing())
        .filter_map(|b| match b {
            BillingRequest::Recording(r) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(rows.len(), 1, "one row for the recording");
    assert_eq!(rows[0].call_id, "fc-cb1");
    assert_eq!((rows[0].card, rows[0].account), (Some(7), Some(3)));
}

#[test]
fn a_greeting_call_ends_by_itself_if_its_playing_never_finishes() {
    let mut m = manager(Recorded::default());
    let t0 = Instant::now_for_tests();
    let extras = Extras {
        greetings: Greetings {
            busy: Some(Voice::Shipped),
            ..Default::default()
        },
        ..Default::default()
    };
    m.handle_command(t0, callback_with(600, extras));
    let issuer = invites(&sent(&mut m))[0].clone();
    m.handle_message(t0, trunk(), respond(&issuer, 486, "iss", false));
    let visitor = invites(&sent(&mut m))[0].clone();
    m.handle_message(t0, trunk(), respond(&visitor, 200, "vis", true));
    sent(&mut m);
    progress(&mut m);
    // No PlayDone ever comes (the media side lost it): the guard ends the call.
    let mut bye_at = None;
    while let Some(at) = m.next_timeout() {
        if at > t0 + Duration::from_secs(120) {
            break;
        }
        m.handle_timeout(at);
        if requests(&sent(&mut m), "BYE")
            .iter()
            .any(|b| b.call_id == visitor.call_id)
        {
            bye_at.get_or_insert(at - t0);
        }
    }
    assert_eq!(
        bye_at,
        Some(Duration::from_secs(45)),
        "hung up 45 s after the answer"
    );
    assert_eq!(
        progress(&mut m).last().map(String::as_str),
        Some("ended: busy")
    );
}
