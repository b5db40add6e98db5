//! A member's phone book (C13) for the shop's backend: `GET/POST
//! /v1/members/{id}/phonebook`, `PUT/DELETE /v1/members/{id}/phonebook/{entry}`, and
//! `POST /v1/members/{id}/phonebook/{entry}/calls` to place a call to an entry (the
//! member's own phone rings first, as with `POST /v1/members/{id}/calls`).

use super::{ApiState, Problem, Scope, authorize};
use crate::store::phonebook::Entry;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EntryIn {
    /// 1-100 characters.
    pub name: String,
    /// A phone number the switch can dial.
    pub number: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EntryView {
    pub id: i64,
    pub member_id: i64,
    pub name: String,
    pub number: String,
    pub created_ms: i64,
}

fn view(e: Entry) -> EntryView {
    EntryView {
        id: e.id,
        member_id: e.member_id,
        name: e.name,
        number: e.number,
        created_ms: e.created_ms,
    }
}

fn checked(b: &EntryIn) -> Result<(String, String), Problem> {
    crate::placing::check_phonebook_entry(&b.name, &b.number).map_err(|e| Problem::validation(&e))
}

/// The member's phone book, by name.
#[utoipa::path(
    get,
    path = "/v1/members/{id}/phonebook",
    params(("id" = i64, Path, description = "Member id")),
    responses(
        (status = 200, description = "The entries", body = [EntryView]),
        (status = 404, description = "No such member", body = Problem),
    ),
    security(("bearer" = ["read"]))
)]
pub async fn list(
    state: web::Data<ApiState>,
    req: HttpRequest,
    path: web::Path<i64>,
) -> Result<HttpResponse, Problem> {
    authorize(&state, &req, &[Scope::Read, Scope::Credit]).await?;
    let member = path.into_inner();
    let entries = state
        .store
        .run(move |s| {
            s.member(member)?;
            s.phonebook(member)
        })
        .await
        .map_err(Problem::from_store)?;
    let views: Vec<EntryView> = entries.into_iter().map(view).collect();
    Ok(HttpResponse::Ok().json(views))
}

/// Add an entry.
#[utoipa::path(
    post,
    path = "/v1/members/{id}/phonebook",
    request_body = EntryIn,
    params(("id" = i64, Path, description = "Member id")),
    responses(
        (status = 201, description = "Added", body = EntryView),
        (status = 404, description = "No such member", body = Problem),
        (status = 422, description = "Not a name and number, or the book is full", body = Problem),
    ),
    security(("bearer" = ["credit"]))
)]
pub async fn add(
    state: web::Data<ApiState>,
    req: HttpRequest,
    path: web::Path<i64>,
    body: web::Json<EntryIn>,
) -> Result<HttpResponse, Problem> {
    authorize(&state, &req, &[Scope::Credit]).await?;
    let member = path.into_inner();
    let (name, number) = checked(&body)?;
    let e = state
        .store
        .run(move |s| {
            s.member(member)?;
            s.add_phonebook_entry(member, &name, &number)
        })
        .await
        .map_err(Problem::from_store)?;
    Ok(HttpResponse::Created()
        .insert_header((
            "Location",
            format!("/v1/members/{member}/phonebook/{}", e.id),
        ))
        .json(view(e)))
}

/// Change an entry.
#[utoipa::path(
    put,
    path = "/v1/members/{id}/phonebook/{entry}",
    request_body = EntryIn,
    params(("id" = i64, Path, description = "Member id"), ("entry" = i64, Path, description = "Entry id")),
    responses(
        (status = 200, description = "Changed", body = EntryView),
        (status = 404, description = "No such entry for this member", body = Problem),
        (status = 422, description = "Not a name and number", body = Problem),
    ),
    security(("bearer" = ["credit"]))
)]
pub async fn update(
    state: web::Data<ApiState>,
    req: HttpRequest,
    path: web::Path<(i64, i64)>,
    body: web::Json<EntryIn>,
) -> Result<HttpResponse, Problem> {
    authorize(&state, &req, &[Scope::Credit]).await?;
    let (member, entry) = path.into_inner();
    let (name, number) = checked(&body)?;
    let e = state
        .store
        .run(move |s| s.update_phonebook_entry(member, entry, &name, &number))
        .await
        .map_err(Problem::from_store)?;
    Ok(HttpResponse::Ok().json(view(e)))
}

/// Delete an entry.
#[utoipa::path(
    delete,
    path = "/v1/members/{id}/phonebook/{entry}",
    params(("id" = i64, Path, description = "Member id"), ("entry" = i64, Path, description = "Entry id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such entry for this member", body = Problem),
    ),
    security(("bearer" = ["credit"]))
)]
pub async fn delete(
    state: web::Data<ApiState>,
    req: HttpRequest,
    path: web::Path<(i64, i64)>,
) -> Result<HttpResponse, Problem> {
    authorize(&state, &req, &[Scope::Credit]).await?;
    let (member, entry) = path.into_inner();
    state
        .store
        .run(move |s| s.delete_phonebook_entry(member, entry))
        .await
        .map_err(Problem::from_store)?;
    Ok(HttpResponse::NoContent().finish())
}

/// Call an entry: the member's own phone rings first, then the entry's number (paid from
/// the member's mileage, fenced as any web dial).
#[utoipa::path(
    post,
    path = "/v1/members/{id}/phonebook/{entry}/calls",
    params(("id" = i64, Path, description = "Member id"), ("entry" = i64, Path, description = "Entry id")),
    responses(
        (status = 202, description = "Requested: the member's phone is being called", body = super::calls::CallView),
        (status = 402, description = "Mileage exhausted", body = Problem),
        (status = 404, description = "No such entry for this member", body = Problem),
    ),
    security(("bearer" = ["credit"]))
)]
pub async fn call(
    state: web::Data<ApiState>,
    req: HttpRequest,
    path: web::Path<(i64, i64)>,
) -> Result<HttpResponse, Problem> {
    authorize(&state, &req, &[Scope::Credit]).await?;
    let (member, entry) = path.into_inner();
    let e = state
        .store
        .run(move |s| s.phonebook_entry(member, entry))
        .await
        .map_err(Problem::from_store)?;
    let p = super::calls::placing(&state)?;
    let id = p
        .web_dial(member, &e.number, false)
        .await
        .map_err(super::calls::problem)?;
    Ok(super::calls::accepted(id, &state))
}
