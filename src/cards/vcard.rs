//! A card as a vCard (RFC 6350) through `calcard`: 4.0 out, with the name, organisation,
//! title, phones by type, photo, note and the public page's URL; in, 4.0 and the 3.0 and
//! 2.1 that phones export, into a `Draft` (plus the photo's bytes when it is embedded).

use super::Draft;
use crate::store::cards::{CardNumber, CardText};
use calcard::common::Data;
use calcard::vcard::{
    VCard, VCardEntry, VCardParameter, VCardParameterName, VCardParameterValue, VCardProperty,
    VCardType, VCardValue, VCardValueType,
};

/// Largest vCard taken in.
pub const MAX_BYTES: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VcardError {
    #[error("the vCard is larger than {MAX_BYTES} bytes")]
    TooLarge,
    #[error("this is not a vCard: {0}")]
    NotVcard(String),
    #[error("the vCard has no name (FN or N)")]
    NoName,
}

/// What an imported vCard gives: the card's text and numbers, and an embedded photo.
#[derive(Debug, Default)]
pub struct Imported {
    pub draft: Draft,
    pub photo: Option<Vec<u8>>,
    /// A photo given as a link instead of embedded.
    pub photo_url: Option<String>,
    /// What was in the vCard but could not be taken (e.g. a number that is not one).
    pub skipped: Vec<String>,
}

impl Imported {
    /// The card `old` with this vCard's text and numbers (and its photo link, if it has
    /// one): what a vCard does not carry — other language versions, video, design, quota,
    /// countries — stays as it was.
    pub fn onto(&self, old: Draft) -> Draft {
        let mut d = self.draft.clone();
        d.versions = old
            .versions
            .into_iter()
            .filter(|v| v.language != d.main.language)
            .collect();
        d.video_url = old.video_url;
        d.design = old.design;
        d.quota = old.quota;
        d.callback_countries = old.callback_countries;
        d.image_url = self.photo_url.clone().unwrap_or(old.image_url);
        d
    }
}

fn text(v: &str) -> VCardValue {
    VCardValue::Text(v.to_string())
}

/// The card as vCard 4.0 text. `public_url`: the card's page; `photo`: its absolute URL.
pub fn export(
    main: &CardText,
    phones: &[CardNumber],
    public_url: &str,
    photo: Option<&str>,
) -> String {
    let mut entries = vec![
        VCardEntry::new(VCardProperty::Fn)
            .with_param(VCardParameter::language(main.language.clone()))
            .with_value(main.name.clone()),
        VCardEntry::new(VCardProperty::N).with_values(split_name(&main.name, &main.language)),
    ];
    if !main.company.is_empty() {
        entries.push(VCardEntry::new(VCardProperty::Org).with_value(main.company.clone()));
    }
    if !main.title.is_empty() {
        entries.push(VCardEntry::new(VCardProperty::Title).with_value(main.title.clone()));
    }
    for (i, p) in phones.iter().enumerate() {
        let mut e = VCardEntry::new(VCardProperty::Tel);
        let internet = p.kind == "internet" && crate::routing::is_sip_user(&p.number);
        if internet {
            // A SIP user is no telephone number: an IMPP-style sip: URI.
            e = VCardEntry::new(VCardProperty::Impp).with_value(format!("sip:{}", p.number));
        } else {
            e = e
                .with_param(VCardParameter::value(VCardValueType::Uri))
                .with_param(VCardParameter::typ(match p.kind.as_str() {
                    "mobile" => VCardType::Cell,
                    "landline" => VCardType::Work,
                    _ => VCardType::Voice,
                }))
                .with_param(VCardParameter::typ(VCardType::Voice));
            if i == 0 {
                e = e.with_param(VCardParameter::pref(1u32));
            }
            e = e.with_value(format!("tel:{}", tel_uri(&p.number)));
        }
        entries.push(e);
    }
    if !main.text.is_empty() {
        entries.push(VCardEntry::new(VCardProperty::Note).with_value(main.text.clone()));
    }
    if !public_url.is_empty() {
        entries.push(VCardEntry::new(VCardProperty::Url).with_value(public_url.to_string()));
    }
    if let Some(photo) = photo {
        entries.push(VCardEntry::new(VCardProperty::Photo).with_value(photo.to_string()));
    }
    VCard { entries }.to_string()
}

