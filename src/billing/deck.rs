//! A rate deck: prices per number prefix (a country, a mobile range inside it), imported by
//! the operator as CSV. The longest prefix of a number's E.164 digits that the deck has for
//! the paying account's kind decides the call's tariff; numbers the deck does not cover keep
//! the tariff of their kind (`[[tariffs]]`).
//!
//! The CSV has a header and these columns, in any order:
//! `prefix,name,account,per_minute,increment,connection` and optionally `minimum`.
//! - `prefix`: E.164 digits with or without `+` (`81`, `+8190`), 1 to 15 digits;
//! - `name`: what the destination is called in records and balances ("Japan mobile");
//! - `account`: `mileage`, `guild` or `any` (both);
//! - `per_minute`: units per minute (integer minor units, like every amount);
//! - `increment`: billing periods, `60/60`, `30/6`, `1/1`;
//! - `connection`: charged once per answered call; `minimum`: the least an answered
//!   call costs (both default to 0 when empty).

use super::tariff::MAX_PER_MINUTE;
use super::{AccountKind, Tariff};
use crate::numbers::DestinationKind;
use std::collections::HashMap;

/// The most rows a deck may have (a full carrier deck is tens of thousands).
pub const MAX_ROWS: usize = 500_000;

/// One price of the deck.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeckRate {
    pub account: AccountKind,
    /// E.164 digits, without `+`.
    pub prefix: String,
    pub name: String,
    pub per_minute: i64,
    pub first_secs: i64,
    pub increment_secs: i64,
    pub connection: i64,
    pub minimum: i64,
}

impl DeckRate {
    /// The tariff a call to a number of `destination` kind is priced at.
    pub fn tariff(&self, destination: DestinationKind) -> Tariff {
        Tariff {
            destination,
            per_minute: self.per_minute,
            first_secs: self.first_secs,
            increment_secs: self.increment_secs,
            minimum: self.minimum,
            connection: self.connection,
        }
    }
}

/// The deck in force, ready for lookups. `version` is the store's id of the import (0: no
/// deck was ever imported).
#[derive(Clone, Debug, Default)]
pub struct RateDeck {
    pub version: i64,
    by_prefix: HashMap<(AccountKind, String), DeckRate>,
    longest: usize,
}

