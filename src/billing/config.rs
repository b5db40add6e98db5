//! The `[[tariffs]]` section, as billing reads it: each value parsed once, where the
//! configuration is read (an unknown account kind, destination kind or increment names its
//! key there); the ranges checked with the rest of the configuration, all at once.

use super::{AccountKind, Tariff, Tariffs, tariff::MAX_PER_MINUTE};
use crate::numbers::DestinationKind;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TariffConfig {
    /// `mileage` or `guild`.
    pub account: AccountKind,
    /// landline, mobile, toll_free, premium_rate, internet, international, other.
    pub destination: DestinationKind,
    /// Units per minute (mileage points, or guild minor units).
    pub per_minute: i64,
    /// Billing increment "first/next" in seconds: "60/60", "30/6", "1/1".
    #[serde(default)]
    pub increment: Increment,
    /// The least an answered call costs.
    #[serde(default)]
    pub minimum: i64,
    /// Charged once per answered call.
    #[serde(default)]
    pub connection: i64,
}

/// A billing increment: the first period and every later one, in seconds (`30/6`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Increment {
    pub first: i64,
    pub next: i64,
}

impl Default for Increment {
    fn default() -> Self {
        Increment {
            first: 60,
            next: 60,
        }
    }
}

impl<'de> Deserialize<'de> for Increment {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Tariff::parse_increment(&s)
            .map(|(first, next)| Increment { first, next })
            .ok_or_else(|| serde::de::Error::custom(format!("'{s}' is not like 60/60 or 30/6")))
    }
}

impl TariffConfig {
    pub fn tariff(&self) -> Tariff {
        Tariff {
            destination: self.destination,
            per_minute: self.per_minute,
            first_secs: self.increment.first,
            increment_secs: self.increment.next,
            minimum: self.minimum,
            connection: self.connection,
        }
    }

    /// Every problem of the section, each naming its key.
    pub fn validate(all: &[TariffConfig], errors: &mut Vec<String>) {
        let mut seen = std::collections::HashSet::new();
        for (i, t) in all.iter().enumerate() {
            if !(0..=MAX_PER_MINUTE).contains(&t.per_minute) {
                errors.push(format!(
                    "tariffs[{i}].per_minute: {} is outside 0..={MAX_PER_MINUTE}",
                    t.per_minute
                ));
            }
            if !(0..=MAX_PER_MINUTE).contains(&t.minimum)
                || !(0..=MAX_PER_MINUTE).contains(&t.connection)
            {
                errors.push(format!(
                    "tariffs[{i}].minimum/connection: must be 0..={MAX_PER_MINUTE}"
                ));
            }
            if !seen.insert((t.account, t.destination)) {
                errors.push(format!(
                    "tariffs[{i}]: a second tariff for {} calls to {}",
                    t.account.as_str(),
                    t.destination.as_str()
                ));
            }
        }
    }
}

impl Tariffs {
    /// The table of a validated `[[tariffs]]` section.
    pub fn from_config(max_call_secs: i64, all: &[TariffConfig]) -> Tariffs {
        let mut t = Tariffs::new(max_call_secs);
        for c in all {
            t.insert(c.account, c.tariff());
        }
        t
    }
}
