//! Call records: `GET /v1/cdrs` (filtered, paged by position) and `GET /v1/cdrs/stream`
//! (server-sent events: every new record as it is stored, resuming after `Last-Event-ID`).
//! Also `/healthz` and `/readyz` for load balancers and systemd.

use super::{ApiState, Problem, Scope, authorize};
use crate::cdr::{CallRecord, parse_time};
use crate::store::cdrs::CdrQuery;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Serialize, ToSchema)]
pub struct CdrView {
    /// Position in the record stream: the SSE event id, and `after` for the next page.
    pub id: i64,
    pub call_id: String,
    pub node: String,
    pub caller: String,
    pub callee: String,
    /// The called and calling numbers as the trunk got them (its number format and
    /// prefixes; the caller `anonymous` when withheld); empty when no trunk was reached.
    pub sent_callee: String,
    pub sent_caller: String,
    pub account_id: Option<i64>,
    pub card_id: Option<i64>,
    pub destination: String,
    pub trunks: Vec<String>,
    pub trunk: Option<String>,
    /// Milliseconds since 1970 (UTC).
    pub setup_ms: i64,
    pub answered_ms: Option<i64>,
    pub ended_ms: i64,
    pub billed_secs: i64,
    pub cost: i64,
    pub code: u16,
    pub cause: String,
    /// caller, callee or switch.
    pub ended_by: String,
    pub codec_caller: String,
    pub codec_callee: String,
    /// Per leg: codec, packets received and sent, lost, late.
    #[schema(value_type = Object)]
    pub media: Option<serde_json::Value>,
}

impl From<CallRecord> for CdrView {
    fn from(r: CallRecord) -> Self {
        CdrView {
            id: r.id,
            call_id: r.call_id,
            node: r.node,
            caller: r.caller,
            callee: r.callee,
            sent_callee: r.sent_callee,
            sent_caller: r.sent_caller,
            account_id: r.account_id,
            card_id: r.card_id,
            destination: r.destination,
            trunks: r.trunks,
            trunk: r.trunk,
            setup_ms: r.setup_ms,
            answered_ms: r.answered_ms,
            ended_ms: r.ended_ms,
            billed_secs: r.billed_secs,
            cost: r.cost,
            code: r.code,
            cause: r.cause,
            ended_by: r.ended_by,
            codec_caller: r.codec_caller,
            codec_callee: r.codec_callee,
            media: r.media,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CdrPage {
    pub cdrs: Vec<CdrView>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next_after: Option<i64>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct CdrFilter {
    /// Calls from or to this number (separators are dropped: 02-1234-5678 is 0212345678).
    pub number: Option<String>,
    /// Calls paid by this account.
    pub account: Option<i64>,
    /// Calls that ended at or after this time: `2026-11-23`, `2026-11-23T10:00:00` (UTC)
    /// or milliseconds since 1970.
    pub since: Option<String>,
    /// Calls that ended before this time (same forms).
    pub until: Option<String>,
    /// Records after this position.
    pub after: Option<i64>,
    /// At most this many (1-1000, default 100).
    pub limit: Option<i64>,
}

impl CdrFilter {
    fn query(&self) -> Result<CdrQuery, Problem> {
        let time = |field: &str, v: &Option<String>| -> Result<Option<i64>, Problem> {
            v.as_deref()
                .map(|t| {
                    parse_time(t).ok_or_else(|| {
                        Problem::validation(&format!("{field}: '{t}' is not a date or time"))
                    })
                })
                .transpose()
        };
        let limit = self.limit.unwrap_or(100);
        if !(1..=1000).contains(&limit) {
            return Err(Problem::validation("limit: must be 1-1000"));
        }
        // Numbers are matched as the switch stores them: normalised like a dialled one.
        let number = self
            .number
            .as_deref()
            .map(crate::routing::normalize_number)
            .transpose()
            .map_err(|e| Problem::validation(&format!("number: {e}")))?;
        Ok(CdrQuery {
            after: self.after.unwrap_or(0).max(0),
            node: None,
            number,
            account: self.account,
            card: None,
            since_ms: time("since", &self.since)?,
            until_ms: time("until", &self.until)?,
            limit,
        })
    }
}

/// Call records, oldest first.
#[utoipa::path(
    get,
    path = "/v1/cdrs",
    params(CdrFilter),
    responses(
        (status = 200, description = "A page of call records", body = CdrPage),
        (status = 422, description = "A filter is malformed", body = Problem),
    ),
    security(("bearer" = ["read", "admin"]))
)]
pub async fn list(
    state: web::Data<ApiState>,
    req: HttpRequest,
    f: web::Query<CdrFilter>,
) -> Result<HttpResponse, Problem> {
    authorize(&state, &req, &[Scope::Read]).await?;
    let q = f.query()?;
    let limit = q.limit;
    let rows = state
        .store
        .run(move |s| s.cdrs(&q))
        .await
        .map_err(Problem::from_store)?;
    let next_after = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|r| r.id))
        .flatten();
    Ok(HttpResponse::Ok().json(CdrPage {
        cdrs: rows.into_iter().map(CdrView::from).collect(),
        next_after,
    }))
}

