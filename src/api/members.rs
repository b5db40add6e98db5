//! `POST /v1/members`: a web shop member signs up (M1) and gets SIP digest credentials
//! for a softphone (M2) and a mileage account with the signup bonus.

use super::problem::{check_login, check_password, check_text, hash_password};
use super::{ApiState, Problem, Scope, authorize};
use crate::store::shop::{Member, NewMember};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberSignup {
    /// Login id; also the SIP user name of the member's softphone. 3-64 of a-z 0-9 . _ -
    pub login: String,
    /// Web password (stored as an Argon2id hash). 8-256 characters.
    pub password: String,
    /// Password for the softphone; defaults to the web password.
    #[serde(default)]
    pub sip_password: Option<String>,
    pub name: String,
    #[serde(default)]
    pub address: String,
    #[serde(default)]
    pub job: String,
    #[serde(default)]
    pub phone: String,
    #[serde(default)]
    pub email: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MemberView {
    pub id: i64,
    pub login: String,
    pub name: String,
    pub address: String,
    pub job: String,
    pub phone: String,
    pub email: String,
    /// The SIP user name (digest) for the softphone.
    pub sip_user: String,
    /// The SIP digest realm.
    pub sip_realm: String,
    /// The member's mileage account.
    pub account_id: i64,
    pub created_ms: i64,
}

pub fn view(m: Member, realm: &str) -> MemberView {
    MemberView {
        id: m.id,
        login: m.login,
        name: m.name,
        address: m.address,
        job: m.job,
        phone: m.phone,
        email: m.email,
        sip_user: m.sip_user,
        sip_realm: realm.to_string(),
        account_id: m.account_id,
        created_ms: m.created_ms,
    }
}

fn validate(b: &MemberSignup) -> Result<(), Problem> {
    check_login(&b.login)?;
    check_password("password", &b.password)?;
    if let Some(pw) = &b.sip_password {
        check_password("sip_password", pw)?;
    }
    check_text("name", &b.name, 200, true)?;
    check_text("address", &b.address, 500, false)?;
    check_text("job", &b.job, 200, false)?;
    check_text("phone", &b.phone, 40, false)?;
    check_text("email", &b.email, 254, false)?;
    Ok(())
}

/// Sign a member up.
#[utoipa::path(
    post,
    path = "/v1/members",
    request_body = MemberSignup,
    responses(
        (status = 201, description = "Member created with a mileage account", body = MemberView),
        (status = 409, description = "Login taken", body = Problem),
        (status = 422, description = "Invalid body", body = Problem),
    ),
    security(("bearer" = ["credit", "admin"]))
)]
pub async fn create(
    state: web::Data<ApiState>,
    req: HttpRequest,
    body: web::Json<MemberSignup>,
) -> Result<HttpResponse, Problem> {
    authorize(&state, &req, &[Scope::Credit]).await?;
    let b = body.into_inner();
    validate(&b)?;
    let realm = state.realm.clone();
    let sip_pw = b.sip_password.clone().unwrap_or_else(|| b.password.clone());
    let password_hash = hash_password(b.password.clone()).await?;
    let new = NewMember {
        sip_ha1: crate::auth::ha1(&b.login, &realm, &sip_pw),
        login: b.login,
        password_hash,
        name: b.name,
        address: b.address,
        job: b.job,
        phone: b.phone,
        email: b.email,
    };
    let bonus = state.signup_bonus_mileage;
    let member = state
        .store
        .run(move |s| s.create_member(&new, bonus))
        .await
        .map_err(Problem::from_store)?;
    Ok(HttpResponse::Created().json(view(member, &realm)))
}
