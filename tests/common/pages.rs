//! What the page tests share: a site (the switch with billing, its store, the pages and the
//! API on one listener, a PBX that every number reaches), the PBX's side of a call the pages
//! placed, and a client without a browser that keeps its session cookie and posts forms with
//! the form token.
#![allow(dead_code)]

use super::http;
use super::placed::{sdp_for, switch_media};
use freecall::config::Config;
use freecall::media::codec::Codec;
use freecall::sip::Message;
use freecall::store::Store;
use freecall_testkit::Phone;
use freecall_testkit::audio::RtpEnd;
use std::net::SocketAddr;
use std::time::Duration;

/// Browser windows: a phone's screen and a desktop's.
pub const PHONE: (u32, u32) = (360, 740);
pub const DESKTOP: (u32, u32) = (1200, 900);

/// Every number reaches the PBX at `trunk`; guilds open with a 50,000 bonus, and guild and
/// mileage accounts have tariffs for landlines and mobiles.
pub fn config(trunk: SocketAddr) -> Config {
    super::placed::config(
        trunk,
        "web",
        "signup_bonus_guild = 50000\n\
[[tariffs]]\naccount = \"guild\"\ndestination = \"landline\"\nper_minute = 30\nincrement = \"1/1\"\n\
[[tariffs]]\naccount = \"guild\"\ndestination = \"mobile\"\nper_minute = 120\nincrement = \"1/1\"\n\
[[tariffs]]\naccount = \"mileage\"\ndestination = \"mobile\"\nper_minute = 20\nincrement = \"1/1\"\n\
[[tariffs]]\naccount = \"mileage\"\ndestination = \"landline\"\nper_minute = 10\nincrement = \"1/1\"\n",
    )
}

/// A running site: the pages' base URL and address, the store, and the PBX every number
/// reaches.
pub struct Site {
    pub url: String,
    pub addr: SocketAddr,
    pub store: Store,
    pub pbx: Phone,
    pub _switch: freecall::driver::SwitchHandle,
}

/// A site with the default web settings (its own data directory).
pub async fn site() -> Site {
    site_with(super::web_config()).await
}

/// A site with the web settings `web`.
pub async fn site_with(web: freecall::config::WebConfig) -> Site {
    let pbx = Phone::bind("pbx").await;
    let cfg = config(pbx.addr);
    let store = super::stores::open(&super::stores::sqlite_url());
    let switch = super::start_billed(&cfg, store.clone()).await;
    let addr = super::serve_site(&cfg, &store, &switch, web);
    Site {
        url: format!("http://{addr}"),
        addr,
        store,
        pbx,
        _switch: switch,
    }
}

/// Answer `inv` on the PBX with a phone speaking `codec`; the phone and where the switch
/// takes its audio.
pub async fn answer(
    pbx: &Phone,
    inv: &Message,
    from: SocketAddr,
    tag: &str,
    codec: Codec,
    pt: u8,
) -> (RtpEnd, SocketAddr) {
    let phone = RtpEnd::bind(codec, pt, Some(101)).await;
    pbx.send(from, &pbx.response(inv, 180, "Ringing", tag, None))
        .await;
    pbx.send(
        from,
        &pbx.response(inv, 200, "OK", tag, Some(&sdp_for(&phone))),
    )
    .await;
    (phone, switch_media(inv))
}

/// The far end hangs up `inv`'s call; the other leg's BYE is answered.
pub async fn hang_up(pbx: &Phone, inv: &Message, from: SocketAddr, tag: &str) {
    let mut leg = pbx.leg_from_request(inv, from, tag);
    let bye = pbx.request(&mut leg, "BYE", None);
    pbx.send(from, &bye).await;
    for _ in 0..20 {
        match pbx.recv(Duration::from_secs(2)).await {
            Some((m, f)) if m.method().map(|x| x.as_str()) == Some("BYE") => {
                pbx.send(f, &pbx.response(&m, 200, "OK", "x", None)).await;
                return;
            }
            Some(_) => continue,
            None => return,
        }
    }
}

/// The cookie jar of a client without a browser: the session cookie and the form token.
pub fn session(addr: SocketAddr, path: &str) -> (String, String) {
    let r = http::request(addr, "GET", path, &[("Cookie", "lang=en")], None);
    assert_eq!(r.status, 200, "{}", r.text());
    let cookie = r
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("Set-Cookie"))
        .filter_map(|(_, v)| v.split(';').next())
        .find(|c| c.starts_with("freecall="))
        .expect("a session cookie")
        .to_string();
    let body = r.text();
    let token = body
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|t| t.split('"').next())
        .expect("a form token")
        .to_string();
    (format!("{cookie}; lang=en"), token)
}

/// The session cookie a response set (a login renews it), else the one sent.
pub fn next_cookie(r: &http::Response, old: &str) -> String {
    r.headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("Set-Cookie"))
        .filter_map(|(_, v)| v.split(';').next())
        .find(|c| c.starts_with("freecall="))
        .map(|c| format!("{c}; lang=en"))
        .unwrap_or_else(|| old.to_string())
}

/// Post the URL-encoded form `body` to `path` with the session `cookie`.
pub fn post_form(addr: SocketAddr, path: &str, cookie: &str, body: &str) -> http::Response {
    http::request(
        addr,
        "POST",
        path,
        &[
            ("Cookie", cookie),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        Some(body.as_bytes()),
    )
}
