//! Who may call, and where a dialled number goes.
//!
//! Pure: no SIP, no sockets. The call layer asks `Acl::allows` for the source of a new
//! INVITE and `DialPlan::lookup` for the ordered trunk list of the dialled number.

use crate::config::{Config, PeerBillingMode};
use crate::media::codec::Codec;
use std::net::{IpAddr, SocketAddr};

/// Sources allowed to place calls (trusted peers and trunks, by address).
#[derive(Debug, Clone, Default)]
pub struct Acl {
    nets: Vec<(String, ipnet::IpNet)>,
}

impl Acl {
    pub fn new(entries: impl IntoIterator<Item = (String, ipnet::IpNet)>) -> Acl {
        Acl {
            nets: entries.into_iter().collect(),
        }
    }

    /// The name of the first peer whose network holds `ip`.
    pub fn allows(&self, ip: IpAddr) -> Option<&str> {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        self.nets
            .iter()
            .find(|(_, net)| net.contains(&ip))
            .map(|(name, _)| name.as_str())
    }
}

#[derive(Debug, Clone)]
pub struct Trunk {
    pub name: String,
    /// Where its requests go: an address, or a host name the switch keeps resolved.
    pub dest: TrunkDest,
    /// Codecs the trunk takes, in order of preference (empty: the caller's offer passes
    /// unchanged).
    pub codecs: Vec<Codec>,
    /// Digest credentials for the carrier's challenges.
    pub credentials: Option<crate::auth::Credentials>,
    /// Caps: calls at once and new calls per second (0: none).
    pub max_calls: usize,
    pub calls_per_second: usize,
    /// How the called number is written to this trunk.
    pub numbers: NumberRewrite,
    /// How the caller is presented to this trunk.
    pub caller: CallerRules,
    /// Its share among trunks of equal rank.
    pub weight: u32,
    /// The switch registers with it, asking for this long (None: it does not), as
    /// `register_user` (the username).
    pub register: Option<std::time::Duration>,
    pub register_user: String,
}

/// Where routing sends a trunk's requests: an address, or a name to resolve.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TrunkDest {
    Fixed(crate::transaction::Peer),
    Named(HostName),
}

/// One address a trunk's host name resolved to, with its SRV record's priority (lower is
/// tried first) and weight (its share among addresses of equal priority). Addresses of a
/// name without SRV records come one priority each, in DNS order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Hop {
    pub peer: crate::transaction::Peer,
    pub priority: u16,
    pub weight: u16,
}

/// A trunk's host name as configured: `carrier.example` (NAPTR/SRV/A) or
/// `carrier.example:5070` (A/AAAA only), with the transport the trunk asks for, if any.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HostName {
    pub host: String,
    pub port: Option<u16>,
    pub transport: Option<crate::sip::Transport>,
}

impl HostName {
    /// The host part of the trunk's Request-URI and To: the name as configured, as RFC 3263
    /// keeps it (the carrier sees its own domain, not the address it was reached at).
    pub fn uri_host(&self) -> String {
        match self.port {
            Some(p) => format!("{}:{p}", self.host),
            None => self.host.clone(),
        }
    }
}

impl std::fmt::Display for HostName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.uri_host())?;
        if let Some(t) = self.transport {
            write!(f, ";transport={}", t.as_str().to_ascii_lowercase())?;
        }
        Ok(())
    }
}

/// How a trunk wants the caller presented (`[[trunks]] caller_id`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallerIdMode {
    /// The number in From's user part only.
    #[default]
    From,
    /// From, and the number asserted in P-Asserted-Identity (RFC 3325).
    Pai,
}

/// Who is calling, as the switch established it: the number (from a trusted peer's
/// P-Asserted-Identity, else the From user when it is a number) and whether the caller
/// asked not to be shown (RFC 3323 `Privacy: id`, `user` or `header`, or an anonymous
/// From).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallerId {
    pub number: Option<String>,
    pub private: bool,
    /// The number comes from a trusted source (a peer's, a registered carrier's, or the
    /// switch's own): only such a number is asserted to a carrier.
    pub verified: bool,
}