impl RateDeck {
    pub fn new(version: i64, rates: Vec<DeckRate>) -> RateDeck {
        let longest = rates.iter().map(|r| r.prefix.len()).max().unwrap_or(0);
        let by_prefix = rates
            .into_iter()
            .map(|r| ((r.account, r.prefix.clone()), r))
            .collect();
        RateDeck {
            version,
            by_prefix,
            longest,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.by_prefix.is_empty()
    }

    pub fn len(&self) -> usize {
        self.by_prefix.len()
    }

    /// The rate for `e164` (digits, `+` allowed) on an account of `kind`: the longest
    /// prefix the deck has.
    pub fn lookup(&self, kind: AccountKind, e164: &str) -> Option<&DeckRate> {
        let digits = e164.strip_prefix('+').unwrap_or(e164);
        let mut key = (kind, String::with_capacity(self.longest));
        for len in (1..=digits.len().min(self.longest)).rev() {
            key.1.clear();
            key.1.push_str(&digits[..len]);
            if let Some(rate) = self.by_prefix.get(&key) {
                return Some(rate);
            }
        }
        None
    }

    /// Every rate, by account kind and prefix.
    pub fn rates(&self) -> Vec<&DeckRate> {
        let mut all: Vec<&DeckRate> = self.by_prefix.values().collect();
        all.sort_by(|a, b| (a.account, &a.prefix).cmp(&(b.account, &b.prefix)));
        all
    }
}

/// Read a CSV deck. Every fault is reported, each with its line, or the rows (an `any` row
/// becomes one per account kind).
pub fn parse_csv(text: &str) -> Result<Vec<DeckRate>, Vec<String>> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(false)
        .from_reader(text.as_bytes());
    let headers = match reader.headers() {
        Ok(h) => h.clone(),
        Err(e) => return Err(vec![format!("the header: {e}")]),
    };
    let column = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
    let mut errors = Vec::new();
    let mut at = HashMap::new();
    for name in [
        "prefix",
        "name",
        "account",
        "per_minute",
        "increment",
        "connection",
    ] {
        match column(name) {
            Some(i) => {
                at.insert(name, i);
            }
            None => errors.push(format!("the header has no '{name}' column")),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let minimum_at = column("minimum");
    let mut rates: Vec<DeckRate> = Vec::new();
    let mut seen: HashMap<(AccountKind, String), u64> = HashMap::new();
    for record in reader.records() {
        if errors.len() >= 50 {
            errors.push("… and more".into());
            break;
        }
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                errors.push(format!("{e}"));
                continue;
            }
        };
        let line = record.position().map(|p| p.line()).unwrap_or(0);
        let get = |name: &str| record.get(at[name]).unwrap_or("");
        let mut fault = |what: String| errors.push(format!("line {line}: {what}"));
        let prefix = get("prefix").trim_start_matches('+');
        if prefix.is_empty() || prefix.len() > 15 || !prefix.bytes().all(|b| b.is_ascii_digit()) {
            fault(format!("prefix '{}' is not 1 to 15 digits", get("prefix")));
            continue;
        }
        let name = get("name");
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            fault("name must be 1 to 100 characters, none of them a control character".into());
            continue;
        }
        let kinds: &[AccountKind] = match get("account").to_ascii_lowercase().as_str() {
            "mileage" => &[AccountKind::Mileage],
            "guild" => &[AccountKind::Guild],
            "any" | "" => &[AccountKind::Mileage, AccountKind::Guild],
            other => {
                fault(format!("account '{other}' is not mileage, guild or any"));
                continue;
            }
        };
        let amount = |text: &str, default: Option<i64>| -> Option<i64> {
            match (text, default) {
                ("", Some(d)) => Some(d),
                _ => text
                    .parse::<i64>()
                    .ok()
                    .filter(|v| (0..=MAX_PER_MINUTE).contains(v)),
            }
        };
        let Some(per_minute) = amount(get("per_minute"), None) else {
            fault(format!(
                "per_minute '{}' is not a whole amount in minor units (0 to {MAX_PER_MINUTE})",
                get("per_minute")
            ));
            continue;
        };
        let Some((first_secs, increment_secs)) = Tariff::parse_increment(get("increment")) else {
            fault(format!(
                "increment '{}' is not like 60/60 or 30/6",
                get("increment")
            ));
            continue;
        };
        let Some(connection) = amount(get("connection"), Some(0)) else {
            fault(format!(
                "connection '{}' is not a whole amount in minor units",
                get("connection")
            ));
            continue;
        };
        let minimum_text = minimum_at.and_then(|i| record.get(i)).unwrap_or("");
        let Some(minimum) = amount(minimum_text, Some(0)) else {
            fault(format!(
                "minimum '{minimum_text}' is not a whole amount in minor units"
            ));
            continue;
        };
        for &account in kinds {
            if let Some(first) = seen.insert((account, prefix.to_string()), line) {
                fault(format!(
                    "prefix {prefix} for {} is already on line {first}",
                    account.as_str()
                ));
                continue;
            }
            rates.push(DeckRate {
                account,
                prefix: prefix.to_string(),
                name: name.to_string(),
                per_minute,
                first_secs,
                increment_secs,
                connection,
                minimum,
            });
        }
        if rates.len() > MAX_ROWS {
            errors.push(format!("more than {MAX_ROWS} rates"));
            break;
        }
    }
    if rates.is_empty() && errors.is_empty() {
        errors.push("the deck has no rates (to remove the deck, delete it)".into());
    }
    if errors.is_empty() {
        Ok(rates)
    } else {
        Err(errors)
    }
}