/// `N` from a display name: Korean names are family name first (`홍길동` → 홍;길동),
/// others given names first (`Jane Doe` → Doe;Jane).
fn split_name(name: &str, language: &str) -> Vec<VCardValue> {
    let name = name.trim();
    let (family, given) = if language == "ko" {
        match name.split_once(' ') {
            Some((f, g)) => (f.to_string(), g.to_string()),
            None if name.chars().count() >= 2 && !name.is_ascii() => {
                let first: String = name.chars().take(1).collect();
                (first, name.chars().skip(1).collect())
            }
            None => (name.to_string(), String::new()),
        }
    } else {
        match name.rsplit_once(' ') {
            Some((g, f)) => (f.to_string(), g.to_string()),
            None => (name.to_string(), String::new()),
        }
    };
    vec![text(&family), text(&given), text(""), text(""), text("")]
}

/// A number as written on the card, for a `tel:` URI: visual separators become `-`.
fn tel_uri(number: &str) -> String {
    number
        .chars()
        .filter_map(|c| match c {
            '0'..='9' | '+' | '*' | '#' => Some(c),
            ' ' | '-' | '.' | '(' | ')' => Some('-'),
            _ => None,
        })
        .collect::<String>()
        .trim_matches('-')
        .to_string()
}

/// Read a vCard (4.0, 3.0 or 2.1; the first card of the file) into a card draft in
/// `language` (the vCard's own LANGUAGE wins when it names one we speak).
pub fn import(
    src: &[u8],
    language: &str,
    numbers: &crate::numbers::Classifier,
) -> Result<Imported, VcardError> {
    if src.len() > MAX_BYTES {
        return Err(VcardError::TooLarge);
    }
    let src = String::from_utf8_lossy(src);
    if !src
        .trim_start()
        .to_ascii_uppercase()
        .starts_with("BEGIN:VCARD")
    {
        return Err(VcardError::NotVcard(
            "it does not start with BEGIN:VCARD".into(),
        ));
    }
    let card = VCard::parse(src.as_ref()).map_err(|e| VcardError::NotVcard(format!("{e:?}")))?;
    let first_text = |p: VCardProperty| {
        card.property(&p)
            .and_then(|e| e.values.first())
            .and_then(|v| v.as_text())
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    let mut out = Imported::default();
    let fn_entry = card.property(&VCardProperty::Fn);
    let lang = fn_entry
        .and_then(|e| e.language())
        .and_then(|l| {
            super::LANGUAGES
                .iter()
                .find(|k| l.to_ascii_lowercase().starts_with(*k))
        })
        .map(|l| l.to_string())
        .unwrap_or_else(|| language.to_string());
    let mut name = first_text(VCardProperty::Fn);
    if name.is_empty() {
        // No FN (2.1 allows that): build one from N.
        let parts: Vec<String> = card
            .property(&VCardProperty::N)
            .map(|e| {
                e.values
                    .iter()
                    .map(|v| match v {
                        VCardValue::Component(c) => c.join(" "),
                        v => v.as_text().unwrap_or("").to_string(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let family = parts.first().cloned().unwrap_or_default();
        let given = parts.get(1).cloned().unwrap_or_default();
        name = if lang == "ko" {
            format!("{family}{given}")
        } else {
            format!("{given} {family}")
        }
        .trim()
        .to_string();
    }
    if name.is_empty() {
        return Err(VcardError::NoName);
    }
    let company = card
        .property(&VCardProperty::Org)
        .and_then(|e| e.values.first())
        .and_then(|v| v.as_text())
        .unwrap_or("")
        .trim()
        .to_string();
    out.draft.main = CardText {
        language: lang,
        name,
        title: first_text(VCardProperty::Title),
        company,
        text: first_text(VCardProperty::Note),
    };
    for tel in card.properties(&VCardProperty::Tel) {
        let Some(raw) = tel.values.first().and_then(|v| v.as_text()) else {
            continue;
        };
        let number = raw.trim().trim_start_matches("tel:").trim().to_string();
        let types: Vec<String> = tel
            .parameters(&VCardParameterName::Type)
            .filter_map(|p| match p {
                VCardParameterValue::Type(t) => Some(format!("{t:?}").to_ascii_lowercase()),
                other => other.as_text().map(|s| s.to_ascii_lowercase()),
            })
            .collect();
        if types.iter().any(|t| t == "fax" || t == "pager") {
            out.skipped.push(format!("{number} (fax or pager)"));
            continue;
        }
        // The number's own kind (phones mark numbers loosely: a mobile as WORK).
        let kind = super::kind_of_number(numbers, &number);
        if crate::routing::normalize_number(&number).is_err() {
            out.skipped.push(format!("{number} (not a phone number)"));
            continue;
        }
        out.draft.phones.push(CardNumber {
            kind: kind.into(),
            number,
            callback: false,
        });
    }
    for impp in card.properties(&VCardProperty::Impp) {
        if let Some(user) = impp
            .values
            .first()
            .and_then(|v| v.as_text())
            .and_then(|v| v.strip_prefix("sip:"))
            .map(|u| u.split('@').next().unwrap_or(u).to_string())
            && crate::routing::is_sip_user(&user)
        {
            out.draft.phones.push(CardNumber {
                kind: "internet".into(),
                number: user,
                callback: false,
            });
        }
    }
    if out.draft.phones.len() > super::MAX_PHONES {
        out.skipped.push(format!(
            "numbers after the first {} (a card holds at most that many)",
            super::MAX_PHONES
        ));
        out.draft.phones.truncate(super::MAX_PHONES);
    }
    for p in card.properties(&VCardProperty::Photo) {
        match p.values.first() {
            Some(VCardValue::Binary(Data { data, .. })) => out.photo = Some(data.clone()),
            Some(VCardValue::Text(url)) if url.starts_with("http") => {
                out.photo_url = Some(url.clone())
            }
            _ => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kr() -> crate::numbers::Classifier {
        crate::numbers::Classifier::new("KR").unwrap()
    }

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/tests/fixtures/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    #[test]
    fn a_phones_vcard_3_0_gives_name_company_title_and_numbers_by_kind() {
        let i = import(&fixture("phone-3.0.vcf"), "ko", &kr()).unwrap();
        assert_eq!(i.draft.main.name, "Jisoo Park");
        assert_eq!(i.draft.main.company, "Hanbit Trading");
        assert_eq!(i.draft.main.title, "Sales Manager");
        assert_eq!(i.draft.main.text, "Met at the Busan trade fair.");
        let n: Vec<(&str, &str)> = i
            .draft
            .phones
            .iter()
            .map(|p| (p.kind.as_str(), p.number.as_str()))
            .collect();
        assert_eq!(
            n,
            [("mobile", "010-4444-5555"), ("landline", "02-3456-7890")]
        );
        assert_eq!(i.skipped.len(), 1, "the fax: {:?}", i.skipped);
    }

    #[test]
    fn a_vcard_2_1_in_quoted_printable_korean_imports() {
        let i = import(&fixture("phone-2.1.vcf"), "en", &kr()).unwrap();
        assert_eq!(i.draft.main.name, "이서연");
        let n: Vec<(&str, &str)> = i
            .draft
            .phones
            .iter()
            .map(|p| (p.kind.as_str(), p.number.as_str()))
            .collect();
        assert_eq!(
            n,
            [("mobile", "010-7777-8888"), ("landline", "031-222-3333")]
        );
    }

    #[test]
    fn export_then_import_gives_the_same_text_and_numbers() {
        let main = CardText {
            language: "en".into(),
            name: "Jane Doe".into(),
            title: "Buyer".into(),
            company: "Acme; Seoul".into(),
            text: "Line one,\nand two; three".into(),
        };
        let phones = vec![
            CardNumber {
                kind: "mobile".into(),
                number: "010-1111-2222".into(),
                callback: false,
            },
            CardNumber {
                kind: "landline".into(),
                number: "02-555-0100".into(),
                callback: false,
            },
        ];
        let text = export(&main, &phones, "https://call.example.com/c/abc", None);
        let back = import(text.as_bytes(), "ko", &kr()).unwrap();
        assert_eq!(back.draft.main, main);
        assert_eq!(back.draft.phones, phones);
    }

    #[test]
    fn what_is_not_a_vcard_is_refused_with_words() {
        assert!(matches!(
            import(b"\x89PNG\r\n", "en", &kr()),
            Err(VcardError::NotVcard(_))
        ));
        assert_eq!(
            import(b"BEGIN:VCARD\r\nVERSION:3.0\r\nEND:VCARD\r\n", "en", &kr()).unwrap_err(),
            VcardError::NoName
        );
        assert_eq!(
            import(&vec![b'a'; MAX_BYTES + 1], "en", &kr()).unwrap_err(),
            VcardError::TooLarge
        );
    }
}