impl CallerId {
    /// The caller of an INVITE. Identity headers count only from a trusted peer
    /// (`trusted`); from anyone else they are ignored (and never passed on: the B-leg's
    /// headers are the switch's own).
    pub fn of(req: &crate::sip::Message, trusted: bool) -> CallerId {
        let asserted = trusted
            .then(|| req.header("P-Asserted-Identity"))
            .flatten()
            .and_then(uri_user)
            .and_then(|u| normalize_number(&u).ok());
        let from = req
            .from_user
            .as_deref()
            .filter(|u| !u.eq_ignore_ascii_case("anonymous"))
            .and_then(|u| normalize_number(u).ok());
        let privacy = req
            .headers_named("Privacy")
            .flat_map(|v| {
                v.split(';')
                    .map(|t| t.trim().to_ascii_lowercase())
                    .collect::<Vec<_>>()
            })
            .any(|t| matches!(t.as_str(), "id" | "user" | "header"));
        let anonymous_from = req
            .from_user
            .as_deref()
            .is_some_and(|u| u.eq_ignore_ascii_case("anonymous"));
        CallerId {
            number: asserted.or(from),
            private: privacy || anonymous_from,
            verified: trusted,
        }
    }
}

/// The user part of a name-addr's `sip:`/`sips:`/`tel:` URI (`"x" <sip:+8210…@host>`).
fn uri_user(value: &str) -> Option<String> {
    let inner = match (value.find('<'), value.find('>')) {
        (Some(a), Some(b)) if a < b => &value[a + 1..b],
        _ => value.split(';').next().unwrap_or(value),
    };
    let rest = inner
        .trim()
        .strip_prefix("sips:")
        .or_else(|| inner.trim().strip_prefix("sip:"))
        .or_else(|| inner.trim().strip_prefix("tel:"))?;
    let user = rest.split(['@', ';', '?']).next()?;
    (!user.is_empty()).then(|| user.to_string())
}

/// A trunk's rules for presenting the caller.
#[derive(Debug, Clone)]
pub struct CallerRules {
    pub mode: CallerIdMode,
    pub format: crate::numbers::NumberFormat,
    /// Presented when the caller has no number ("": anonymous).
    pub default: String,
    pub home: crate::numbers::Classifier,
}

/// What the trunk is told of the caller: From's user part (and display name for a
/// private caller), and the asserted number with its privacy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Presentation {
    /// From's user part: the number, or `anonymous`.
    pub from_user: String,
    /// P-Asserted-Identity's number (mode `pai`, when there is one).
    pub asserted: Option<String>,
    /// `Privacy: id` is sent (the caller asked not to be shown).
    pub private: bool,
}

impl CallerRules {
    /// How `caller` is presented on this trunk.
    pub fn present(&self, caller: &CallerId) -> Presentation {
        let format = |n: String| self.home.format_for_trunk(&n, self.format).unwrap_or(n);
        let default = (!self.default.is_empty()).then(|| self.default.clone());
        let number = caller
            .number
            .clone()
            .or_else(|| default.clone())
            .map(format);
        // What the switch vouches for: a verified caller's number, else its own default.
        let vouched = match caller.verified {
            true => number.clone(),
            false => default.map(format),
        };
        let shown = |n: &Option<String>| match n {
            Some(n) if !caller.private => n.clone(),
            _ => "anonymous".to_string(),
        };
        match self.mode {
            CallerIdMode::From => Presentation {
                from_user: shown(&number),
                asserted: None,
                private: caller.private,
            },
            CallerIdMode::Pai => Presentation {
                from_user: shown(&number),
                asserted: vouched,
                private: caller.private,
            },
        }
    }
}

/// A trunk's way of writing the called number: its format, then a prefix taken off and
/// one put on (a tech prefix).
#[derive(Debug, Clone)]
pub struct NumberRewrite {
    pub format: crate::numbers::NumberFormat,
    pub strip: String,
    pub add: String,
    pub home: crate::numbers::Classifier,
}

