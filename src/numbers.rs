//! What kind of destination a dialled number is, relative to the switch's home country.
//!
//! Pure: the `phonenumber` crate's metadata (libphonenumber's) decides; tariffs are keyed by
//! the kind, and premium-rate destinations are refused unless a tariff allows them (toll
//! fraud is how a free-call service loses money).

use phonenumber::{PhoneNumber, Type, country};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The kinds tariffs are set for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DestinationKind {
    /// A fixed line in the home country.
    Landline,
    /// A mobile phone in the home country.
    Mobile,
    /// Freephone (080 in Korea).
    TollFree,
    /// Premium-rate services (060 in Korea): refused unless a tariff names them.
    PremiumRate,
    /// Internet telephony numbers (070 in Korea).
    Internet,
    /// Any number in another country.
    International,
    /// Shared-cost, personal, UAN, pager and numbers the metadata does not know.
    Other,
}

impl DestinationKind {
    pub const ALL: [DestinationKind; 7] = [
        DestinationKind::Landline,
        DestinationKind::Mobile,
        DestinationKind::TollFree,
        DestinationKind::PremiumRate,
        DestinationKind::Internet,
        DestinationKind::International,
        DestinationKind::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DestinationKind::Landline => "landline",
            DestinationKind::Mobile => "mobile",
            DestinationKind::TollFree => "toll_free",
            DestinationKind::PremiumRate => "premium_rate",
            DestinationKind::Internet => "internet",
            DestinationKind::International => "international",
            DestinationKind::Other => "other",
        }
    }
}

impl fmt::Display for DestinationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DestinationKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        DestinationKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "'{s}' is not a destination kind (landline, mobile, toll_free, premium_rate, internet, international, other)"
                )
            })
    }
}

/// How a trunk wants the called number written (`[[trunks]] number_format`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NumberFormat {
    /// As the switch dials it: national for the home country, E.164 for others.
    #[default]
    AsDialled,
    /// E.164 with `+` and the country code, for every number.
    E164,
    /// National for the home country, E.164 for others.
    National,
}

/// Classifies numbers relative to a home country.
#[derive(Clone, Debug)]
pub struct Classifier {
    home: country::Id,
    home_code: u16,
}

/// As the configuration writes the home country: an ISO 3166 code the number metadata
/// knows ("KR"), checked once where it is read.
impl<'de> Deserialize<'de> for Classifier {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Classifier::new(&s).map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClassifyError {
    #[error("'{0}' is not a country code known to the number metadata")]
    UnknownCountry(String),
}

impl Classifier {
    /// `home` is an ISO 3166 alpha-2 code, e.g. "KR".
    pub fn new(home: &str) -> Result<Classifier, ClassifyError> {
        let id = country::Id::from_str(&home.to_ascii_uppercase())
            .map_err(|_| ClassifyError::UnknownCountry(home.to_string()))?;
        let home_code = phonenumber::metadata::DATABASE
            .by_id(id.as_ref())
            .map(|m| m.country_code())
            .ok_or_else(|| ClassifyError::UnknownCountry(home.to_string()))?;
        Ok(Classifier {
            home: id,
            home_code,
        })
    }

    /// The kind of a dialled number (digits, optionally with a leading `+`; `00`/`001`…
    /// international prefixes of the home country are understood).
    pub fn classify(&self, number: &str) -> DestinationKind {
        let Ok(parsed) = phonenumber::parse(Some(self.home), number) else {
            return DestinationKind::Other;
        };
        self.kind_of(&parsed)
    }

    /// A number as the switch dials it (national format for the home country, `+` and
    /// the country code otherwise), its kind and its country (ISO 3166, upper case):
    /// `+82 2 556 1234` → `025561234`, landline, KR. `None` when it is not a number.
    pub fn dialable(&self, number: &str) -> Option<(String, DestinationKind, String)> {
        let parsed = phonenumber::parse(Some(self.home), number).ok()?;
        let kind = self.kind_of(&parsed);
        let region = parsed
            .country()
            .id()
            .map(|id| id.as_ref().to_ascii_uppercase())
            .unwrap_or_default();
        let mode = if parsed.code().value() == self.home_code {
            phonenumber::Mode::National
        } else {
            phonenumber::Mode::E164
        };
        let text = parsed.format().mode(mode).to_string();
        let digits: String = text
            .chars()
            .filter(|c| c.is_ascii_digit() || *c == '+')
            .collect();
        Some((digits, kind, region))
    }

