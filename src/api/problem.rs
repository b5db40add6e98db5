//! RFC 9457 problem details: every error the API returns, with a stable `type`.

use super::Scope;
use crate::store::StoreError;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

/// An error as the client sees it (`application/problem+json`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// Stable machine-readable kind, e.g. `urn:freecall:problem:validation`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Seconds after which a retry can help (sent as `Retry-After`, not in the body).
    #[serde(skip)]
    pub retry_after: Option<u64>,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.title, self.detail)
    }
}

impl Problem {
    pub fn new(status: u16, code: &str, title: &str, detail: &str) -> Problem {
        Problem {
            kind: format!("urn:freecall:problem:{code}"),
            title: title.into(),
            status,
            detail: detail.into(),
            retry_after: None,
        }
    }

    pub fn validation(detail: &str) -> Problem {
        Problem::new(422, "validation", "Invalid request", detail)
    }

    pub fn unauthorized() -> Problem {
        Problem::new(
            401,
            "unauthorized",
            "API key required",
            "send Authorization: Bearer <key> with a valid key",
        )
    }

    pub fn forbidden(allowed: &[Scope]) -> Problem {
        let names: Vec<&str> = allowed
            .iter()
            .map(|s| match s {
                Scope::Admin => "admin",
                Scope::Credit => "credit",
                Scope::Read => "read",
            })
            .collect();
        Problem::new(
            403,
            "forbidden",
            "Scope not granted",
            &format!(
                "this key lacks the scope needed: {} (or admin)",
                names.join(" or ")
            ),
        )
    }

    pub fn not_found(what: &str) -> Problem {
        Problem::new(404, "not-found", "Not found", &format!("no such {what}"))
    }

    pub fn from_store(e: StoreError) -> Problem {
        match e {
            StoreError::NotFound(what) => Problem::not_found(what),
            StoreError::Conflict(d) => Problem::new(409, "conflict", "Conflict", &d),
            StoreError::Invalid(d) => Problem::validation(&d),
            StoreError::IdempotencyMismatch => Problem::new(
                422,
                "idempotency-key-reused",
                "Idempotency-Key reused",
                "this Idempotency-Key was used with a different request; use a new key",
            ),
            StoreError::Refused(r) => Problem::new(402, "refused", "Refused", &r.to_string()),
            StoreError::Unavailable(d) => {
                tracing::error!(error = %d, "API: store unavailable");
                Problem::new(
                    503,
                    "unavailable",
                    "Service unavailable",
                    "the database is unavailable; nothing was written, retry later",
                )
            }
        }
    }
}

impl ResponseError for Problem {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        let mut r = HttpResponse::build(self.status_code());
        r.content_type("application/problem+json");
        if self.status == 401 {
            r.insert_header(("WWW-Authenticate", "Bearer"));
        }
        if let Some(secs) = self.retry_after {
            r.insert_header(("Retry-After", secs.to_string()));
        }
        r.json(self)
    }
}

pub fn json_error(err: actix_web::error::JsonPayloadError, _: &HttpRequest) -> actix_web::Error {
    use actix_web::error::JsonPayloadError as E;
    let p = match &err {
        E::OverflowKnownLength { .. } | E::Overflow { .. } => {
            Problem::new(413, "payload-too-large", "Body too large", &err.to_string())
        }
        E::ContentType => Problem::new(
            415,
            "unsupported-media-type",
            "JSON expected",
            "send Content-Type: application/json",
        ),
        E::Deserialize(e) => Problem::new(400, "malformed-body", "Malformed JSON", &e.to_string()),
        other => Problem::new(400, "malformed-body", "Unreadable body", &other.to_string()),
    };
    p.into()
}

pub fn path_error(err: actix_web::error::PathError, _: &HttpRequest) -> actix_web::Error {
    Problem::new(400, "bad-path", "Bad path parameter", &err.to_string()).into()
}

pub fn query_error(err: actix_web::error::QueryPayloadError, _: &HttpRequest) -> actix_web::Error {
    Problem::new(400, "bad-query", "Bad query string", &err.to_string()).into()
}

pub async fn not_found(req: HttpRequest) -> Problem {
    Problem::new(
        404,
        "not-found",
        "Not found",
        &format!("no route for {} {}", req.method(), req.path()),
    )
}

impl actix_web::Responder for Problem {
    type Body = actix_web::body::BoxBody;
    fn respond_to(self, _: &HttpRequest) -> HttpResponse {
        self.error_response()
    }
}

/// Common field checks.
pub fn check_text(field: &str, value: &str, max: usize, required: bool) -> Result<(), Problem> {
    if required && value.trim().is_empty() {
        return Err(Problem::validation(&format!("{field} is required")));
    }
    if value.chars().count() > max {
        return Err(Problem::validation(&format!(
            "{field} is longer than {max} characters"
        )));
    }
    if value.chars().any(|c| c.is_control() && c != '\n') {
        return Err(Problem::validation(&format!(
            "{field} contains control characters"
        )));
    }
    Ok(())
}

/// Money and points: positive, at most a trillion units (no float ever).
pub const MAX_AMOUNT: i64 = 1_000_000_000_000;

pub fn check_amount(field: &str, value: i64, allow_zero: bool) -> Result<(), Problem> {
    let min = if allow_zero { 0 } else { 1 };
    if !(min..=MAX_AMOUNT).contains(&value) {
        return Err(Problem::validation(&format!(
            "{field} must be between {min} and {MAX_AMOUNT}"
        )));
    }
    Ok(())
}

/// A login: 3-64 characters of a-z, 0-9, '.', '_' or '-' (also a SIP user name).
pub fn check_login(login: &str) -> Result<(), Problem> {
    let ok = (3..=64).contains(&login.len())
        && login
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(Problem::validation(
            "login must be 3-64 characters of a-z, 0-9, '.', '_' or '-'",
        ))
    }
}

pub fn check_password(field: &str, password: &str) -> Result<(), Problem> {
    if (8..=256).contains(&password.chars().count()) {
        Ok(())
    } else {
        Err(Problem::validation(&format!(
            "{field} must be 8-256 characters"
        )))
    }
}

/// Argon2id costs tens of milliseconds: hash off the async workers.
pub async fn hash_password(password: String) -> Result<String, Problem> {
    actix_web::web::block(move || crate::auth::hash_password(&password))
        .await
        .map_err(|_| Problem::new(500, "internal", "Internal error", "hashing failed"))?
        .map_err(|e| Problem::new(500, "internal", "Internal error", &e))
}
