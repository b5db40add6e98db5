//! What the tests of calls a member or a trusted proxy pays for share: a billed switch
//! whose mobile calls on mileage cost 100 points a second (so a few hundred points make a
//! call of a few seconds), a member who calls with SIP digest, a member's phone that
//! answers the challenge, and a trunk that answers.
#![allow(dead_code)]

use freecall::auth;
use freecall::config::Config;
use freecall::store::Store;
use freecall::store::shop::NewMember;
use freecall_testkit::{Leg, Phone};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

pub const WAIT: Duration = Duration::from_secs(5);
static SLOT: AtomicU16 = AtomicU16::new(0);

/// A billed switch: no unbilled peer; 127.0.0.3 is a proxy that names the payer in
/// `X-Freecall-Charge`. Mobile calls on mileage cost 6000 points a minute (100 a second,
/// 1/1 billing) so a few hundred points make a call of a few seconds.
pub fn money_config(trunk: SocketAddr) -> Config {
    let slot = SLOT.fetch_add(1, Ordering::Relaxed);
    let port_min = 50000 + slot * 200;
    let text = format!(
        r#"
[sip]
listen = "127.0.0.1:0"
t1_ms = 100
[media]
address = "127.0.0.1"
port_min = {port_min}
port_max = {port_max}
[[peers]]
name = "proxy"
address = "127.0.0.3"
billing = "header"
[[trunks]]
name = "pstn"
address = "{trunk}"
[[routes]]
prefix = ""
trunks = ["pstn"]
[billing]
home_country = "KR"
realm = "freecall"
node_id = "test-node-{slot}"
max_call_secs = 600
[[tariffs]]
account = "mileage"
destination = "mobile"
per_minute = 6000
increment = "1/1"
[[tariffs]]
account = "guild"
destination = "landline"
per_minute = 60
increment = "1/1"
"#,
        port_max = port_min + 198
    );
    Config::from_toml(&text).expect("money config")
}

/// A member `login` who calls with `password`, with `bonus` mileage: their account.
pub fn member(store: &Store, login: &str, password: &str, bonus: i64) -> i64 {
    store
        .create_member(
            &NewMember {
                login: login.into(),
                password_hash: auth::hash_password(password).unwrap(),
                name: "Kim Minji".into(),
                address: "Seoul".into(),
                job: "designer".into(),
                phone: "01099998888".into(),
                email: "minji@example.com".into(),
                sip_ha1: auth::ha1(login, "freecall", password),
            },
            bonus,
        )
        .unwrap()
        .account_id
}

/// INVITE, 407, ACK, INVITE with credentials; the final (or first non-100) response.
pub async fn call_as(
    phone: &Phone,
    sip: SocketAddr,
    number: &str,
    user: &str,
    password: &str,
) -> (freecall::sip::Message, Leg) {
    let sdp = phone.sdp("sendrecv");
    let (invite, mut leg) = phone.invite(sip, number, &sdp);
    phone.send(sip, &invite).await;
    let challenge = phone.expect_status(&[407], WAIT).await;
    assert!(
        challenge
            .header("Proxy-Authenticate")
            .unwrap()
            .contains("realm=\"freecall\"")
    );
    phone.send(sip, &phone.ack_failure(&leg, &challenge)).await;
    let again = phone.invite_with_credentials(&mut leg, &challenge, &sdp, user, password);
    phone.send(sip, &again).await;
    let resp = phone
        .expect_status(&[180, 183, 200, 402, 403, 404, 407, 486, 503], WAIT)
        .await;
    (resp, leg)
}

/// The trunk answers the next INVITE; returns its leg.
pub async fn trunk_answers(trunk: &Phone) -> (freecall::sip::Message, SocketAddr) {
    let (inv, from) = trunk.expect_request("INVITE", WAIT).await;
    trunk
        .send(
            from,
            &trunk.response(&inv, 200, "OK", "tk", Some(&trunk.sdp("sendrecv"))),
        )
        .await;
    (inv, from)
}

/// Run `f` to its end on a runtime of its own (two worker threads).
pub fn run(f: impl std::future::Future<Output = ()>) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}
