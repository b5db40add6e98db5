//! Credentials: SIP digest (RFC 2617 / RFC 7616 with MD5, `qop=auth`), stateless nonces,
//! password hashes for web logins (Argon2id) and API key hashes.
//!
//! Pure functions over strings: the call layer parses and challenges, the accounting
//! service verifies a proof against the HA1 the store holds.

use hmac::{Hmac, KeyInit, Mac};
use md5::{Digest, Md5};
use sha2::Sha256;

/// A digest response as a phone sent it in `Proxy-Authorization`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DigestProof {
    pub username: String,
    pub realm: String,
    pub nonce: String,
    pub uri: String,
    pub response: String,
    pub method: String,
    pub qop: Option<String>,
    pub nc: Option<String>,
    pub cnonce: Option<String>,
}

fn md5_hex(s: &str) -> String {
    hex::encode(Md5::digest(s.as_bytes()))
}

/// HA1 = MD5(username:realm:password): what the store keeps for SIP digest (a phone's
/// password never needs to be stored in the clear).
pub fn ha1(username: &str, realm: &str, password: &str) -> String {
    md5_hex(&format!("{username}:{realm}:{password}"))
}

/// The response a phone that knows HA1 computes.
pub fn digest_response(ha1: &str, p: &DigestProof) -> String {
    let ha2 = md5_hex(&format!("{}:{}", p.method, p.uri));
    match (&p.qop, &p.nc, &p.cnonce) {
        (Some(qop), Some(nc), Some(cnonce)) => {
            md5_hex(&format!("{ha1}:{}:{nc}:{cnonce}:{qop}:{ha2}", p.nonce))
        }
        _ => md5_hex(&format!("{ha1}:{}:{ha2}", p.nonce)),
    }
}

/// Does the proof match the stored HA1? (Constant-time comparison.)
pub fn verify(ha1: &str, p: &DigestProof) -> bool {
    let want = digest_response(ha1, p);
    constant_time_eq(want.as_bytes(), p.response.to_ascii_lowercase().as_bytes())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The parameters of a `Digest …` header value, names in lower case.
fn digest_params(value: &str) -> Option<std::collections::HashMap<String, String>> {
    let rest = value.trim();
    let (scheme, params) = rest.split_once(char::is_whitespace)?;
    if !scheme.eq_ignore_ascii_case("Digest") {
        return None;
    }
    let mut get = std::collections::HashMap::new();
    let mut s = params.trim();
    while !s.is_empty() {
        let (name, after) = s.split_once('=')?;
        let name = name.trim().to_ascii_lowercase();
        let after = after.trim_start();
        let (val, next) = if let Some(q) = after.strip_prefix('"') {
            let end = q.find('"')?;
            (q[..end].to_string(), &q[end + 1..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_string(), &after[end..])
        };
        get.insert(name, val);
        s = next.trim_start().trim_start_matches(',').trim_start();
    }
    Some(get)
}

/// Parse `Digest username="…", realm="…", …` (the value of `Proxy-Authorization`).
pub fn parse_digest(value: &str, method: &str) -> Option<DigestProof> {
    let mut get = digest_params(value)?;
    if let Some(alg) = get.get("algorithm")
        && !alg.eq_ignore_ascii_case("MD5")
    {
        return None;
    }
    Some(DigestProof {
        username: get.remove("username")?,
        realm: get.remove("realm")?,
        nonce: get.remove("nonce")?,
        uri: get.remove("uri")?,
        response: get.remove("response")?,
        method: method.to_string(),
        qop: get.remove("qop"),
        nc: get.remove("nc"),
        cnonce: get.remove("cnonce"),
    })
}

/// Stateless nonces: `<issued unix secs, hex>.<HMAC-SHA256(secret, issued)>`, so any node
/// holding the secret can check one without remembering it.
#[derive(Clone)]
pub struct NonceKey {
    secret: Vec<u8>,
    /// How long a nonce stays valid.
    pub lifetime_secs: u64,
}

impl std::fmt::Debug for NonceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NonceKey(…)")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceCheck {
    Valid,
    /// Ours but expired: challenge again with `stale=true` (the phone retries silently).
    Stale,
    Invalid,
}

impl NonceKey {
    pub fn new(secret: &[u8], lifetime_secs: u64) -> NonceKey {
        NonceKey {
            secret: secret.to_vec(),
            lifetime_secs,
        }
    }

    fn mac(&self, issued: &str, client: &str) -> String {
        // HMAC accepts keys of any length: new_from_slice cannot fail.
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret).expect("any key length");
        mac.update(issued.as_bytes());
        mac.update(b"|");
        mac.update(client.as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..16])
    }

    /// A nonce for `client` (the source address it was sent to): a proof captured from
    /// one address is worthless from another.
    pub fn issue(&self, now_unix: u64, client: &str) -> String {
        let issued = format!("{now_unix:x}");
        let mac = self.mac(&issued, client);
        format!("{issued}.{mac}")
    }

    pub fn check(&self, nonce: &str, now_unix: u64, client: &str) -> NonceCheck {
        let Some((issued, mac)) = nonce.split_once('.') else {
            return NonceCheck::Invalid;
        };
        if !constant_time_eq(self.mac(issued, client).as_bytes(), mac.as_bytes()) {
            return NonceCheck::Invalid;
        }
        let Ok(t) = u64::from_str_radix(issued, 16) else {
            return NonceCheck::Invalid;
        };
        if now_unix.saturating_sub(t) > self.lifetime_secs || t > now_unix + 60 {
            NonceCheck::Stale
        } else {
            NonceCheck::Valid
        }
    }
}