    /// `number` in E.164 (`+8225561234`); `None` when it is not a number.
    pub fn e164(&self, number: &str) -> Option<String> {
        self.format_for_trunk(number, NumberFormat::E164)
    }

    /// `number` as a trunk wants it written: E.164 (`+82255612 34`, without spaces) or
    /// national (the home country's with its trunk prefix `0…`, other countries' in
    /// E.164). `None` when it is not a number (a SIP user, a short code): it is sent as
    /// dialled.
    pub fn format_for_trunk(&self, number: &str, format: NumberFormat) -> Option<String> {
        if format == NumberFormat::AsDialled {
            return None;
        }
        let parsed = phonenumber::parse(Some(self.home), number).ok()?;
        let mode = match format {
            NumberFormat::National if parsed.code().value() == self.home_code => {
                phonenumber::Mode::National
            }
            _ => phonenumber::Mode::E164,
        };
        let text = parsed.format().mode(mode).to_string();
        Some(
            text.chars()
                .filter(|c| c.is_ascii_digit() || *c == '+')
                .collect(),
        )
    }

    fn kind_of(&self, n: &PhoneNumber) -> DestinationKind {
        let kind = n.number_type(&phonenumber::metadata::DATABASE);
        if n.code().value() != self.home_code {
            // Abroad, a freephone number is still free to reach only from its own country;
            // premium rate stays premium rate wherever it is.
            return match kind {
                Type::PremiumRate => DestinationKind::PremiumRate,
                _ => DestinationKind::International,
            };
        }
        match kind {
            Type::FixedLine => DestinationKind::Landline,
            Type::Mobile | Type::FixedLineOrMobile => DestinationKind::Mobile,
            Type::TollFree => DestinationKind::TollFree,
            Type::PremiumRate => DestinationKind::PremiumRate,
            Type::Voip => DestinationKind::Internet,
            _ => DestinationKind::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn korean_numbers_by_kind() {
        let c = Classifier::new("KR").unwrap();
        assert_eq!(c.classify("0212345678"), DestinationKind::Landline);
        assert_eq!(c.classify("025561234"), DestinationKind::Landline);
        assert_eq!(c.classify("01012345678"), DestinationKind::Mobile);
        assert_eq!(c.classify("0801234567"), DestinationKind::TollFree);
        assert_eq!(c.classify("0602345678"), DestinationKind::PremiumRate);
        assert_eq!(c.classify("07012345678"), DestinationKind::Internet);
        assert_eq!(c.classify("+14155550123"), DestinationKind::International);
        assert_eq!(c.classify("0014155550123"), DestinationKind::International);
        assert_eq!(c.classify("+821012345678"), DestinationKind::Mobile);
        assert_eq!(c.classify("12"), DestinationKind::Other);
    }

    #[test]
    fn numbers_are_dialled_in_national_or_international_format() {
        let c = Classifier::new("KR").unwrap();
        let d = |n: &str| c.dialable(n).map(|(n, k, r)| (n, k.as_str(), r));
        assert_eq!(
            d("+82 2 556 1234"),
            Some(("025561234".into(), "landline", "KR".into()))
        );
        assert_eq!(
            d("010-1234-5678"),
            Some(("01012345678".into(), "mobile", "KR".into()))
        );
        assert_eq!(
            d("+1 415 555 0123"),
            Some(("+14155550123".into(), "international", "US".into()))
        );
        assert_eq!(d("not a number"), None);
    }

    #[test]
    fn unknown_home_country_is_an_error() {
        assert!(Classifier::new("XX").is_err());
    }
}
