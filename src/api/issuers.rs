//! `POST /v1/issuers`: a business-card issuer (C1) with its guild account.

use super::problem::{check_login, check_password, check_text, hash_password};
use super::{ApiState, Problem, Scope, authorize};
use crate::store::cards::NewIssuer;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IssuerIn {
    /// 3-64 of a-z 0-9 . _ -
    pub login: String,
    /// 8-256 characters (stored as an Argon2id hash).
    pub password: String,
    pub name: String,
    #[serde(default)]
    pub company: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IssuerView {
    pub id: i64,
    pub login: String,
    pub name: String,
    pub company: String,
    /// The guild account that pays for calls on the issuer's cards.
    pub account_id: i64,
    pub created_ms: i64,
}

/// Create an issuer and its guild (with the configured signup bonus).
#[utoipa::path(
    post,
    path = "/v1/issuers",
    request_body = IssuerIn,
    responses(
        (status = 201, description = "Issuer created", body = IssuerView),
        (status = 409, description = "Login taken", body = Problem),
        (status = 422, description = "Invalid body", body = Problem),
    ),
    security(("bearer" = ["admin"]))
)]
pub async fn create(
    state: web::Data<ApiState>,
    req: HttpRequest,
    body: web::Json<IssuerIn>,
) -> Result<HttpResponse, Problem> {
    authorize(&state, &req, &[Scope::Admin]).await?;
    let b = body.into_inner();
    check_login(&b.login)?;
    check_password("password", &b.password)?;
    check_text("name", &b.name, 200, true)?;
    check_text("company", &b.company, 200, false)?;
    let password_hash = hash_password(b.password.clone()).await?;
    let new = NewIssuer {
        login: b.login,
        password_hash,
        name: b.name,
        company: b.company,
    };
    let bonus = state.signup_bonus_guild;
    let i = state
        .store
        .run(move |s| s.create_issuer(&new, bonus))
        .await
        .map_err(Problem::from_store)?;
    Ok(HttpResponse::Created().json(IssuerView {
        id: i.id,
        login: i.login,
        name: i.name,
        company: i.company,
        account_id: i.account_id,
        created_ms: i.created_ms,
    }))
}
