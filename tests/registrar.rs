//! Members' softphones register (RFC 3261 section 10, SIP digest) and are reached there:
//! by name from another member's phone, and first when the member dials from the web.
//! Real sockets, a billed switch on SQLite.

mod common;

use common::WAIT;
use common::http;
use freecall::clock::Clock;
use freecall::config::Config;
use freecall::sip::Message;
use freecall::store::Store;
use freecall_testkit::Phone;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

fn config(trunk: SocketAddr) -> Config {
    let base = common::config(&[trunk], "", "", "127.0.0.2/32");
    let port_min = base.media.port_min;
    Config::from_toml(&format!(
        "[sip]\nlisten = \"127.0.0.1:0\"\nt1_ms = 100\n\
[media]\naddress = \"127.0.0.1\"\nport_min = {port_min}\nport_max = {}\n\
[[trunks]]\nname = \"pstn\"\naddress = \"{trunk}\"\n[[routes]]\nprefix = \"\"\ntrunks = [\"pstn\"]\n\
[billing]\nnode_id = \"reg-{}-{port_min}\"\n\
[[tariffs]]\naccount = \"mileage\"\ndestination = \"landline\"\nper_minute = 10\nincrement = \"1/1\"\n\
[[tariffs]]\naccount = \"mileage\"\ndestination = \"mobile\"\nper_minute = 20\nincrement = \"1/1\"\n",
        port_min + 198,
        std::process::id()
    ))
    .expect("config")
}

fn member(
    store: &Store,
    login: &str,
    password: &str,
    phone: &str,
) -> freecall::store::shop::Member {
    store
        .create_member(
            &freecall::store::shop::NewMember {
                login: login.into(),
                password_hash: "x".into(),
                name: login.into(),
                address: String::new(),
                job: String::new(),
                phone: phone.into(),
                email: String::new(),
                sip_ha1: freecall::auth::ha1(login, "freecall", password),
            },
            1000,
        )
        .unwrap()
}

/// A REGISTER from `phone` for `aor`; with `auth`, answering that 401 as `user`/`password`.
fn register(
    phone: &Phone,
    switch: SocketAddr,
    aor: &str,
    cseq: u32,
    contact: Option<&str>,
    expires: Option<u32>,
    auth: Option<(&Message, &str, &str)>,
) -> Vec<u8> {
    let uri = format!("sip:{switch}");
    let mut text = format!(
        "REGISTER {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKreg{cseq}x{aor}\r\nMax-Forwards: 70\r\n\
From: <sip:{aor}@{switch}>;tag=r{aor}\r\nTo: <sip:{aor}@{switch}>\r\nCall-ID: reg-{aor}-{me}\r\nCSeq: {cseq} REGISTER\r\n",
        me = phone.addr
    );
    if let Some(c) = contact {
        text.push_str(&format!("Contact: {c}\r\n"));
    }
    if let Some(e) = expires {
        text.push_str(&format!("Expires: {e}\r\n"));
    }
    if let Some((challenge, user, password)) = auth {
        let value = challenge.header("WWW-Authenticate").expect("a challenge");
        let param = |name: &str| -> String {
            let key = format!("{name}=\"");
            let i = value.find(&key).unwrap() + key.len();
            value[i..].split('"').next().unwrap().to_string()
        };
        let (realm, nonce) = (param("realm"), param("nonce"));
        let cnonce = format!("c{cseq}");
        let proof = freecall::auth::DigestProof {
            username: user.into(),
            realm: realm.clone(),
            nonce: nonce.clone(),
            uri: uri.clone(),
            response: String::new(),
            method: "REGISTER".into(),
            qop: Some("auth".into()),
            nc: Some("00000001".into()),
            cnonce: Some(cnonce.clone()),
        };
        let response =
            freecall::auth::digest_response(&freecall::auth::ha1(user, &realm, password), &proof);
        text.push_str(&format!(
            "Authorization: Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", \
response=\"{response}\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"{cnonce}\"\r\n"
        ));
    }
    text.push_str("Content-Length: 0\r\n\r\n");
    text.into_bytes()
}

