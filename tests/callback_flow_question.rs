//! A card's call-back as the issuer and the visitor meet it, driven through the call
//! manager without sockets or sleeping: the two phones are the test, time is a value it
//! moves, and the media side records what the switch asked it to play.
//!
//! What a user would see: the issuer's phone rings first (each of the card's numbers in
//! turn), hears the visitor's number and the question, presses 1 or 2 (a key tone or a SIP
//! INFO); only then is the visitor dialled, post-dial digits go to the visitor's side, and
//! both legs' money is settled once with one record. Each phone is shown the caller the
//! way its carrier wants; a busy visitor or an issuer who never answers ends the request
//! with that cause, and a call is cut at its reserved limit after a warning to both.

mod common;

use common::callback::{
    Recorded, SWITCH, TRUNK, callback, invites, manager, manager_with, progress, requests, respond,
    sent, trunk,
};
use freecall::billing::BillingRequest;
use freecall::call::{EndCause, Manager};
use freecall::clock::NowForTests;
use freecall::media::{MediaEvent, MediaId, Side};
use freecall::sip::{Message, parse_datagram};
use std::time::{Duration, Instant};

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

/// A BYE from the far end of the dialog `invite` set up (answered with `tag`).
fn bye_from(invite: &Message, tag: &str) -> Message {
    let text = format!(
        "BYE sip:freecall@{SWITCH} SIP/2.0\r\nVia: SIP/2.0/UDP {TRUNK};branch=z9hG4bKbye{tag}\r\nMax-Forwards: 70\r\n\
From: {};tag={tag}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: 5 BYE\r\nContent-Length: 0\r\n\r\n",
        invite.to, invite.from, invite.call_id
    );
    parse_datagram(text.as_bytes()).unwrap()
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
