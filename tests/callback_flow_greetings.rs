//! A card's greetings and announcements as the visitor and the issuer hear them, driven
//! through the call manager without sockets or sleeping.
//!
//! When the issuer declines, is busy or does not answer, the visitor is still called back
//! and hears the card's own greeting, or the shipped one in the card's language, and the
//! issuer pays only for their own time. A visitor who does not take that call ends the
//! request as the issuer did, and a greeting whose playing never finishes is hung up by
//! itself. The issuer's whisper comes before the question, and both parties hear that a
//! recorded call is recorded.

mod common;

use common::callback::{
    Recorded, callback_with, invites, manager, progress, requests, respond, sent, trunk,
};
use freecall::billing::BillingRequest;
use freecall::call::{EndCause, Extras, Greetings, Manager, Voice};
use freecall::clip::Clip;
use freecall::clock::NowForTests;
use freecall::media::{MediaEvent, MediaId, Side};
use std::sync::Arc;
use std::time::{Duration, Instant};

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