/// The deck as CSV in the columns `parse_csv` reads (with `minimum`), names quoted as CSV
/// needs: what `freecall deck show` prints, importable again as it is.
pub fn to_csv(deck: &RateDeck) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record([
        "prefix",
        "name",
        "account",
        "per_minute",
        "increment",
        "connection",
        "minimum",
    ]);
    for r in deck.rates() {
        let _ = w.write_record([
            r.prefix.clone(),
            r.name.clone(),
            r.account.as_str().to_string(),
            r.per_minute.to_string(),
            format!("{}/{}", r.first_secs, r.increment_secs),
            r.connection.to_string(),
            r.minimum.to_string(),
        ]);
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DECK: &str = "prefix,name,account,per_minute,increment,connection\n\
81,Japan,any,300,60/60,0\n\
8190,Japan mobile,guild,900,30/6,50\n\
+8180,Japan mobile,guild,900,30/6,50\n\
1,United States and Canada,mileage,120,1/1,\n";

    #[test]
    fn the_longest_prefix_of_the_accounts_kind_decides() {
        let deck = RateDeck::new(1, parse_csv(DECK).unwrap());
        assert_eq!(deck.len(), 5);
        let guild = |n| deck.lookup(AccountKind::Guild, n).map(|r| r.name.as_str());
        assert_eq!(guild("+819012345678"), Some("Japan mobile"));
        assert_eq!(guild("81312345678"), Some("Japan"));
        assert_eq!(
            guild("+12125550100"),
            None,
            "the US row is for mileage only"
        );
        let mileage = deck.lookup(AccountKind::Mileage, "+819012345678").unwrap();
        assert_eq!((mileage.name.as_str(), mileage.per_minute), ("Japan", 300));
        let us = deck.lookup(AccountKind::Mileage, "+12125550100").unwrap();
        assert_eq!((us.first_secs, us.increment_secs, us.connection), (1, 1, 0));
        assert_eq!(deck.lookup(AccountKind::Guild, "+44"), None);
    }

    #[test]
    fn every_bad_row_is_reported_with_its_line() {
        let e = parse_csv(
            "prefix,name,account,per_minute,increment,connection\n\
8a,X,any,1,60/60,0\n\
82,Korea,gold,1,60/60,0\n\
82,Korea,any,-5,60/60,0\n\
82,Korea,any,1.5,60/60,0\n\
82,Korea,any,1,6,0\n\
82,Korea,any,1,60/60,0\n\
82,Korea again,guild,1,60/60,0\n",
        )
        .unwrap_err();
        let text = e.join("\n");
        for want in [
            "line 2: prefix '8a' is not 1 to 15 digits",
            "line 3: account 'gold'",
            "line 4: per_minute '-5'",
            "line 5: per_minute '1.5'",
            "line 6: increment '6'",
            "line 8: prefix 82 for guild is already on line 7",
        ] {
            assert!(text.contains(want), "{want} not in:\n{text}");
        }
        let e = parse_csv("prefix,name,per_minute\n1,x,2\n").unwrap_err();
        assert!(e.iter().any(|l| l.contains("no 'account' column")), "{e:?}");
        assert!(parse_csv("prefix,name,account,per_minute,increment,connection\n").is_err());
    }

    #[test]
    fn a_deck_shown_as_csv_imports_again_as_it_was() {
        let rows = "prefix,name,account,per_minute,increment,connection,minimum\n\
44,\"United Kingdom, \"\"mobile\"\"\",guild,900,30/6,50,120\n81,Japan,any,300,60/60,0,0\n";
        let deck = RateDeck::new(3, parse_csv(rows).unwrap());
        let again = RateDeck::new(3, parse_csv(&to_csv(&deck)).unwrap());
        assert_eq!(again.rates(), deck.rates());
        assert!(to_csv(&deck).contains("\"United Kingdom, \"\"mobile\"\"\""));
        let e = parse_csv("prefix,name,account,per_minute,increment,connection\n44,\"UK\nmobile\",any,1,60/60,0\n")
            .unwrap_err();
        assert!(e[0].contains("control character"), "{e:?}");
    }
}
