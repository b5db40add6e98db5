//! The parts of RFC 3261's grammar the switch reads out of a header value: a name-addr or
//! addr-spec with its parameters (From, To, Contact), a Via value, a URI's scheme and user.
//! Tolerant where RFC 4475 says a message is valid (LWS around `;`, `=`, `/` and `:`,
//! folded lines, escaped quotes, odd characters in a user part or an unknown method's
//! URI), strict where it says one is not (unquoted display names that are not tokens,
//! an addr-spec holding `?`, `,` or `;`, empty parameters).

/// A From, To or Contact value.
#[derive(Debug, PartialEq, Eq)]
pub struct NameAddr {
    /// The URI as written (inside `<>` when it had them), or `*` (Contact).
    pub uri: String,
    pub tag: Option<String>,
}

/// The first value of a Via header.
#[derive(Debug, PartialEq, Eq)]
pub struct Via {
    pub transport: String,
    /// host or host:port, without LWS.
    pub sent_by: String,
    /// None for an RFC 2543 sender (no branch parameter).
    pub branch: Option<String>,
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_byte)
}

/// Split `s` on `sep` outside quoted strings and `<>`.
fn split_outside(s: &str, sep: u8) -> Vec<&str> {
    let b = s.as_bytes();
    let (mut out, mut from, mut quoted, mut depth, mut i) = (Vec::new(), 0, false, 0i32, 0);
    while i < b.len() {
        match b[i] {
            b'\\' if quoted => i += 1,
            b'"' => quoted = !quoted,
            b'<' if !quoted => depth += 1,
            b'>' if !quoted => depth -= 1,
            c if c == sep && !quoted && depth == 0 => {
                out.push(&s[from..i]);
                from = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    out.push(&s[from..]);
    out
}

/// `;name[=value]` parameters (the text after the URI or sent-by): (name, value) pairs,
/// LWS around `;` and `=` allowed. None when one is empty or not a token (or a token, a
/// host or a quoted string as its value).
fn params(rest: &str) -> Option<Vec<(&str, &str)>> {
    let rest = rest.trim();
    if rest.is_empty() {
        return Some(Vec::new());
    }
    let rest = rest.strip_prefix(';')?;
    let mut out = Vec::new();
    for p in split_outside(rest, b';') {
        let (name, value) = match p.split_once('=') {
            Some((n, v)) => (n.trim(), v.trim()),
            None => (p.trim(), ""),
        };
        if !is_token(name) {
            return None;
        }
        let plain = |v: &str| {
            v.bytes()
                .all(|b| is_token_byte(b) || matches!(b, b'[' | b']' | b':'))
        };
        let quoted = value.len() >= 2 && value.starts_with('"') && value.ends_with('"');
        if p.contains('=') && value.is_empty() || !(quoted || plain(value)) {
            return None;
        }
        out.push((name, value));
    }
    Some(out)
}

/// A URI's scheme is `ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )` followed by `:`.
pub fn scheme(uri: &str) -> Option<&str> {
    let (s, _) = uri.split_once(':')?;
    let mut b = s.bytes();
    let first = b.next()?;
    (first.is_ascii_alphabetic() && b.all(|c| c.is_ascii_alphanumeric() || b"+-.".contains(&c)))
        .then_some(s)
}

/// A From, To or Contact value (the first of a Contact list).
pub fn name_addr(value: &str) -> Option<NameAddr> {
    let value = split_outside(value, b',')[0].trim();
    if value == "*" {
        return Some(NameAddr {
            uri: "*".into(),
            tag: None,
        });
    }
    let (uri, rest) = if let Some(after_quote) = value.strip_prefix('"') {
        // A quoted display name, backslash escapes inside, then <uri>.
        let b = after_quote.as_bytes();
        let mut i = 0;
        while i < b.len() && b[i] != b'"' {
            i += if b[i] == b'\\' { 2 } else { 1 };
        }
        let after = after_quote.get(i + 1..)?.trim_start();
        bracketed(after)?
    } else if let Some(lt) = value.find('<') {
        // An unquoted display name is tokens separated by LWS. Phones also send names in
        // their own script unquoted (`홍길동 <sip:…>`): letters beyond ASCII are let through,
        // separators (`,` `;` `"` `:` `@` …) are not (RFC 4475 3.1.2.15).
        let display = &value[..lt];
        let word_ok = |w: &str| w.chars().all(|c| !c.is_ascii() || is_token_byte(c as u8));
        if !display.split_whitespace().all(word_ok) {
            return None;
        }
        bracketed(&value[lt..])?
    } else {
        // An addr-spec: its parameters are the header's, and it may not hold `;` `,` `?`.
        let end = value.find(';').unwrap_or(value.len());
        let uri = value[..end].trim();
        if uri.contains(['?', ',', ' ', '\t']) {
            return None;
        }
        (uri, &value[end..])
    };
    scheme(uri)?;
    let tag = params(rest)?
        .into_iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("tag"))
        .map(|(_, v)| v.to_string());
    if tag.as_deref() == Some("") {
        return None;
    }
    Some(NameAddr {
        uri: uri.to_string(),
        tag,
    })
}

/// `<uri>` then the rest; spaces just inside the brackets are forgiven (RFC 4475 3.1.2.14).
fn bracketed(s: &str) -> Option<(&str, &str)> {
    let inner = s.strip_prefix('<')?;
    let gt = inner.find('>')?;
    let uri = inner[..gt].trim();
    if uri.is_empty() || uri.contains(char::is_whitespace) {
        return None;
    }
    Some((uri, &inner[gt + 1..]))
}

/// Every value of a Via header must be well formed; the first is returned.
pub fn via(value: &str) -> Option<Via> {
    let mut first = None;
    for v in split_outside(value, b',') {
        let parsed = via_parm(v.trim())?;
        first.get_or_insert(parsed);
    }
    first
}

fn via_parm(v: &str) -> Option<Via> {
    // sent-protocol: name SLASH version SLASH transport, SLASH = SWS "/" SWS.
    let mut parts = v.splitn(3, '/');
    let (name, version, rest) = (parts.next()?, parts.next()?, parts.next()?);
    if !is_token(name.trim()) || !is_token(version.trim()) {
        return None;
    }
    let rest = rest.trim_start();
    let t_end = rest.find(|c: char| !is_token_byte(c as u8) || !c.is_ascii())?;
    let transport = &rest[..t_end];
    let after = &rest[t_end..];
    if transport.is_empty() || !after.starts_with(char::is_whitespace) {
        return None;
    }
    let after = after.trim_start();
    let end = after.find(';').unwrap_or(after.len());
    // sent-by: host [ COLON port ], COLON = SWS ":" SWS.
    let sent_by: String = after[..end].split_whitespace().collect();
    if sent_by.is_empty()
        || !sent_by
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]_".contains(&b))
    {
        return None;
    }
    let branch = params(&after[end..])?
        .into_iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("branch"))
        .map(|(_, v)| v.to_string());
    Some(Via {
        transport: transport.to_ascii_uppercase(),
        sent_by,
        branch,
    })
}

