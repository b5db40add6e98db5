//! Electronic business cards as their issuers write them (C2–C4): the rules a card must
//! meet, whoever sends it (REST, the card editor, an imported vCard), its vCard form, and
//! its photo.
//!
//! Files: `mod.rs` (a `Draft` and its validation into the store's `NewCard`), `vcard.rs`
//! (vCard 4.0 out; 4.0, 3.0 and 2.1 in), `photo.rs` (uploaded photos: type, size, file).

pub mod photo;
pub mod vcard;

use crate::numbers::{Classifier, DestinationKind};
use crate::store::cards::{Card, CardNumber, CardText, NewCard};

/// Designs a card can be shown in (the public page's colours).
pub const DESIGNS: &[&str] = &["classic", "ocean", "forest", "night"];
/// Languages a card can be written in.
pub const LANGUAGES: &[&str] = &["ko", "en"];
pub const MAX_QUOTA: i64 = 1_000_000;
pub const MAX_PHONES: usize = 20;

/// A card as someone wants it to be, before the rules are checked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Draft {
    pub main: CardText,
    /// Further language versions (at most one per language, none in the main language).
    pub versions: Vec<CardText>,
    pub image_url: String,
    pub video_url: String,
    pub design: String,
    pub phones: Vec<CardNumber>,
    pub quota: i64,
    pub callback_countries: Vec<String>,
}

/// What is wrong with a draft, field by field, in words an issuer can act on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.join("; "))]
pub struct Invalid(pub Vec<String>);

fn check_text(errors: &mut Vec<String>, field: &str, value: &str, max: usize, required: bool) {
    if required && value.trim().is_empty() {
        errors.push(format!("{field} is required"));
    } else if value.chars().count() > max {
        errors.push(format!("{field} is longer than {max} characters"));
    } else if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\r')
    {
        errors.push(format!("{field} contains control characters"));
    }
}

fn check_url(errors: &mut Vec<String>, field: &str, value: &str) {
    check_text(errors, field, value, 2000, false);
    if !(value.is_empty() || value.starts_with("https://") || value.starts_with("http://")) {
        errors.push(format!("{field} must be an http:// or https:// address"));
    }
}

impl Draft {
    /// The draft from a card as stored (to edit it, or export it).
    pub fn of(card: &Card, versions: Vec<CardText>) -> Draft {
        Draft {
            main: card.main_text(),
            versions,
            image_url: card.image_url.clone(),
            video_url: card.video_url.clone(),
            design: card.design.clone(),
            phones: serde_json::from_str(&card.phones).unwrap_or_default(),
            quota: card.quota_total,
            callback_countries: card.callback_countries(),
        }
    }

    /// Check every rule, reporting all that fail; the card for the store and its further
    /// language versions. Numbers are read with `numbers` (phonenumber's metadata): each
    /// must be one, of the kind it is listed as, and never premium rate (the switch dials
    /// the issuer's numbers at the issuer's expense).
    pub fn validate(
        mut self,
        issuer_id: i64,
        numbers: &Classifier,
    ) -> Result<(NewCard, Vec<CardText>), Invalid> {
        let mut errors = Vec::new();
        if issuer_id <= 0 {
            errors.push("issuer_id must be positive".into());
        }
        if !(0..=MAX_QUOTA).contains(&self.quota) {
            errors.push(format!("quota must be 0-{MAX_QUOTA}"));
        }
        self.main.language = self.main.language.trim().to_ascii_lowercase();
        if !LANGUAGES.contains(&self.main.language.as_str()) {
            errors.push(format!("language must be one of {}", LANGUAGES.join(", ")));
        }
        check_text(&mut errors, "name", &self.main.name, 200, true);
        check_text(&mut errors, "title", &self.main.title, 200, false);
        check_text(&mut errors, "company", &self.main.company, 200, false);
        check_text(&mut errors, "text", &self.main.text, 4000, false);
        let mut seen = vec![self.main.language.clone()];
        for (i, v) in self.versions.iter_mut().enumerate() {
            v.language = v.language.trim().to_ascii_lowercase();
            if !LANGUAGES.contains(&v.language.as_str()) {
                errors.push(format!(
                    "versions[{i}].language must be one of {}",
                    LANGUAGES.join(", ")
                ));
            } else if seen.contains(&v.language) {
                errors.push(format!(
                    "versions[{i}]: the card has a '{}' version already",
                    v.language
                ));
            }
            seen.push(v.language.clone());
            check_text(
                &mut errors,
                &format!("versions[{i}].name"),
                &v.name,
                200,
                true,
            );
            check_text(
                &mut errors,
                &format!("versions[{i}].title"),
                &v.title,
                200,
                false,
            );
            check_text(
                &mut errors,
                &format!("versions[{i}].company"),
                &v.company,
                200,
                false,
            );
            check_text(
                &mut errors,
                &format!("versions[{i}].text"),
                &v.text,
                4000,
                false,
            );
        }
        check_url(&mut errors, "image_url", &self.image_url);
        check_url(&mut errors, "video_url", &self.video_url);
        if self.design.is_empty() {
            self.design = DESIGNS[0].into();
        }
        if !DESIGNS.contains(&self.design.as_str()) {
            errors.push(format!("design must be one of {}", DESIGNS.join(", ")));
        }
        if self.phones.len() > MAX_PHONES {
            errors.push(format!("at most {MAX_PHONES} phone numbers"));
        }
        for (i, p) in self.phones.iter_mut().enumerate() {
            p.number = p.number.trim().to_string();
            if !matches!(p.kind.as_str(), "landline" | "mobile" | "internet") {
                errors.push(format!(
                    "phones[{i}].kind must be landline, mobile or internet"
                ));
            }
            // An internet phone may be a member's SIP user: it rings wherever that phone
            // is registered.
            if p.kind == "internet" && crate::routing::is_sip_user(&p.number) {
                continue;
            }
            let kind = crate::routing::normalize_number(&p.number)
                .ok()
                .and_then(|n| numbers.dialable(&n))
                .map(|(_, kind, _)| kind);
            match kind {
                None => errors.push(format!(
                    "phones[{i}].number '{}' is not a phone number (or, for an internet phone, a SIP user)",
                    p.number
                )),
                Some(DestinationKind::PremiumRate) => errors.push(format!(
                    "phones[{i}].number '{}' is a premium-rate number: it cannot be on a card",
                    p.number
                )),
                Some(kind) if !listed_as(&p.kind, kind) => errors.push(format!(
                    "phones[{i}].number '{}' is a {} number, not a {} one",
                    p.number,
                    kind.as_str().replace('_', "-"),
                    p.kind
                )),
                Some(_) => {}
            }
        }
        for c in self.callback_countries.iter_mut() {
            *c = c.trim().to_ascii_uppercase();
        }
        self.callback_countries.retain(|c| !c.is_empty());
        if self.callback_countries.len() > 50
            || self
                .callback_countries
                .iter()
                .any(|c| c.len() != 2 || !c.chars().all(|ch| ch.is_ascii_alphabetic()))
        {
            errors.push("callback_countries must be at most 50 two-letter country codes".into());
        }
        if !errors.is_empty() {
            return Err(Invalid(errors));
        }
        let new = NewCard {
            issuer_id,
            language: self.main.language,
            name: self.main.name.trim().to_string(),
            title: self.main.title.trim().to_string(),
            company: self.main.company.trim().to_string(),
            text: self.main.text,
            image_url: self.image_url,
            video_url: self.video_url,
            design: self.design,
            phones: serde_json::to_string(&self.phones).unwrap_or_else(|_| "[]".into()),
            quota: self.quota,
            callback_countries: self.callback_countries.join(","),
        };
        Ok((new, self.versions))
    }
}

