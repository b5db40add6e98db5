//! `GET /v1/tariffs`: what calls cost, per account kind and destination kind.

use super::{ApiState, Problem, Scope, authorize};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct TariffView {
    /// "mileage" or "guild".
    pub account: String,
    /// landline, mobile, toll_free, premium_rate, internet, international, other.
    pub destination: String,
    pub per_minute: i64,
    /// "first/next" billing periods in seconds.
    pub increment: String,
    pub minimum: i64,
    pub connection: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TariffList {
    pub tariffs: Vec<TariffView>,
    /// No call is allowed for longer than this.
    pub max_call_secs: i64,
}

/// The tariff table in force.
#[utoipa::path(
    get,
    path = "/v1/tariffs",
    responses((status = 200, description = "Tariffs", body = TariffList)),
    security(("bearer" = ["read", "admin"]))
)]
pub async fn list(state: web::Data<ApiState>, req: HttpRequest) -> Result<HttpResponse, Problem> {
    authorize(&state, &req, &[Scope::Read]).await?;
    let t = state.tariffs();
    Ok(HttpResponse::Ok().json(TariffList {
        tariffs: t
            .iter()
            .map(|(kind, t)| TariffView {
                account: kind.as_str().into(),
                destination: t.destination.to_string(),
                per_minute: t.per_minute,
                increment: format!("{}/{}", t.first_secs, t.increment_secs),
                minimum: t.minimum,
                connection: t.connection,
            })
            .collect(),
        max_call_secs: t.max_call_secs,
    }))
}