impl NumberRewrite {
    /// `number` as the trunk gets it in the Request-URI and To.
    pub fn apply(&self, number: &str) -> String {
        let formatted = self
            .home
            .format_for_trunk(number, self.format)
            .unwrap_or_else(|| number.to_string());
        let rest = formatted
            .strip_prefix(self.strip.as_str())
            .filter(|_| !self.strip.is_empty())
            .unwrap_or(&formatted);
        format!("{}{rest}", self.add)
    }
}

/// Longest-prefix dial plan: number → ordered trunk indices.
#[derive(Debug, Clone, Default)]
pub struct DialPlan {
    /// Sorted by prefix length, longest first.
    routes: Vec<Route>,
}

#[derive(Debug, Clone)]
pub struct Route {
    pub prefix: String,
    /// Every trunk of the route, in the configured order.
    pub trunks: Vec<usize>,
    /// The same, by rank: trunks of one rank share its calls by weight.
    pub ranks: Vec<Vec<usize>>,
    /// Calls on this route are recorded.
    pub record: bool,
}

impl DialPlan {
    pub fn lookup(&self, number: &str) -> Option<&Route> {
        self.routes
            .iter()
            .find(|r| number.starts_with(r.prefix.as_str()))
    }
}

/// Routing as the call layer sees it: ACL, trunks and dial plan, built from config.
#[derive(Debug, Clone, Default)]
pub struct Routing {
    pub acl: Acl,
    pub trunks: Vec<Trunk>,
    pub plan: DialPlan,
    /// How each trusted peer's calls are paid for, by peer name.
    pub peer_billing: std::collections::HashMap<String, PeerBilling>,
    /// Load balancers in front of the switch, whose word on a request's real source is
    /// taken (never trusted peers themselves).
    pub dispatchers: Acl,
}

/// The header a dispatcher names a request's real source in (`ip:port` or `ip`).
pub const SOURCE_HEADER: &str = "X-Freecall-Source";

/// How a trusted peer's calls are paid for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum PeerBilling {
    /// Carried free (the quick start's localhost peer; internal test traffic).
    #[default]
    Unbilled,
    /// Charged to the account or card the peer names in this header (a SIP proxy in front
    /// of the switch authenticated the caller for us).
    Header(String),
}

impl Routing {
    /// The host names of trunks given by name (each once), for the DNS keeper.
    pub fn host_names(&self) -> Vec<HostName> {
        let mut names: Vec<HostName> = Vec::new();
        for t in &self.trunks {
            if let TrunkDest::Named(n) = &t.dest
                && !names.contains(n)
            {
                names.push(n.clone());
            }
        }
        names
    }

    /// Where a request really came from: the address in a dispatcher's source header
    /// when `from` is a dispatcher, else `from`. What authentication and the guessing
    /// fence look at (answers still go back the way the request came). A dispatcher's
    /// request without a readable header is counted against the dispatcher itself.
    pub fn caller_address(&self, from: SocketAddr, req: &crate::sip::Message) -> SocketAddr {
        self.vouched_address(from, req).unwrap_or(from)
    }

    /// The address trust is decided on (a trusted peer, a registered carrier): as
    /// `caller_address`, but `None` for a dispatcher's request that does not say where it
    /// came from — the dispatcher's own address must never make a caller a trusted peer.
    pub fn vouched_address(
        &self,
        from: SocketAddr,
        req: &crate::sip::Message,
    ) -> Option<SocketAddr> {
        if self.dispatchers.allows(from.ip()).is_none() {
            return Some(from);
        }
        req.header(SOURCE_HEADER).and_then(|v| {
            let v = v.trim();
            v.parse::<SocketAddr>()
                .ok()
                .or_else(|| v.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, 0)))
        })
    }

    pub fn billing_of(&self, peer: &str) -> PeerBilling {
        self.peer_billing.get(peer).cloned().unwrap_or_default()
    }
}