/// Whether a number of `kind` may be listed as `listed` (a card's own word for it).
/// Numbers abroad cannot be told apart by their digits alone, so they fit any kind.
fn listed_as(listed: &str, kind: DestinationKind) -> bool {
    use DestinationKind::*;
    match listed {
        "mobile" => matches!(kind, Mobile | International),
        "landline" => matches!(kind, Landline | TollFree | International | Other),
        "internet" => matches!(kind, Internet | Landline | Mobile | International | Other),
        _ => false,
    }
}

/// The kind a number is listed as when nothing says (an imported vCard): its own.
pub fn kind_of_number(numbers: &Classifier, number: &str) -> &'static str {
    match crate::routing::normalize_number(number)
        .ok()
        .and_then(|n| numbers.dialable(&n))
        .map(|(_, kind, _)| kind)
    {
        Some(DestinationKind::Mobile) => "mobile",
        Some(DestinationKind::Internet) => "internet",
        _ => "landline",
    }
}

/// The language version of `card` to show a reader of `lang`: the one written in it when
/// there is one, else the card's main text.
pub fn text_for(card: &Card, versions: &[CardText], lang: &str) -> CardText {
    if card.language == lang {
        return card.main_text();
    }
    versions
        .iter()
        .find(|v| v.language == lang)
        .cloned()
        .unwrap_or_else(|| card.main_text())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(phones: &[(&str, &str)]) -> Draft {
        Draft {
            main: CardText {
                language: "ko".into(),
                name: "김민지".into(),
                ..Default::default()
            },
            phones: phones
                .iter()
                .map(|(k, n)| CardNumber {
                    kind: k.to_string(),
                    number: n.to_string(),
                    callback: false,
                })
                .collect(),
            quota: 1,
            ..Default::default()
        }
    }

    #[test]
    fn numbers_must_be_numbers_of_the_kind_they_are_listed_as_and_never_premium_rate() {
        let kr = Classifier::new("KR").unwrap();
        let ok = draft(&[
            ("mobile", "010-2222-3333"),
            ("landline", "02-700-1000"),
            ("internet", "070-1234-5678"),
            ("internet", "minji"),
            ("mobile", "+1 415 555 0123"),
        ]);
        assert!(ok.validate(1, &kr).is_ok());
        let Invalid(errors) = draft(&[
            ("mobile", "02-700-1000"),
            ("landline", "060-700-1234"),
            ("mobile", "hello"),
        ])
        .validate(1, &kr)
        .unwrap_err();
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(
            errors[0].contains("is a landline number, not a mobile one"),
            "{errors:?}"
        );
        assert!(errors[1].contains("premium-rate"), "{errors:?}");
        assert!(errors[2].contains("is not a phone number"), "{errors:?}");
    }

    #[test]
    fn every_fault_is_named_at_once() {
        let kr = Classifier::new("KR").unwrap();
        let mut d = draft(&[]);
        d.main.name = String::new();
        d.design = "neon".into();
        d.quota = -1;
        d.video_url = "javascript:alert(1)".into();
        d.callback_countries = vec!["USA".into()];
        d.versions = vec![CardText {
            language: "ko".into(),
            name: "x".into(),
            ..Default::default()
        }];
        let Invalid(errors) = d.validate(1, &kr).unwrap_err();
        assert_eq!(errors.len(), 6, "{errors:?}");
    }
}
