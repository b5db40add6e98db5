//! The configuration as read: typed values, faults named with their keys.

use super::*;
use crate::media::codec::Codec;
use crate::sip::Transport;

const BASE: &str = "[sip]\nlisten = \"127.0.0.1:5060\"\n\
[media]\naddress = \"127.0.0.1\"\nport_min = 20000\nport_max = 29999\n";

fn err(extra: &str) -> String {
    match Config::from_toml(&format!("{BASE}{extra}")) {
        Ok(_) => panic!("accepted: {extra}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn every_value_is_read_once_into_its_type() {
    let cfg = Config::from_toml(&format!(
        "{BASE}[billing]\nhome_country = \"jp\"\nblocked_destinations = [\"premium_rate\", \"international\"]\n\
[[peers]]\nname = \"sbc\"\naddress = \"10.1.0.0/16\"\nbilling = \"header\"\n\
[[trunks]]\nname = \"pstn\"\naddress = \"127.0.0.1:5080\"\ntransport = \"TCP\"\ncodecs = [\"pcma\", \"opus\"]\n\
[[routes]]\nprefix = \"\"\ntrunks = [\"pstn\"]\n\
[[tariffs]]\naccount = \"guild\"\ndestination = \"mobile\"\nper_minute = 120\nincrement = \"30/6\"\n"
    ))
    .unwrap();
    assert_eq!(cfg.trunks[0].transport, Some(Transport::Tcp));
    assert_eq!(cfg.trunks[0].codecs, [Codec::Pcma, Codec::Opus]);
    assert_eq!(cfg.peers[0].billing, PeerBillingMode::Header);
    assert_eq!(cfg.peers[0].address.to_string(), "10.1.0.0/16");
    assert_eq!(
        cfg.billing.blocked_destinations,
        [DestinationKind::PremiumRate, DestinationKind::International]
    );
    let (_, kind, country) = cfg.billing.home_country.dialable("0312345678").unwrap();
    assert_eq!((kind, country.as_str()), (DestinationKind::Landline, "JP"));
    let t = cfg.tariffs();
    let mobile = t
        .get(crate::billing::AccountKind::Guild, DestinationKind::Mobile)
        .expect("the tariff, not dropped");
    assert_eq!((mobile.first_secs, mobile.increment_secs), (30, 6));
}

#[test]
fn a_value_of_the_wrong_kind_is_refused_naming_its_key() {
    let trunk = "[[trunks]]\nname = \"pstn\"\naddress = \"127.0.0.1:5080\"\n";
    let e = err(&format!("{trunk}transport = \"sctp\"\n"));
    assert!(
        e.contains("'sctp' is not udp, tcp or tls") && e.contains("trunks[0]"),
        "{e}"
    );
    let e = err(&format!("{trunk}codecs = [\"G729\"]\n"));
    assert!(e.contains("'G729' is not PCMU, PCMA or opus"), "{e}");
    let e = err("[billing]\nhome_country = \"XX\"\n");
    assert!(e.contains("billing.home_country"), "{e}");
    let e = err("[billing]\nblocked_destinations = [\"premium\"]\n");
    assert!(e.contains("billing.blocked_destinations"), "{e}");
    let e = err("[[peers]]\nname = \"x\"\naddress = \"10.0.0.0/99\"\n");
    assert!(e.contains("not an address or CIDR network"), "{e}");
    let tariff = "[[tariffs]]\ndestination = \"mobile\"\nper_minute = 10\n";
    let e = err(&format!("{tariff}account = \"gold\"\n"));
    assert!(e.contains("tariffs[0]") && e.contains("gold"), "{e}");
    let e = err(&format!("{tariff}account = \"guild\"\nincrement = \"6\"\n"));
    assert!(e.contains("'6' is not like 60/60 or 30/6"), "{e}");
    let e = err("[api]\nlisten = \"localhost\"\n");
    assert!(
        e.contains("api.listen") && e.contains("'localhost' is not an address:port"),
        "{e}"
    );
    let e = err("[web]\nlisten = \"on\"\n");
    assert!(
        e.contains("web.listen") && e.contains("'on' is not \"api\""),
        "{e}"
    );
}

#[test]
fn listeners_are_read_once_into_addresses() {
    let cfg = Config::from_toml(&format!(
        "{BASE}[api]\nlisten = \"127.0.0.1:8080\"\n[web]\nlisten = \"127.0.0.1:8081\"\n"
    ))
    .unwrap();
    assert_eq!(
        cfg.api.listen,
        ApiListen::At("127.0.0.1:8080".parse().unwrap())
    );
    assert_eq!(
        cfg.web.listen,
        WebListen::At("127.0.0.1:8081".parse().unwrap())
    );
    let cfg = Config::from_toml(BASE).unwrap();
    assert_eq!(
        (cfg.api.listen, cfg.web.listen),
        (ApiListen::Off, WebListen::Api)
    );
}

#[test]
fn ranges_and_references_are_reported_all_at_once() {
    let e = err(
        "[[tariffs]]\naccount = \"guild\"\ndestination = \"mobile\"\nper_minute = -1\n\
[[tariffs]]\naccount = \"guild\"\ndestination = \"mobile\"\nper_minute = 10\n\
[[routes]]\nprefix = \"\"\ntrunks = [\"nowhere\"]\n",
    );
    assert!(e.contains("tariffs[0].per_minute"), "{e}");
    assert!(
        e.contains("tariffs[1]: a second tariff for guild calls to mobile"),
        "{e}"
    );
    assert!(
        e.contains("routes[0].trunks: unknown trunk 'nowhere'"),
        "{e}"
    );
    let e = err(
        "[[trunks]]\nname = \"kt\"\naddress = \"127.0.0.1:5080\"\nweight = 0\n\
[[trunks]]\nname = \"lgu\"\naddress = \"127.0.0.1:5081\"\ndefault_caller = \"office\"\n\
[[routes]]\nprefix = \"\"\ntrunks = [[\"kt\", \"lgu\"], \"kt\", [\"ghost\"]]\n",
    );
    for want in [
        "trunks[0].weight: must be 1..=1000",
        "trunks[1].default_caller: 'office' is not a phone number",
        "routes[0].trunks: 'kt' is listed twice",
        "routes[0].trunks: unknown trunk 'ghost'",
    ] {
        assert!(e.contains(want), "{want} not in {e}");
    }
}

#[test]
fn a_trunk_is_an_address_or_a_host_name() {
    use crate::config::TrunkAddress;
    use crate::routing::TrunkDest;
    let parse = |s: &str| s.parse::<TrunkAddress>();
    assert_eq!(
        parse("192.0.2.7:5080"),
        Ok(TrunkAddress::At("192.0.2.7:5080".parse().unwrap()))
    );
    assert_eq!(
        parse("192.0.2.7"),
        Ok(TrunkAddress::At("192.0.2.7:5060".parse().unwrap()))
    );
    assert_eq!(
        parse("[2001:db8::1]:5070"),
        Ok(TrunkAddress::At("[2001:db8::1]:5070".parse().unwrap()))
    );
    assert_eq!(
        parse("SIP.Carrier.example."),
        Ok(TrunkAddress::Host {
            name: "sip.carrier.example".into(),
            port: None
        })
    );
    assert_eq!(
        parse("carrier.example:5070"),
        Ok(TrunkAddress::Host {
            name: "carrier.example".into(),
            port: Some(5070)
        })
    );
    for bad in [
        "",
        "carrier.example:0",
        "carrier.example:x",
        "-bad.example",
        "a b",
        "sip:x@y",
    ] {
        assert!(parse(bad).is_err(), "{bad:?} accepted");
    }
    let cfg = Config::from_toml(&format!(
        "{BASE}[[trunks]]\nname = \"kt\"\naddress = \"sip.kt.example\"\ntransport = \"tcp\"\n"
    ))
    .unwrap();
    match cfg.trunks[0].dest() {
        TrunkDest::Named(n) => {
            assert_eq!(n.uri_host(), "sip.kt.example");
            assert_eq!(n.transport, Some(crate::sip::Transport::Tcp));
        }
        other => panic!("{other:?}"),
    }
    let e = err("[[trunks]]\nname = \"kt\"\naddress = \"sip:kt\"\n");
    assert!(e.contains("is not an ip:port or a host name"), "{e}");
}

#[test]
fn a_rate_deck_prices_calls_abroad_and_never_opens_a_home_kind_without_a_tariff() {
    use crate::billing::{AccountKind, deck};
    let cfg = Config::from_toml(&format!(
        "{BASE}[[tariffs]]\naccount = \"mileage\"\ndestination = \"mobile\"\nper_minute = 20\n"
    ))
    .unwrap();
    let rows = "prefix,name,account,per_minute,increment,connection\n\
82,Korea,any,7,60/60,0\n81,Japan,any,300,60/60,0\n";
    let tariffs = cfg
        .tariffs()
        .with_deck(std::sync::Arc::new(deck::RateDeck::new(
            1,
            deck::parse_csv(rows).unwrap(),
        )));
    let per_minute = |kind, number| {
        tariffs
            .tariff_for(AccountKind::Mileage, kind, number)
            .map(|t| t.per_minute)
    };
    assert_eq!(
        per_minute(DestinationKind::International, "+81312345678"),
        Some(300)
    );
    assert_eq!(
        per_minute(DestinationKind::Mobile, "01012345678"),
        Some(7),
        "a home kind that is sold is re-priced by the deck"
    );
    assert_eq!(
        per_minute(DestinationKind::PremiumRate, "0601234567"),
        None,
        "premium rate has no tariff: the deck's row for 82 does not open it"
    );
}

#[test]
fn a_dispatcher_shares_no_address_with_a_trusted_peer() {
    let lb = "[[peers]]\nname = \"lb\"\naddress = \"10.0.0.5\"\nbilling = \"dispatcher\"\n";
    let e = err(&format!(
        "{lb}[[peers]]\nname = \"lan\"\naddress = \"10.0.0.0/24\"\n"
    ));
    assert!(
        e.contains("peers[0].address") && e.contains("overlaps the peer 'lan'"),
        "{e}"
    );
    let e = err(&format!(
        "{lb}[[peers]]\nname = \"lb\"\naddress = \"10.9.0.1\"\n"
    ));
    assert!(e.contains("peers[1].name: 'lb' is used twice"), "{e}");
    let e = err("[[peers]]\nname = \"m\"\naddress = \"::ffff:10.0.0.0/120\"\n");
    assert!(e.contains("write it as IPv4"), "{e}");
    let ok = Config::from_toml(&format!(
        "{BASE}{lb}[[peers]]\nname = \"pbx\"\naddress = \"10.1.0.0/24\"\n"
    ));
    assert!(ok.is_ok(), "{ok:?}");
}