impl Routing {
    /// Build from a validated config (validation guarantees every lookup here succeeds).
    pub fn from_config(cfg: &Config) -> Routing {
        let (dispatchers, peers): (Vec<_>, Vec<_>) = cfg
            .peers
            .iter()
            .partition(|p| p.billing == PeerBillingMode::Dispatcher);
        let acl = Acl::new(peers.iter().map(|p| (p.name.clone(), p.address)));
        let dispatchers = Acl::new(dispatchers.iter().map(|p| (p.name.clone(), p.address)));
        let trunks: Vec<Trunk> =
            cfg.trunks
                .iter()
                .map(|t| Trunk {
                    name: t.name.clone(),
                    dest: t.dest(),
                    codecs: t.codecs.clone(),
                    max_calls: t.max_calls,
                    calls_per_second: t.calls_per_second,
                    numbers: NumberRewrite {
                        format: t.number_format,
                        strip: t.strip_prefix.clone(),
                        add: t.add_prefix.clone(),
                        home: cfg.billing.home_country.clone(),
                    },
                    credentials: t.username.clone().zip(t.password.clone()).map(
                        |(username, password)| crate::auth::Credentials { username, password },
                    ),
                    weight: t.weight,
                    register: t
                        .register
                        .then(|| std::time::Duration::from_secs(t.register_expires)),
                    register_user: t.username.clone().unwrap_or_default(),
                    caller: CallerRules {
                        mode: t.caller_id,
                        format: t.caller_format,
                        default: t.default_caller.clone(),
                        home: cfg.billing.home_country.clone(),
                    },
                })
                .collect();
        let mut routes: Vec<Route> = cfg
            .routes
            .iter()
            .map(|r| Route {
                prefix: r.prefix.clone(),
                trunks: r
                    .trunks
                    .iter()
                    .flat_map(|rank| rank.names())
                    .filter_map(|n| trunks.iter().position(|t| &t.name == n))
                    .collect(),
                ranks: r
                    .trunks
                    .iter()
                    .map(|rank| {
                        rank.names()
                            .iter()
                            .filter_map(|n| trunks.iter().position(|t| &t.name == n))
                            .collect()
                    })
                    .collect(),
                record: r.record,
            })
            .collect();
        routes.sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
        // Dispatchers are not peers: they bill nothing themselves.
        let peer_billing = peers
            .iter()
            .map(|p| {
                let mode = match p.billing {
                    PeerBillingMode::Header => PeerBilling::Header(p.charge_header.clone()),
                    PeerBillingMode::Unbilled | PeerBillingMode::Dispatcher => {
                        PeerBilling::Unbilled
                    }
                };
                (p.name.clone(), mode)
            })
            .collect();
        Routing {
            acl,
            trunks,
            plan: DialPlan { routes },
            peer_billing,
            dispatchers,
        }
    }
}

/// Why a dialled number cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NumberError {
    #[error("no number dialled")]
    Empty,
    #[error("number contains characters other than digits, + * #")]
    Invalid,
    #[error("number too long")]
    TooLong,
}

/// Normalise the user part of a Request-URI to a dialable number: visual separators
/// (`-`, `.`, `(`, `)`, spaces as `%20`) are dropped; anything else but digits, a leading
/// `+`, `*` and `#` is refused.
pub fn normalize_number(user: &str) -> Result<String, NumberError> {
    let cleaned: String = user
        .replace("%20", "")
        .chars()
        .filter(|c| !matches!(c, '-' | '.' | '(' | ')' | ' '))
        .collect();
    if cleaned.is_empty() {
        return Err(NumberError::Empty);
    }
    if cleaned.len() > 32 {
        return Err(NumberError::TooLong);
    }
    for (i, c) in cleaned.chars().enumerate() {
        let ok = c.is_ascii_digit() || c == '*' || c == '#' || (c == '+' && i == 0);
        if !ok {
            return Err(NumberError::Invalid);
        }
    }
    Ok(cleaned)
}