/// Remembers the proofs used while their nonce is valid: the same (nonce, cnonce, nc,
/// response) twice is a replay. Memory is bounded by calls per nonce lifetime (about
/// 100 bytes a call: 30 MB at 1,000 calls/s and a 300 s lifetime).
#[derive(Debug, Default)]
pub struct ReplayGuard {
    seen: std::collections::HashSet<String>,
    order: std::collections::VecDeque<(std::time::Instant, String)>,
}

impl ReplayGuard {
    /// `true` the first time this proof is seen (and remembers it until `now + keep`).
    pub fn first_use(
        &mut self,
        p: &DigestProof,
        now: std::time::Instant,
        keep: std::time::Duration,
    ) -> bool {
        while let Some((until, _)) = self.order.front() {
            if *until > now {
                break;
            }
            if let Some((_, k)) = self.order.pop_front() {
                self.seen.remove(&k);
            }
        }
        let key = format!(
            "{}:{}:{}:{}",
            p.nonce,
            p.cnonce.as_deref().unwrap_or(""),
            p.nc.as_deref().unwrap_or(""),
            p.response
        );
        if !self.seen.insert(key.clone()) {
            return false;
        }
        self.order.push_back((now + keep, key));
        true
    }
}

/// A trunk's username and password for SIP digest. The password never shows in `Debug`
/// (so not in logs), records or metrics.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
pub struct Credentials {
    pub username: String,
    pub password: Secret,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, ***)", self.username)
    }
}

/// A secret from the configuration: readable only through `expose`, never printed.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// A digest challenge from a carrier (`WWW-Authenticate` of a 401, `Proxy-Authenticate`
/// of a 407): MD5 or SHA-256 (RFC 7616), `qop=auth` or none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    pub nonce: String,
    pub opaque: Option<String>,
    /// The server offers `qop=auth`.
    pub qop_auth: bool,
    pub sha256: bool,
}

/// A challenge the switch can answer; `None` for another scheme or algorithm (the call
/// then fails on that trunk as the carrier's status says).
pub fn parse_challenge(value: &str) -> Option<Challenge> {
    let mut get = digest_params(value)?;
    let sha256 = match get.get("algorithm").map(|a| a.to_ascii_uppercase()) {
        None => false,
        Some(a) if a == "MD5" => false,
        Some(a) if a == "SHA-256" => true,
        Some(_) => return None,
    };
    let qop = get.remove("qop");
    if qop
        .as_deref()
        .is_some_and(|q| !q.split(',').any(|v| v.trim() == "auth"))
    {
        // Only auth-int offered: not supported.
        return None;
    }
    Some(Challenge {
        realm: get.remove("realm")?,
        nonce: get.remove("nonce")?,
        opaque: get.remove("opaque"),
        qop_auth: qop.is_some(),
        sha256,
    })
}

/// The `Authorization` / `Proxy-Authorization` value answering `ch` for a request of
/// `method` to `uri`, with a client nonce `cnonce` (nonce count 1: one answer per challenge).
pub fn authorization(
    ch: &Challenge,
    creds: &Credentials,
    method: &str,
    uri: &str,
    cnonce: &str,
) -> String {
    let h = |s: String| -> String {
        if ch.sha256 {
            hex::encode(Sha256::digest(s.as_bytes()))
        } else {
            md5_hex(&s)
        }
    };
    let ha1 = h(format!(
        "{}:{}:{}",
        creds.username,
        ch.realm,
        creds.password.expose()
    ));
    let ha2 = h(format!("{method}:{uri}"));
    let nc = "00000001";
    let response = if ch.qop_auth {
        h(format!("{ha1}:{}:{nc}:{cnonce}:auth:{ha2}", ch.nonce))
    } else {
        h(format!("{ha1}:{}:{ha2}", ch.nonce))
    };
    let mut v = format!(
        "Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{uri}\", response=\"{response}\", algorithm={}",
        creds.username,
        ch.realm,
        ch.nonce,
        if ch.sha256 { "SHA-256" } else { "MD5" }
    );
    if ch.qop_auth {
        v.push_str(&format!(", qop=auth, nc={nc}, cnonce=\"{cnonce}\""));
    }
    if let Some(o) = &ch.opaque {
        v.push_str(&format!(", opaque=\"{o}\""));
    }
    v
}

/// The `Proxy-Authenticate` value of a 407.
pub fn challenge(realm: &str, nonce: &str, stale: bool) -> String {
    let mut v = format!("Digest realm=\"{realm}\", nonce=\"{nonce}\", algorithm=MD5, qop=\"auth\"");
    if stale {
        v.push_str(", stale=true");
    }
    v
}

