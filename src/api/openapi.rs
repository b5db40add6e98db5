//! `GET /v1/openapi.json`: the OpenAPI document, generated from the handlers' annotations
//! (a test checks that it lists exactly the routes `configure` registers).

use actix_web::HttpResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "freecall",
        description = "REST control plane of the freecall softswitch: members, products, purchases, card issuers, cards (with vCards), members' phone books, free call-backs and web dial, calls booked for a set time (calls the switch places, followed live), account credits, balances, ledgers, tariffs and the operator's rate deck. Errors are application/problem+json."
    ),
    paths(
        super::members::create,
        super::products::create,
        super::products::list,
        super::purchases::create,
        super::issuers::create,
        super::cards::create,
        super::cards::list,
        super::cards::show,
        super::cards::update,
        super::cards::delete,
        super::cards::vcard,
        super::cards::put_vcard,
        super::cards::issuer_calls,
        super::voice::list,
        super::voice::put,
        super::voice::delete,
        super::voice::audio,
        super::voice::put_recording,
        super::voice::put_whisper,
        super::voice::delete_whisper,
        super::recordings::list,
        super::recordings::show,
        super::recordings::delete,
        super::recordings::audio,
        super::phonebook::list,
        super::phonebook::add,
        super::phonebook::update,
        super::phonebook::delete,
        super::phonebook::call,
        super::calls::callback,
        super::calls::web_dial,
        super::bookings::book_callback,
        super::bookings::book_dial,
        super::bookings::show,
        super::bookings::by_serial,
        super::bookings::reschedule,
        super::bookings::cancel,
        super::bookings::of_card,
        super::bookings::of_member,
        super::calls::show,
        super::calls::cancel,
        super::calls::events,
        super::accounts::show,
        super::accounts::ledger,
        super::accounts::credit,
        super::tariffs::list,
        super::rate_deck::load,
        super::rate_deck::show,
        super::rate_deck::remove,
        super::rate_deck::price,
        super::nodes::list,
        super::cdrs::list,
        super::cdrs::stream,
        super::cdrs::metrics,
        super::cdrs::healthz,
        super::cdrs::readyz,
    ),
    modifiers(&Bearer)
)]
pub struct ApiDoc;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if let Some(c) = openapi.components.as_mut() {
            c.add_security_scheme(
                "bearer",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
        }
    }
}

pub fn json() -> String {
    ApiDoc::openapi().to_pretty_json().unwrap_or_default()
}

pub async fn document() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(json())
}