/// A member's SIP user as dialled or written on a card: a login (3-64 of a-z, 0-9, '.',
/// '_', '-') that is not a number.
pub fn is_sip_user(user: &str) -> bool {
    (3..=64).contains(&user.len())
        && user.chars().any(|c| c.is_ascii_lowercase())
        && user
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewrite(format: crate::numbers::NumberFormat, strip: &str, add: &str) -> NumberRewrite {
        NumberRewrite {
            format,
            strip: strip.into(),
            add: add.into(),
            home: crate::numbers::Classifier::new("KR").unwrap(),
        }
    }

    fn invite_with(headers: &str) -> crate::sip::Message {
        let text = format!(
            "INVITE sip:025561234@192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.9;branch=z9hG4bK1\r\n\
From: <sip:0311111111@192.0.2.9>;tag=a\r\nTo: <sip:025561234@192.0.2.1>\r\nCall-ID: c1\r\n\
CSeq: 1 INVITE\r\n{headers}Content-Length: 0\r\n\r\n"
        );
        crate::sip::parse_datagram(text.as_bytes()).unwrap()
    }

    #[test]
    fn only_a_dispatcher_names_where_a_request_came_from() {
        let routing = Routing {
            dispatchers: Acl::new([("lb".to_string(), "192.0.2.5/32".parse().unwrap())]),
            ..Default::default()
        };
        let req = invite_with("X-Freecall-Source: 198.51.100.7:5062\r\n");
        let lb: SocketAddr = "192.0.2.5:5060".parse().unwrap();
        let phone: SocketAddr = "192.0.2.77:5060".parse().unwrap();
        assert_eq!(
            routing.caller_address(lb, &req),
            "198.51.100.7:5062".parse().unwrap(),
            "the dispatcher's word is taken"
        );
        assert_eq!(
            routing.caller_address(phone, &req),
            phone,
            "anyone else's header is ignored"
        );
        let garbage = invite_with("X-Freecall-Source: nowhere\r\n");
        assert_eq!(
            routing.caller_address(lb, &garbage),
            lb,
            "unreadable: counted against the hop"
        );
        assert_eq!(
            routing.vouched_address(lb, &garbage),
            None,
            "but the hop's address is trusted with nothing"
        );
        assert_eq!(
            routing.vouched_address(lb, &invite_with("")),
            None,
            "nor when the header is missing"
        );
        let v6 = invite_with("X-Freecall-Source: [2001:db8::7]:5062\r\n");
        assert_eq!(
            routing.vouched_address(lb, &v6),
            Some("[2001:db8::7]:5062".parse().unwrap()),
            "an IPv6 caller, as the recipe writes it"
        );
        let bare = invite_with("X-Freecall-Source: 198.51.100.7\r\n");
        assert_eq!(
            routing.caller_address(lb, &bare).ip(),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn identity_headers_count_only_from_a_trusted_peer() {
        let spoofed =
            invite_with("P-Asserted-Identity: \"Boss\" <sip:+821099998888@pbx.example>\r\n");
        assert_eq!(
            CallerId::of(&spoofed, true).number.as_deref(),
            Some("+821099998888"),
            "a trusted peer asserts who calls"
        );
        assert_eq!(
            CallerId::of(&spoofed, false).number.as_deref(),
            Some("0311111111"),
            "anyone else: From, never their P-Asserted-Identity"
        );
        let tel = invite_with("P-Asserted-Identity: <tel:+82-2-556-1234>\r\nPrivacy: id\r\n");
        assert_eq!(
            CallerId::of(&tel, true),
            CallerId {
                number: Some("+8225561234".into()),
                private: true,
                verified: true
            }
        );
        // Asking for privacy needs no trust: it only hides.
        assert!(CallerId::of(&invite_with("Privacy: user;critical\r\n"), false).private);
        assert!(!CallerId::of(&invite_with("Privacy: none\r\n"), false).private);
    }

    #[test]
    fn the_caller_is_presented_as_each_trunk_wants() {
        use crate::numbers::NumberFormat;
        let rules = |mode, format, default: &str| CallerRules {
            mode,
            format,
            default: default.into(),
            home: crate::numbers::Classifier::new("KR").unwrap(),
        };
        let seoul = CallerId {
            number: Some("0255561234".into()),
            private: false,
            verified: true,
        };
        let pai = rules(CallerIdMode::Pai, NumberFormat::E164, "");
        assert_eq!(
            pai.present(&seoul),
            Presentation {
                from_user: "+82255561234".into(),
                asserted: Some("+82255561234".into()),
                private: false
            }
        );
        let hidden = CallerId {
            private: true,
            ..seoul.clone()
        };
        assert_eq!(
            pai.present(&hidden),
            Presentation {
                from_user: "anonymous".into(),
                asserted: Some("+82255561234".into()),
                private: true
            },
            "the carrier still learns who calls, the called party does not"
        );
        let from_only = rules(CallerIdMode::From, NumberFormat::AsDialled, "0215880000");
        assert_eq!(from_only.present(&hidden).asserted, None);
        assert_eq!(from_only.present(&hidden).from_user, "anonymous");
        let nobody = CallerId::default();
        assert_eq!(
            from_only.present(&nobody).from_user,
            "0215880000",
            "the trunk's default number for a caller without one"
        );
        assert_eq!(pai.present(&nobody).from_user, "anonymous");
        // A softphone's own From is shown, never vouched for: the carrier is asserted
        // the trunk's default number instead (or nothing).
        let claimed = CallerId {
            verified: false,
            ..seoul.clone()
        };
        assert_eq!(pai.present(&claimed).asserted, None);
        let with_default = rules(CallerIdMode::Pai, NumberFormat::E164, "0215880000");
        assert_eq!(
            with_default.present(&claimed).asserted.as_deref(),
            Some("+82215880000")
        );
    }

    #[test]
    fn numbers_are_written_as_each_trunk_wants_them() {
        use crate::numbers::NumberFormat;
        let as_dialled = rewrite(NumberFormat::AsDialled, "", "");
        assert_eq!(as_dialled.apply("025561234"), "025561234");
        assert_eq!(as_dialled.apply("+14155550123"), "+14155550123");
        let e164 = rewrite(NumberFormat::E164, "", "");
        assert_eq!(e164.apply("025561234"), "+8225561234");
        assert_eq!(e164.apply("01012345678"), "+821012345678");
        assert_eq!(e164.apply("+14155550123"), "+14155550123");
        let national = rewrite(NumberFormat::National, "", "");
        assert_eq!(national.apply("+8225561234"), "025561234");
        assert_eq!(
            national.apply("+14155550123"),
            "+14155550123",
            "abroad stays E.164"
        );
        // A carrier reached with its own international access code instead of +.
        let access = rewrite(NumberFormat::E164, "+", "00700");
        assert_eq!(access.apply("+14155550123"), "0070014155550123");
        // A tech prefix before whatever the format gives; a SIP user passes as dialled.
        let tech = rewrite(NumberFormat::AsDialled, "", "1234#");
        assert_eq!(tech.apply("025561234"), "1234#025561234");
        assert_eq!(e164.apply("minji"), "minji");
    }

    #[test]
    fn longest_prefix_wins() {
        let route = |prefix: &str, t: usize| Route {
            prefix: prefix.into(),
            trunks: vec![t],
            ranks: vec![vec![t]],
            record: false,
        };
        let plan = DialPlan {
            routes: vec![route("0082", 2), route("00", 1), route("", 0)],
        };
        let trunks = |n: &str| plan.lookup(n).map(|r| r.trunks.clone());
        assert_eq!(trunks("0082212345"), Some(vec![2]));
        assert_eq!(trunks("0044123"), Some(vec![1]));
        assert_eq!(trunks("0212345678"), Some(vec![0]));
    }

    #[test]
    fn numbers_are_normalised_or_refused() {
        assert_eq!(normalize_number("02-1234-5678").unwrap(), "0212345678");
        assert_eq!(normalize_number("+82(2)1234.5678").unwrap(), "+82212345678");
        assert_eq!(normalize_number("alice"), Err(NumberError::Invalid));
        assert_eq!(normalize_number("12+3"), Err(NumberError::Invalid));
        assert_eq!(normalize_number(""), Err(NumberError::Empty));
    }

    #[test]
    fn acl_matches_networks_and_mapped_v6() {
        let acl = Acl::new([("lan".to_string(), "10.1.0.0/16".parse().unwrap())]);
        assert_eq!(acl.allows("10.1.2.3".parse().unwrap()), Some("lan"));
        assert_eq!(acl.allows("::ffff:10.1.2.3".parse().unwrap()), Some("lan"));
        assert_eq!(acl.allows("10.2.0.1".parse().unwrap()), None);
    }
}