/// REGISTER, 401, REGISTER with credentials: the final answer.
async fn register_as(
    phone: &Phone,
    switch: SocketAddr,
    user: &str,
    password: &str,
    contact: Option<&str>,
    expires: Option<u32>,
    cseq: u32,
) -> Message {
    phone
        .send(
            switch,
            &register(phone, switch, user, cseq, contact, expires, None),
        )
        .await;
    let challenge = phone.expect_status(&[401], WAIT).await;
    assert!(
        challenge
            .header("WWW-Authenticate")
            .unwrap()
            .contains("realm=\"freecall\"")
    );
    phone
        .send(
            switch,
            &register(
                phone,
                switch,
                user,
                cseq + 1,
                contact,
                expires,
                Some((&challenge, user, password)),
            ),
        )
        .await;
    phone
        .expect_status(&[200, 401, 403, 423, 400, 503], WAIT)
        .await
}

/// A member's authenticated INVITE to `number`: the first answer after the challenge.
async fn call_as(
    phone: &Phone,
    sip: SocketAddr,
    number: &str,
    user: &str,
    password: &str,
) -> (Message, freecall_testkit::Leg) {
    let sdp = phone.sdp("sendrecv");
    let (invite, mut leg) = phone.invite(sip, number, &sdp);
    phone.send(sip, &invite).await;
    let challenge = phone.expect_status(&[407], WAIT).await;
    phone.send(sip, &phone.ack_failure(&leg, &challenge)).await;
    let again = phone.invite_with_credentials(&mut leg, &challenge, &sdp, user, password);
    phone.send(sip, &again).await;
    let resp = phone
        .expect_status(&[180, 183, 200, 403, 404, 480, 503], WAIT)
        .await;
    (resp, leg)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registered_softphone_is_reached_by_name_until_it_unregisters() {
    let trunk = Phone::bind("pstn").await;
    let cfg = config(trunk.addr);
    let store = common::stores::open(&common::stores::sqlite_url());
    let switch = common::start_billed(&cfg, store.clone()).await;
    let sip = switch.sip_addr;
    member(&store, "minji", "minji-pw", "");
    member(&store, "jisu", "jisu-pw", "");
    let minji = Phone::bind("minji").await;
    let contact = format!("<sip:minji@{}>;expires=600", minji.addr);

    // Wrong password: challenged again, nothing registered.
    let r = register_as(&minji, sip, "minji", "wrong", Some(&contact), None, 1).await;
    assert_eq!(r.status(), Some(401));
    assert!(
        store
            .bindings("minji", freecall::clock::Clock::system().unix_ms())
            .unwrap()
            .is_empty()
    );
    // Somebody else's address with one's own credentials: refused.
    let r = register_as(&minji, sip, "jisu", "minji-pw", Some(&contact), None, 3).await;
    assert_eq!(r.status(), Some(401), "jisu's password is not minji's");
    // minji's credentials for jisu's address: refused outright.
    minji
        .send(
            sip,
            &register(&minji, sip, "jisu", 20, Some(&contact), None, None),
        )
        .await;
    let challenge = minji.expect_status(&[401], WAIT).await;
    minji
        .send(
            sip,
            &register(
                &minji,
                sip,
                "jisu",
                21,
                Some(&contact),
                None,
                Some((&challenge, "minji", "minji-pw")),
            ),
        )
        .await;
    let r = minji.expect_status(&[403], WAIT).await;
    assert!(r.header("Reason").unwrap().contains("only its own address"));
    assert!(
        store
            .bindings("jisu", freecall::clock::Clock::system().unix_ms())
            .unwrap()
            .is_empty()
    );
    // Too short an interval.
    let short = format!("<sip:minji@{}>;expires=30", minji.addr);
    let r = register_as(&minji, sip, "minji", "minji-pw", Some(&short), None, 5).await;
    assert_eq!(r.status(), Some(423));
    assert_eq!(r.header("Min-Expires"), Some("60"));

    let r = register_as(&minji, sip, "minji", "minji-pw", Some(&contact), None, 7).await;
    assert_eq!(r.status(), Some(200));
    let listed = r.header("Contact").expect("the binding is listed");
    assert!(
        listed.contains(&format!("sip:minji@{}", minji.addr)),
        "{listed}"
    );
    let granted: i64 = listed.rsplit("expires=").next().unwrap().parse().unwrap();
    assert!((595..=600).contains(&granted), "{listed}");
    let bound = store
        .bindings("minji", freecall::clock::Clock::system().unix_ms())
        .unwrap();
    assert_eq!(bound.len(), 1);
    assert_eq!(bound[0].source, format!("udp:{}", minji.addr));

    // jisu's phone calls minji by name: minji's softphone rings, not the trunk.
    let jisu = Phone::bind("jisu").await;
    let sdp = jisu.sdp("sendrecv");
    let (invite, mut leg) = jisu.invite(sip, "minji", &sdp);
    jisu.send(sip, &invite).await;
    let challenge = jisu.expect_status(&[407], WAIT).await;
    jisu.send(sip, &jisu.ack_failure(&leg, &challenge)).await;
    let again = jisu.invite_with_credentials(&mut leg, &challenge, &sdp, "jisu", "jisu-pw");
    jisu.send(sip, &again).await;
    let (inv, from) = minji.expect_request("INVITE", WAIT).await;
    assert_eq!(
        inv.request_uri(),
        Some(format!("sip:minji@{}", minji.addr).as_str())
    );
    minji
        .send(
            from,
            &minji.response(&inv, 200, "OK", "mj", Some(&minji.sdp("sendrecv"))),
        )
        .await;
    let ok = jisu.expect_status(&[200], WAIT).await;
    freecall_testkit::Phone::update_leg(&mut leg, &ok);
    jisu.send(sip, &jisu.ack(&leg, leg.cseq)).await;
    trunk.expect_silence(Duration::from_millis(200)).await;
    let bye = jisu.request(&mut leg, "BYE", None);
    jisu.send(sip, &bye).await;
    let (b, from) = minji.expect_request("BYE", WAIT).await;
    minji
        .send(from, &minji.response(&b, 200, "OK", "mj", None))
        .await;
    jisu.expect_status(&[200], WAIT).await;

    // A REGISTER without Contact fetches the bindings.
    let r = register_as(&minji, sip, "minji", "minji-pw", None, None, 9).await;
    assert_eq!(r.status(), Some(200));
    assert!(r.header("Contact").is_some());
    // Unregister every contact; a call then gets 480.
    let r = register_as(&minji, sip, "minji", "minji-pw", Some("*"), Some(0), 11).await;
    assert_eq!(r.status(), Some(200));
    assert!(r.header("Contact").is_none());
    let (resp, _) = call_as(&jisu, sip, "minji", "jisu", "jisu-pw").await;
    assert_eq!(resp.status(), Some(480));
    assert!(
        resp.header("Reason")
            .unwrap()
            .contains("user not registered")
    );
    minji.expect_silence(Duration::from_millis(200)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_members_web_dial_rings_the_registered_softphone_first() {
    let trunk = Phone::bind("pstn").await;
    let cfg = config(trunk.addr);
    let clock = Clock::adjustable();
    let store = common::stores::open(&common::stores::sqlite_url()).with_clock(clock.clone());
    let switch = common::start_billed(&cfg, store.clone()).await;
    let sip = switch.sip_addr;
    let m = member(&store, "dahye", "dahye-pw", "010-5555-6666");
    let phone = Phone::bind("dahye").await;
    let contact = format!("<sip:dahye@{}>", phone.addr);
    let r = register_as(
        &phone,
        sip,
        "dahye",
        "dahye-pw",
        Some(&contact),
        Some(300),
        1,
    )
    .await;
    assert_eq!(r.status(), Some(200));

    let api = common::serve_api(&cfg, &store, &switch);
    store
        .create_api_key("shop", &freecall::auth::api_key_hash("k-reg"), "credit")
        .unwrap();
    let path = format!("/v1/members/{}/calls", m.id);
    let r = tokio::task::spawn_blocking(move || {
        http::call(
            api,
            "POST",
            &path,
            Some("k-reg"),
            &[],
            Some(serde_json::json!({"number": "02-556-1234"})),
        )
    })
    .await
    .unwrap();
    assert_eq!(r.status, 202, "{}", r.text());
    // The softphone rings first (not the phone on file through the trunk).
    let (inv, from) = phone.expect_request("INVITE", WAIT).await;
    assert_eq!(
        inv.request_uri(),
        Some(format!("sip:dahye@{}", phone.addr).as_str())
    );
    phone
        .send(
            from,
            &phone.response(&inv, 200, "OK", "d", Some(&phone.sdp("sendrecv"))),
        )
        .await;
    let (dialled, tfrom) = trunk.expect_request("INVITE", WAIT).await;
    assert_eq!(dialled.uri_user.as_deref(), Some("025561234"));
    trunk
        .send(
            tfrom,
            &trunk.response(&dialled, 200, "OK", "t", Some(&trunk.sdp("sendrecv"))),
        )
        .await;
    // Once the switch has taken the answer (its ACK), half a minute of talk on its clock.
    trunk.expect_request("ACK", WAIT).await;
    clock.advance(Duration::from_millis(29_500));
    let mut leg = trunk.leg_from_request(&dialled, tfrom, "t");
    trunk
        .send(tfrom, &trunk.request(&mut leg, "BYE", None))
        .await;
    let (b, from) = phone.expect_request("BYE", WAIT).await;
    phone
        .send(from, &phone.response(&b, 200, "OK", "d", None))
        .await;
    let mut record = None;
    for _ in 0..50 {
        if let Some(r) = common::stores::records(&store).into_iter().next() {
            record = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let record = record.expect("the record");
    assert_eq!(record.legs[0].number, "dahye");
    assert_eq!(
        record.legs[0].cost, 0,
        "the softphone leg is on-net and free"
    );
    assert_eq!(
        record.legs[1].cost, 5,
        "the landline leg is paid from mileage: 30 s at 10 a minute"
    );
    assert!(store.audit().unwrap().is_empty());
}

/// A card's internet phone may be a SIP phone: the issuer is called back on it wherever
/// it is registered, on-net and free, and the visitor through the trunk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_back_rings_the_issuers_registered_sip_phone() {
    let trunk = Phone::bind("pstn").await;
    let text = config(trunk.addr);
    let cfg = Config::from_toml(&format!(
        "{}\n[[tariffs]]\naccount = \"guild\"\ndestination = \"landline\"\nper_minute = 30\nincrement = \"1/1\"\n",
        toml_of(&text)
    ))
    .unwrap();
    let clock = Clock::adjustable();
    let store = common::stores::open(&common::stores::sqlite_url()).with_clock(clock.clone());
    let switch = common::start_billed(&cfg, store.clone()).await;
    let sip = switch.sip_addr;
    member(&store, "kimsip", "kim-pw", "");
    let phone = Phone::bind("kimsip").await;
    let contact = format!("<sip:kimsip@{}>", phone.addr);
    let r = register_as(
        &phone,
        sip,
        "kimsip",
        "kim-pw",
        Some(&contact),
        Some(300),
        1,
    )
    .await;
    assert_eq!(r.status(), Some(200));
    let (card, _) = common::cards::issue(
        &store,
        "kimcard",
        10_000,
        3,
        r#"[{"kind":"internet","number":"kimsip","callback":true}]"#,
        "",
    );
    let placing = freecall::placing::Placing::new(
        store.clone(),
        Arc::new(RwLock::new(Arc::new(cfg.tariffs()))),
        cfg.billing.node_id.clone(),
        freecall::numbers::Classifier::new("KR").unwrap(),
        freecall::placing::Rules::from_config(&cfg.callbacks, &cfg.billing.blocked_destinations),
        switch.link(),
    );
    let id = placing
        .callback(card, "02-556-1234", "127.0.0.9".parse().unwrap(), false)
        .await
        .expect("requested");
    let (inv, from) = phone.expect_request("INVITE", WAIT).await;
    assert_eq!(
        inv.request_uri(),
        Some(format!("sip:kimsip@{}", phone.addr).as_str())
    );
    phone
        .send(
            from,
            &phone.response(&inv, 200, "OK", "k", Some(&phone.sdp("sendrecv"))),
        )
        .await;
    let mut leg = phone.leg_from_request(&inv, from, "k");
    let info = phone.request(&mut leg, "INFO", Some(("application/dtmf", "1")));
    phone.send(from, &info).await;
    let (visitor, tfrom) = trunk.expect_request("INVITE", WAIT).await;
    assert_eq!(visitor.uri_user.as_deref(), Some("025561234"));
    trunk
        .send(
            tfrom,
            &trunk.response(&visitor, 200, "OK", "v", Some(&trunk.sdp("sendrecv"))),
        )
        .await;
    // Once the switch has taken the answer (its ACK), half a minute of talk on its clock.
    trunk.expect_request("ACK", WAIT).await;
    clock.advance(Duration::from_millis(29_500));
    let mut vleg = trunk.leg_from_request(&visitor, tfrom, "v");
    trunk
        .send(tfrom, &trunk.request(&mut vleg, "BYE", None))
        .await;
    let record = common::stores::wait_record(&store, &id)
        .await
        .expect("the record");
    assert_eq!(record.legs[0].number, "kimsip");
    assert_eq!(record.legs[0].cost, 0, "the issuer's SIP phone is on-net");
    assert_eq!(record.legs[1].cost, 15, "30 s of a landline at 30 a minute");
    assert_eq!(store.card(card).unwrap().quota_used, 1);
}

/// A member's phones may hold `limits.max_bindings_per_user` contacts at once: one more
/// is refused with 503, saying why, and nothing changes; refreshing one already there
/// still works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_cannot_register_more_contacts_than_the_limit() {
    let trunk = Phone::bind("pstn").await;
    let mut cfg = config(trunk.addr);
    cfg.limits.max_bindings_per_user = 2;
    let store = common::stores::open(&common::stores::sqlite_url());
    let switch = common::start_billed(&cfg, store.clone()).await;
    let sip = switch.sip_addr;
    member(&store, "hana", "hana-pw", "");
    let phone = Phone::bind("hana").await;
    let contact = |line: u32| format!("<sip:hana@{};line={line}>;expires=600", phone.addr);
    for (line, cseq) in [(1, 1), (2, 3)] {
        let r = register_as(
            &phone,
            sip,
            "hana",
            "hana-pw",
            Some(&contact(line)),
            None,
            cseq,
        )
        .await;
        assert_eq!(r.status(), Some(200));
    }
    let r = register_as(&phone, sip, "hana", "hana-pw", Some(&contact(3)), None, 5).await;
    assert_eq!(r.status(), Some(503));
    assert!(
        r.header("Reason")
            .unwrap()
            .contains("too many registered contacts")
    );
    let now = freecall::clock::Clock::system().unix_ms();
    let mut held: Vec<String> = store
        .bindings("hana", now)
        .unwrap()
        .into_iter()
        .map(|b| b.contact)
        .collect();
    held.sort();
    assert_eq!(held.len(), 2, "{held:?}");
    assert!(held.iter().all(|c| !c.contains("line=3")), "{held:?}");
    let r = register_as(&phone, sip, "hana", "hana-pw", Some(&contact(1)), None, 7).await;
    assert_eq!(
        r.status(),
        Some(200),
        "a refresh of a contact held is not one more"
    );
}

/// The test configuration's TOML again (to add to it).
fn toml_of(cfg: &Config) -> String {
    let port_min = cfg.media.port_min;
    let trunk = &cfg.trunks[0].address;
    format!(
        "[sip]\nlisten = \"127.0.0.1:0\"\nt1_ms = 100\n\
[media]\naddress = \"127.0.0.1\"\nport_min = {port_min}\nport_max = {}\n\
[[trunks]]\nname = \"pstn\"\naddress = \"{trunk}\"\n[[routes]]\nprefix = \"\"\ntrunks = [\"pstn\"]\n\
[billing]\nnode_id = \"{}\"\n",
        cfg.media.port_max, cfg.billing.node_id
    )
}
