//! RFC 4475, the SIP torture test messages, byte for byte from the RFC's own archive
//! (tests/fixtures/rfc4475, with its README and checksums), through the whole signalling
//! path from the first byte (`Manager::handle_bytes`, as the daemon's sockets call it):
//! each is answered as the RFC's text asks of an element like the switch — a UAS to its
//! callers, with a registrar for members' phones.

use super::*;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/rfc4475");

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{DIR}/{name}")).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The switch with a registrar (members' accounts), the callers on 127.0.0.0/8 trusted.
fn registrar() -> Manager {
    let cfg = Config::from_toml(&format!(
        "[sip]\nlisten = \"{SWITCH}\"\n[media]\naddress = \"127.0.0.1\"\nport_min = 20000\nport_max = 30000\n\
[[peers]]\nname = \"lo\"\naddress = \"127.0.0.0/8\"\n\
[[trunks]]\nname = \"t0\"\naddress = \"{T0}\"\n[[routes]]\nprefix = \"\"\ntrunks = [\"t0\"]\n"
    ))
    .unwrap();
    let mut settings = manager_settings(None);
    settings.billing = Some(freecall::billing::CallBilling {
        classifier: freecall::numbers::Classifier::new("KR").unwrap(),
        blocked: Vec::new(),
        realm: "freecall".into(),
        nonces: freecall::auth::NonceKey::new(b"torture", 300),
        auth_failures_per_address: 0,
        auth_failures_per_user: 0,
        auth_block: Duration::from_secs(60),
    });
    Manager::new(
        settings,
        Routing::from_config(&cfg),
        Box::new(NullMedia::new()),
    )
}

/// The final answer to `bytes` arriving over UDP from a caller (provisional ones left
/// out), or None when nothing but provisional answers went back.
fn final_answer(m: &mut Manager, bytes: &[u8]) -> Option<String> {
    m.handle_bytes(
        Instant::now_for_tests(),
        caller(),
        bytes,
        false,
        Duration::ZERO,
    );
    let sent = drain(m);
    for (t, _) in &sent {
        assert_eq!(
            t.dest,
            CALLER.parse().unwrap(),
            "answered where it came from"
        );
    }
    sent.into_iter()
        .map(|(_, s)| s)
        .find(|s| !s.starts_with("SIP/2.0 1"))
}

/// (file, the status the switch answers, a header that answer must carry).
const EXPECTED: &[(&str, Option<u16>, &str)] = &[
    // 3.1.1 Valid messages: each is read and handled for what it asks.
    ("wsinv.dat", Some(481), "Reason"), // a To tag: a request within a dialog we do not have
    ("intmeth.dat", Some(501), "Allow"), // an unknown method
    ("esc01.dat", Some(484), "Reason"), // an INVITE to a user part that is no number
    ("escnull.dat", Some(401), "WWW-Authenticate"), // a REGISTER: the registrar challenges
    ("esc02.dat", Some(501), "Allow"),  // RE%47IST%45R is not REGISTER
    ("lwsdisp.dat", Some(200), "Allow"),
    ("longreq.dat", Some(484), "Reason"),
    ("dblreq.dat", Some(401), "WWW-Authenticate"), // the octets after the body ignored
    ("semiuri.dat", Some(200), "Allow"),
    ("transports.dat", Some(200), "Allow"),
    ("mpart01.dat", Some(405), "Allow"), // MESSAGE is not served
    ("unreason.dat", None, ""),          // responses to nothing of ours: read, dropped
    ("noreason.dat", None, ""),
    // 3.1.2 Invalid messages: 400 (505 for the version) with a Reason, or dropped.
    ("badinv01.dat", Some(400), "Reason"),
    ("clerr.dat", Some(400), "Reason"),
    ("ncl.dat", Some(400), "Reason"),
    ("scalar02.dat", Some(400), "Reason"),
    ("scalarlg.dat", None, ""), // a response: dropped
    ("quotbal.dat", Some(400), "Reason"),
    ("ltgtruri.dat", Some(400), "Reason"),
    ("lwsruri.dat", Some(400), "Reason"),
    ("lwsstart.dat", Some(400), "Reason"),
    ("trws.dat", Some(400), "Reason"),
    ("escruri.dat", Some(400), "Reason"),
    ("baddate.dat", Some(484), "Reason"), // the Date is not used: the INVITE is handled
    ("regbadct.dat", Some(400), "Reason"),
    ("badaspec.dat", Some(200), "Allow"), // the spaces inside <> forgiven, as it allows
    ("baddn.dat", Some(400), "Reason"),
    ("badvers.dat", Some(505), "Reason"),
    ("mismatch01.dat", Some(400), "Reason"),
    ("mismatch02.dat", Some(400), "Reason"),
    ("bigcode.dat", None, ""), // a response: dropped
    // 3.2 Transaction layer.
    ("badbranch.dat", Some(200), "Allow"),
    // 3.3 Application layer.
    ("insuf.dat", Some(400), "Reason"),
    ("unkscm.dat", Some(416), "Reason"),
    ("novelsc.dat", Some(416), "Reason"),
    ("unksm2.dat", Some(400), "Reason"), // a REGISTER whose To is not a SIP address
    ("bext01.dat", Some(420), "Unsupported"),
    ("invut.dat", Some(415), "Accept"),
    ("regaut01.dat", Some(401), "WWW-Authenticate"), // an unknown scheme: challenged
    ("multi01.dat", Some(400), "Reason"),
    ("mcl01.dat", Some(400), "Reason"),
    ("bcast.dat", None, ""),            // a response: dropped
    ("zeromf.dat", Some(200), "Allow"), // Max-Forwards 0 to the switch itself: answered
    ("cparam01.dat", Some(401), "WWW-Authenticate"),
    ("cparam02.dat", Some(401), "WWW-Authenticate"),
    ("regescrt.dat", Some(401), "WWW-Authenticate"),
    ("sdp01.dat", Some(406), "Warning"),
    // 3.4 Backward compatibility: an RFC 2543 INVITE is handled like any other.
    ("inv2543.dat", Some(484), "Reason"),
];