/// Call records as they are stored, as server-sent events (`id:` is the record's
/// position, `event: cdr`, `data:` the record as JSON). A client that reconnects with
/// `Last-Event-ID` (or `after`) gets everything after it, without gaps or repeats.
#[utoipa::path(
    get,
    path = "/v1/cdrs/stream",
    params(CdrFilter),
    responses((status = 200, description = "text/event-stream of call records")),
    security(("bearer" = ["read", "admin"]))
)]
pub async fn stream(
    state: web::Data<ApiState>,
    req: HttpRequest,
    f: web::Query<CdrFilter>,
) -> Result<HttpResponse, Problem> {
    authorize(&state, &req, &[Scope::Read]).await?;
    let mut q = f.query()?;
    if let Some(id) = req
        .headers()
        .get("Last-Event-ID")
        .and_then(|v| v.to_str().ok())
    {
        q.after = id
            .trim()
            .parse::<i64>()
            .map_err(|_| Problem::validation("Last-Event-ID: not a record position"))?;
    }
    q.limit = 500;
    let store = state.store.clone();
    // Each step: what was stored since the last one, or (after a pause) nothing, or
    // every 15 s of nothing a comment that keeps proxies from closing the stream.
    let events = futures_util::stream::unfold(
        (store, q, 0u32),
        |(store, mut q, idle)| async move {
            let query = q.clone();
            match store.run(move |s| s.cdrs(&query)).await {
                Ok(rows) if !rows.is_empty() => {
                    let mut out = String::new();
                    for r in rows {
                        q.after = r.id;
                        let id = r.id;
                        let json = serde_json::to_string(&CdrView::from(r)).unwrap_or_default();
                        out.push_str(&format!("id: {id}\nevent: cdr\ndata: {json}\n\n"));
                    }
                    Some((
                        Ok::<_, actix_web::Error>(web::Bytes::from(out)),
                        (store, q, 0),
                    ))
                }
                Ok(_) if idle >= 60 => Some((
                    Ok(web::Bytes::from_static(b": keep-alive\n\n")),
                    (store, q, 0),
                )),
                other => {
                    if let Err(e) = other {
                        tracing::warn!(error = %e, "call record stream: store unavailable, retrying");
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    Some((Ok(web::Bytes::new()), (store, q, idle + 1)))
                }
            }
        },
    );
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(events))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    pub status: String,
    /// Each registering trunk: `registering`, `registered`, `failed` or `unregistered`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registrations: Option<std::collections::BTreeMap<String, String>>,
}

/// Prometheus metrics (text exposition format; no authentication, like `/healthz`: keep
/// the API listener on a management network).
#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus text format")))]
pub async fn metrics(state: web::Data<ApiState>) -> Result<HttpResponse, Problem> {
    let Some(handle) = &state.metrics else {
        return Err(Problem::not_found("metrics"));
    };
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(handle.render()))
}

/// The process is up (no authentication: for load balancers and supervisors).
#[utoipa::path(get, path = "/healthz", responses((status = 200, body = Health)))]
pub async fn healthz(state: web::Data<ApiState>) -> HttpResponse {
    let registrations = state.registrations.as_ref().map(|r| {
        r.read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(t, s)| (t.clone(), s.to_string()))
            .collect::<std::collections::BTreeMap<_, _>>()
    });
    HttpResponse::Ok().json(Health {
        status: "ok".into(),
        registrations: registrations.filter(|r| !r.is_empty()),
    })
}

/// The switch can take calls: its database answers.
#[utoipa::path(
    get,
    path = "/readyz",
    responses(
        (status = 200, body = Health),
        (status = 503, description = "The database does not answer", body = Problem),
    )
)]
pub async fn readyz(state: web::Data<ApiState>) -> Result<HttpResponse, Problem> {
    state
        .store
        .run(|s| s.last_cdr_id())
        .await
        .map_err(|e| Problem::new(503, "not-ready", "Not ready", &e.to_string()))?;
    Ok(HttpResponse::Ok().json(Health {
        status: "ready".into(),
        registrations: None,
    }))
}