/// The user part of a sip:, sips: or tel: URI, as written (escapes kept).
pub fn uri_user(uri: &str) -> Option<String> {
    let s = scheme(uri)?;
    let rest = &uri[s.len() + 1..];
    if s.eq_ignore_ascii_case("tel") {
        return Some(rest.split(';').next().unwrap_or("").to_string());
    }
    if !(s.eq_ignore_ascii_case("sip") || s.eq_ignore_ascii_case("sips")) {
        return None;
    }
    // A user holds no unescaped `@` (nor does anything after it), but may hold `;` and `?`.
    let at = rest.find('@')?;
    let user = rest[..at].split(':').next().unwrap_or("");
    (!user.is_empty()).then(|| user.to_string())
}

/// Whether a sip: or sips: URI carries headers (`?…` after the host): not allowed in a
/// Request-URI (RFC 3261 19.1.5, RFC 4475 3.1.2.11).
pub fn has_headers(uri: &str) -> bool {
    let host_part = match uri.find('@') {
        Some(at) => &uri[at..],
        None => uri,
    };
    host_part.contains('?')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_addrs_with_lws_escapes_and_odd_users() {
        let a =
            name_addr("\"J Rosenberg \\\\\\\"\"       <sip:jdrosen@example.com> ; tag = 98asjd8")
                .unwrap();
        assert_eq!(a.uri, "sip:jdrosen@example.com");
        assert_eq!(a.tag.as_deref(), Some("98asjd8"));
        let b = name_addr("caller<sip:caller@example.com>;tag=323").unwrap();
        assert_eq!(b.tag.as_deref(), Some("323"));
        let c = name_addr("sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n").unwrap();
        assert_eq!(c.uri, "sip:vivekg@chair-dnrc.example.com");
        assert_eq!(c.tag.as_deref(), Some("1918181833n"));
        assert_eq!(name_addr("*").unwrap().uri, "*");
        // Not well formed.
        assert!(name_addr("Bell, Alexander <sip:a.g.bell@example.com>;tag=43").is_none());
        let hangul = name_addr("홍길동 <sip:0311111111@192.0.2.1>;tag=k1").unwrap();
        assert_eq!(hangul.tag.as_deref(), Some("k1"));
        assert!(name_addr("sip:user@example.com?Route=%3Csip:sip.example.com%3E").is_none());
        assert!(name_addr("<sip:a@b>;;tag=1").is_none());
        assert!(name_addr("<sip:a@b>;tag=").is_none());
        assert!(
            name_addr("isbn:2983792873").is_some(),
            "any scheme is a URI"
        );
    }

    #[test]
    fn via_values_with_lws_and_without_a_branch() {
        let v = via("SIP  /   2.0 /UDP    192.0.2.2;rport;branch=390skdjuw").unwrap();
        assert_eq!(
            (
                v.transport.as_str(),
                v.sent_by.as_str(),
                v.branch.as_deref()
            ),
            ("UDP", "192.0.2.2", Some("390skdjuw"))
        );
        let old = via("SIP/2.0/UDP 192.0.2.15").unwrap();
        assert_eq!(old.branch, None);
        let port = via("SIP/2.0/TCP [2001:db8::9] : 5061;branch=z9hG4bKx").unwrap();
        assert_eq!(port.sent_by, "[2001:db8::9]:5061");
        assert!(via("SIP/2.0/UDP 192.0.2.15;;,;,,").is_none());
        assert!(via("SIP/2.0/UDP").is_none());
    }

    #[test]
    fn users_of_uris() {
        assert_eq!(
            uri_user("sip:user;par=u%40example.net@example.com").as_deref(),
            Some("user;par=u%40example.net")
        );
        assert_eq!(
            uri_user("sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1@example.com")
                .as_deref(),
            Some("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
        );
        assert_eq!(
            uri_user("tel:+8221234567;phone-context=x").as_deref(),
            Some("+8221234567")
        );
        assert_eq!(uri_user("sip:example.com"), None);
        assert_eq!(uri_user("soap.beep://192.0.2.103:3002"), None);
        assert!(has_headers(
            "sip:user@example.com?Route=%3Csip:example.com%3E"
        ));
        assert!(!has_headers("sip:a?b@example.com"));
    }
}
