//! Calls through the switch whose legs speak different codecs, and the switch's own early
//! media: an Opus-only phone calling an A-law-only trunk, an independent client (pjsua2)
//! talking across an Opus trunk between two switches, and local ringback.

mod common;

use common::WAIT;
use freecall::media::codec::Codec;
use freecall_testkit::Phone;
use freecall_testkit::audio::{RtpEnd, level_dbfs, rms_dbfs};
use std::net::SocketAddr;
use std::time::Duration;

fn prompts_dir() -> String {
    format!("{}/prompts", env!("CARGO_MANIFEST_DIR"))
}

fn opus_offer(name: &str, rtp: SocketAddr) -> String {
    format!(
        "v=0\r\no={name} 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
m=audio {} RTP/AVP 111 101\r\na=rtpmap:111 opus/48000/2\r\na=fmtp:111 useinbandfec=1\r\n\
a=rtpmap:101 telephone-event/48000\r\na=ptime:20\r\na=sendrecv\r\n",
        rtp.port()
    )
}

fn alaw_answer(name: &str, rtp: SocketAddr) -> String {
    format!(
        "v=0\r\no={name} 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
m=audio {} RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n\
a=ptime:20\r\na=sendrecv\r\n",
        rtp.port()
    )
}

/// The audio port an SDP names.
fn sdp_port(body: &[u8]) -> SocketAddr {
    let text = String::from_utf8_lossy(body);
    let port = text
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|l| l.split(' ').next())
        .and_then(|p| p.parse::<u16>().ok())
        .expect("m=audio line");
    SocketAddr::from(([127, 0, 0, 1], port))
}

#[tokio::test]
async fn an_opus_phone_and_an_alaw_trunk_hear_each_other() {
    let caller = Phone::bind("opusphone").await;
    let trunk = Phone::bind("pstn").await;
    let mut cfg = common::config(&[trunk.addr], "", "", "127.0.0.1");
    cfg.trunks[0].codecs = vec![Codec::Pcma];
    // The route records its calls.
    let recordings = std::env::temp_dir().join(format!("freecall-recs-{}", std::process::id()));
    cfg.routes[0].record = true;
    cfg.media.recordings_dir = recordings.display().to_string();
    let switch = common::start(&cfg).await;
    let sip = switch.sip_addr;
    let phone_media = RtpEnd::bind(Codec::Opus, 111, Some(101)).await;
    let trunk_media = RtpEnd::bind(Codec::Pcma, 8, Some(101)).await;

    let (invite, mut leg) =
        caller.invite(sip, "0212345678", &opus_offer("phone", phone_media.addr));
    caller.send(sip, &invite).await;
    let (b_invite, from) = trunk.expect_request("INVITE", WAIT).await;
    let offer = String::from_utf8_lossy(&b_invite.body).to_string();
    assert!(offer.contains("m=audio "), "{offer}");
    assert!(
        offer.contains("a=rtpmap:8 PCMA/8000"),
        "the trunk is offered A-law: {offer}"
    );
    assert!(
        !offer.contains("opus"),
        "and nothing it does not take: {offer}"
    );
    let to_b_leg = sdp_port(&b_invite.body);
    trunk
        .send(
            from,
            &trunk.response(
                &b_invite,
                200,
                "OK",
                "tk",
                Some(&alaw_answer("pstn", trunk_media.addr)),
            ),
        )
        .await;
    let ok = caller.expect_status(&[200], WAIT).await;
    let answer = String::from_utf8_lossy(&ok.body).to_string();
    assert!(
        answer.contains("a=rtpmap:111 opus/48000/2"),
        "the phone keeps Opus: {answer}"
    );
    assert!(!answer.contains("PCMA"), "{answer}");
    let to_a_leg = sdp_port(&ok.body);
    Phone::update_leg(&mut leg, &ok);
    caller.send(sip, &caller.ack(&leg, leg.cseq)).await;
    trunk.expect_request("ACK", WAIT).await;

    // Both talk at once: 1 kHz from the phone, 600 Hz from the far end.
    let (_, _, at_trunk, at_phone) = tokio::join!(
        phone_media.send_tone(to_a_leg, 1000.0, -12.0, 50, |_| false),
        trunk_media.send_tone(to_b_leg, 600.0, -12.0, 50, |_| false),
        trunk_media.collect(Duration::from_millis(500), Duration::from_secs(5)),
        phone_media.collect(Duration::from_millis(500), Duration::from_secs(5)),
    );
    let heard_by_trunk = trunk_media.decode(&at_trunk);
    let heard_by_phone = phone_media.decode(&at_phone);
    assert!(
        at_trunk.iter().all(|p| p.pt == 8),
        "A-law towards the trunk"
    );
    assert!(
        at_phone.iter().all(|p| p.pt == 111),
        "Opus towards the phone"
    );
    let window = |pcm: &[i16]| pcm[800..4800.min(pcm.len())].to_vec();
    let t = window(&heard_by_trunk);
    let p = window(&heard_by_phone);
    assert!(
        (level_dbfs(&t, 1000.0) + 12.0).abs() < 2.0,
        "trunk hears 1 kHz at {:.1}",
        level_dbfs(&t, 1000.0)
    );
    assert!(
        (level_dbfs(&p, 600.0) + 12.0).abs() < 2.0,
        "phone hears 600 Hz at {:.1}",
        level_dbfs(&p, 600.0)
    );
    assert!(
        level_dbfs(&t, 600.0) < -40.0,
        "no echo of the far end's own voice"
    );

    caller
        .send(sip, &caller.request(&mut leg, "BYE", None))
        .await;
    let (bye, from) = trunk.expect_request("BYE", WAIT).await;
    trunk
        .send(from, &trunk.response(&bye, 200, "OK", "tk", None))
        .await;
    caller.expect_status(&[200], WAIT).await;
}