/// Argon2id hash (PHC string) of a web login password.
pub fn hash_password(password: &str) -> Result<String, String> {
    use argon2::password_hash::PasswordHasher;
    argon2::Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

pub fn verify_password(password: &str, phc: &str) -> bool {
    use argon2::password_hash::{PasswordVerifier, phc::PasswordHash};
    PasswordHash::new(phc)
        .map(|h| {
            argon2::Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// SHA-256 of an API key. Keys are 32 random bytes, so a fast hash is enough: there is
/// nothing to brute-force.
pub fn api_key_hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

#[cfg(test)]
mod tests {

    /// RFC 7616 section 3.9.1: the same request answered with MD5 and with SHA-256.
    #[test]
    fn a_carriers_challenge_is_answered_as_rfc_7616_computes_it() {
        let creds = Credentials {
            username: "Mufasa".into(),
            password: Secret::new("Circle of Life"),
        };
        let challenge = |alg: &str| {
            parse_challenge(&format!(
                "Digest realm=\"http-auth@example.org\", qop=\"auth, auth-int\", algorithm={alg}, \
                 nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", \
                 opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\""
            ))
            .unwrap()
        };
        let cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
        let md5 = authorization(&challenge("MD5"), &creds, "GET", "/dir/index.html", cnonce);
        assert!(
            md5.contains("response=\"8ca523f5e9506fed4657c9700eebdbec\""),
            "{md5}"
        );
        let sha = authorization(
            &challenge("SHA-256"),
            &creds,
            "GET",
            "/dir/index.html",
            cnonce,
        );
        assert!(
            sha.contains(
                "response=\"753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1\""
            ),
            "{sha}"
        );
        assert!(sha.contains("qop=auth, nc=00000001") && sha.contains("opaque=\"FQhe"));
        // Our own verifier takes the MD5 answer (the same arithmetic both ways).
        let proof = parse_digest(&md5, "GET").unwrap();
        assert!(verify(
            &ha1("Mufasa", "http-auth@example.org", "Circle of Life"),
            &proof
        ));
        // What we cannot answer is refused, and the password is never printed.
        assert!(
            parse_challenge("Digest realm=\"r\", nonce=\"n\", algorithm=SHA-512-256").is_none()
        );
        assert!(parse_challenge("Digest realm=\"r\", nonce=\"n\", qop=\"auth-int\"").is_none());
        assert!(parse_challenge("Basic realm=\"r\"").is_none());
        assert!(!format!("{creds:?}").contains("Circle"));
    }

    use super::*;

    #[test]
    fn rfc2617_example_response() {
        // RFC 2617 section 3.5: Mufasa / Circle Of Life.
        let h = ha1("Mufasa", "testrealm@host.com", "Circle Of Life");
        let p = DigestProof {
            username: "Mufasa".into(),
            realm: "testrealm@host.com".into(),
            nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093".into(),
            uri: "/dir/index.html".into(),
            response: "6629fae49393a05397450978507c4ef1".into(),
            method: "GET".into(),
            qop: Some("auth".into()),
            nc: Some("00000001".into()),
            cnonce: Some("0a4f113b".into()),
        };
        assert!(verify(&h, &p));
        let mut wrong = p.clone();
        wrong.uri = "/other".into();
        assert!(!verify(&h, &wrong));
    }

    #[test]
    fn header_parses() {
        let v = r#"Digest username="alice", realm="freecall", nonce="5f.ab", uri="sip:0212345678@127.0.0.1", response="0123", algorithm=MD5, cnonce="xyz", qop=auth, nc=00000001"#;
        let p = parse_digest(v, "INVITE").unwrap();
        assert_eq!(p.username, "alice");
        assert_eq!(p.qop.as_deref(), Some("auth"));
        assert_eq!(p.nc.as_deref(), Some("00000001"));
        assert_eq!(p.uri, "sip:0212345678@127.0.0.1");
        assert!(parse_digest("Basic abc", "INVITE").is_none());
        assert!(parse_digest(r#"Digest username="a", realm="r""#, "INVITE").is_none());
    }

    #[test]
    fn nonces_expire_and_cannot_be_forged() {
        let k = NonceKey::new(b"secret", 300);
        let n = k.issue(1_000_000, "127.0.0.2");
        assert_eq!(k.check(&n, 1_000_100, "127.0.0.2"), NonceCheck::Valid);
        assert_eq!(k.check(&n, 1_000_400, "127.0.0.2"), NonceCheck::Stale);
        assert_eq!(
            k.check(&n, 1_000_100, "10.9.9.9"),
            NonceCheck::Invalid,
            "bound to the client"
        );
        let forged = format!("{:x}.{}", 1_000_000u64, "0".repeat(32));
        assert_eq!(
            k.check(&forged, 1_000_100, "127.0.0.2"),
            NonceCheck::Invalid
        );
        assert_eq!(
            NonceKey::new(b"other", 300).check(&n, 1_000_100, "127.0.0.2"),
            NonceCheck::Invalid
        );
    }

    #[test]
    fn passwords_hash_and_verify() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong", &h));
    }
}
