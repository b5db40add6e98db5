//! An issuer with a guild and one card, as the call-back tests need them.
#![allow(dead_code)]

use freecall::store::Store;
use freecall::store::cards::{NewCard, NewIssuer};

/// Open an issuer `login` with `guild` and issue a card with `quota` calls, the card's
/// numbers as JSON (`[{"kind":"mobile","number":"…","callback":true}]`) and the countries
/// its visitors may be called back in: (card id, the issuer's account id).
pub fn issue(
    store: &Store,
    login: &str,
    guild: i64,
    quota: i64,
    phones: &str,
    countries: &str,
) -> (i64, i64) {
    let issuer = store
        .create_issuer(
            &NewIssuer {
                login: login.into(),
                password_hash: "x".into(),
                name: format!("Issuer {login}"),
                company: String::new(),
            },
            guild,
        )
        .expect("issuer");
    let card = store
        .create_card(&NewCard {
            issuer_id: issuer.id,
            language: "en".into(),
            name: format!("Issuer {login}"),
            title: String::new(),
            company: String::new(),
            text: String::new(),
            image_url: String::new(),
            video_url: String::new(),
            design: String::new(),
            phones: phones.into(),
            quota,
            callback_countries: countries.into(),
        })
        .expect("card");
    (card.id, issuer.account_id)
}