#[tokio::test]
async fn a_ringing_trunk_gets_please_hold_then_ringback_as_early_media() {
    let caller = Phone::bind("alice").await;
    let trunk = Phone::bind("pstn").await;
    let mut cfg = common::config(&[trunk.addr], "", "", "127.0.0.1");
    cfg.media.prompts_dir = prompts_dir();
    cfg.media.local_ringback = true;
    let switch = common::start(&cfg).await;
    let sip = switch.sip_addr;
    let phone_media = RtpEnd::bind(Codec::Pcmu, 0, Some(101)).await;
    let offer = caller.sdp("sendrecv").replace(
        &format!("m=audio {} ", caller.rtp_addr.port()),
        &format!("m=audio {} ", phone_media.addr.port()),
    );
    let (invite, mut leg) = caller.invite(sip, "0212345678", &offer);
    caller.send(sip, &invite).await;
    let (b_invite, from) = trunk.expect_request("INVITE", WAIT).await;
    trunk
        .send(from, &trunk.response(&b_invite, 180, "Ringing", "tk", None))
        .await;
    let early = caller.expect_status(&[183], WAIT).await;
    assert!(
        String::from_utf8_lossy(&early.body).contains("PCMU"),
        "early media SDP"
    );
    // 2.4 s of prompt, then ringback: 440 + 480 Hz for one second in three.
    let got = phone_media
        .collect(Duration::from_millis(500), Duration::from_millis(3800))
        .await;
    let pcm = phone_media.decode(&got);
    assert!(
        pcm.len() >= 8000 * 3,
        "early media kept coming: {} samples",
        pcm.len()
    );
    let prompt = &pcm[..16000];
    assert!(
        rms_dbfs(prompt) > -30.0,
        "the prompt speaks: {:.1} dBFS",
        rms_dbfs(prompt)
    );
    let ring = &pcm[20000..22400];
    assert!(
        level_dbfs(ring, 440.0) > -25.0 && level_dbfs(ring, 480.0) > -25.0,
        "ringback tone"
    );
    // The answer ends our early media: what follows is the trunk's.
    trunk
        .send(
            from,
            &trunk.response(&b_invite, 200, "OK", "tk", Some(&trunk.sdp("sendrecv"))),
        )
        .await;
    let ok = caller.expect_status(&[200], WAIT).await;
    Phone::update_leg(&mut leg, &ok);
    caller.send(sip, &caller.ack(&leg, leg.cseq)).await;
    let after = phone_media
        .collect(Duration::from_millis(300), Duration::from_secs(1))
        .await;
    assert!(
        after.len() <= 2,
        "no more ringback after the answer: {} packets",
        after.len()
    );
}

#[test]
fn pjsua2_talks_to_pjsua2_across_an_opus_trunk_between_two_switches() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let callee_port = common::daemon::free_port();
    let (s1, s2) = rt.block_on(async {
        // Switch 2 takes Opus from switch 1 and dials the G.711 phone.
        let callee: SocketAddr = format!("127.0.0.1:{callee_port}").parse().unwrap();
        let mut cfg2 = common::config(&[callee], "", "", "127.0.0.1");
        cfg2.trunks[0].codecs = vec![Codec::Pcmu];
        let s2 = common::start(&cfg2).await;
        // Switch 1 takes the G.711 phone's call and carries it as Opus only.
        let mut cfg1 = common::config(&[s2.sip_addr], "", "", "127.0.0.1");
        cfg1.trunks[0].codecs = vec![Codec::Opus];
        let s1 = common::start(&cfg1).await;
        (s1, s2)
    });
    common::daemon::pjsua_call(&[
        "--switch",
        &s1.sip_addr.to_string(),
        "--number",
        "0212345678",
        "--callee-port",
        &callee_port.to_string(),
        "--seconds",
        "3",
    ]);
    drop((s1, s2));
}