#[test]
fn every_rfc_4475_message_is_answered_as_the_rfc_asks() {
    let manifest = std::fs::read_to_string(format!("{DIR}/MANIFEST.tsv")).unwrap();
    let files: Vec<&str> = manifest
        .lines()
        .skip(1)
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    assert_eq!(files.len(), 49, "the RFC's 49 messages");
    let expected: Vec<&str> = EXPECTED.iter().map(|e| e.0).collect();
    assert_eq!(
        files, expected,
        "every message of the RFC has its expectation"
    );

    let mut wrong = Vec::new();
    for (file, status, header) in EXPECTED {
        // REGISTERs go to the registrar; the rest to the bare B2BUA (the registrar's switch
        // would look an INVITE to a name up among members' phones first).
        let bytes = fixture(file);
        let mut m = if bytes.starts_with(b"REGISTER ") {
            registrar()
        } else {
            manager()
        };
        let answer = final_answer(&mut m, &bytes);
        let got = answer
            .as_deref()
            .and_then(|a| a.get(8..11))
            .and_then(|c| c.parse::<u16>().ok());
        let has_header = answer.as_deref().is_some_and(|a| {
            a.lines().any(|l| {
                l.to_ascii_lowercase()
                    .starts_with(&format!("{}:", header.to_ascii_lowercase()))
            })
        });
        if got != *status || (status.is_some() && !has_header) {
            wrong.push(format!(
                "{file}: expected {status:?} with {header}, got {answer:?}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_valid_messages_parse_and_keep_what_they_say() {
    let read = |f: &str| parse_datagram(&fixture(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
    for (file, ..) in EXPECTED.iter().take(13) {
        read(file);
    }
    for file in [
        "badbranch.dat",
        "unkscm.dat",
        "novelsc.dat",
        "unksm2.dat",
        "bext01.dat",
        "invut.dat",
        "regaut01.dat",
        "bcast.dat",
        "zeromf.dat",
        "cparam01.dat",
        "cparam02.dat",
        "regescrt.dat",
        "sdp01.dat",
        "inv2543.dat",
    ] {
        read(file);
    }
    let ws = read("wsinv.dat");
    assert_eq!(ws.uri_user.as_deref(), Some("vivekg"));
    assert_eq!(ws.from_tag.as_deref(), Some("98asjd8"));
    assert_eq!(ws.to_tag.as_deref(), Some("1918181833n"));
    assert_eq!((ws.cseq, ws.max_forwards), (9, Some(68)));
    assert_eq!(
        (ws.branch.as_str(), ws.sent_by.as_str()),
        ("390skdjuw", "192.0.2.2")
    );
    assert_eq!(ws.body.len(), 150);
    assert_eq!(
        read("semiuri.dat").uri_user.as_deref(),
        Some("user;par=u%40example.net")
    );
    assert_eq!(
        read("esc01.dat").uri_user.as_deref(),
        Some("sips%3Auser%40example.com")
    );
    let dbl = read("dblreq.dat");
    assert!(dbl.body.is_empty(), "the trailing octets are not a body");
    let mp = read("mpart01.dat");
    assert_eq!(
        mp.body.len(),
        553,
        "the binary body framed by Content-Length"
    );
    assert_eq!(read("unreason.dat").status(), Some(200));
    assert_eq!(read("noreason.dat").status(), Some(100));
}

#[test]
fn an_rfc_2543_invite_is_one_transaction_with_its_retransmission_and_ack() {
    let mut m = manager();
    let invite = fixture("inv2543.dat");
    let first = final_answer(&mut m, &invite).expect("answered");
    assert!(first.starts_with("SIP/2.0 484"), "{first}");
    // The same request again (no branch to tell it by): the same answer, resent by its
    // transaction rather than a second call.
    let again = final_answer(&mut m, &invite).expect("answered again");
    assert_eq!(again, first);
    // Its ACK (RFC 2543 style, the same CSeq number) ends it: no answer, nothing resent.
    let text = String::from_utf8_lossy(&invite).to_string();
    let head = text.split("\r\n\r\n").next().unwrap();
    // Its To carries the tag the 484 gave, as an ACK's does.
    let to = first.lines().find(|l| l.starts_with("To:")).unwrap();
    let ack = head
        .replacen("INVITE sip:", "ACK sip:", 1)
        .replace("CSeq: 56 INVITE", "CSeq: 56 ACK")
        .lines()
        .filter(|l| !l.starts_with("Content-Type"))
        .map(|l| if l.starts_with("To:") { to } else { l })
        .collect::<Vec<_>>()
        .join("\r\n")
        + "\r\nContent-Length: 0\r\n\r\n";
    assert!(ack.contains("CSeq: 56 ACK"), "{ack}");
    assert_eq!(final_answer(&mut m, ack.as_bytes()), None);
    m.handle_timeout(Instant::now_for_tests() + Duration::from_secs(40));
    assert!(
        drain(&mut m).is_empty(),
        "the 484 is not resent after its ACK"
    );
}
