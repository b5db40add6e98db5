//! `GET /v1/nodes`: the switches sharing this database, as the NOC sees them — each one's
//! last heartbeat, its incarnation, and whether another node took its calls over.

use super::{ApiState, Problem, Scope, authorize};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct NodeView {
    /// The node's `billing.node_id`.
    pub id: String,
    /// Its last heartbeat, UTC (`2026-12-04 05:30:00`).
    pub last_heartbeat: String,
    /// Seconds since then, on this node's clock: more than `billing.node_lease_secs` and
    /// the node is dead (another node settles its open calls).
    pub heartbeat_age_secs: i64,
    /// How many times it has started.
    pub epoch: i64,
    /// Another node took this incarnation over: it can renew nothing until it starts again.
    pub fenced: bool,
    /// The node that last settled calls it left open.
    pub taken_over_by: Option<String>,
    /// Calls of it that other nodes settled, all time.
    pub calls_taken_over: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NodeList {
    pub nodes: Vec<NodeView>,
}

/// The nodes sharing the database.
#[utoipa::path(
    get,
    path = "/v1/nodes",
    responses((status = 200, description = "Nodes", body = NodeList)),
    security(("bearer" = ["read", "admin"]))
)]
pub async fn list(state: web::Data<ApiState>, req: HttpRequest) -> Result<HttpResponse, Problem> {
    authorize(&state, &req, &[Scope::Read]).await?;
    let rows = state
        .store
        .run(|s| s.nodes())
        .await
        .map_err(Problem::from_store)?;
    let now = state.store.clock().unix_ms();
    Ok(HttpResponse::Ok().json(NodeList {
        nodes: rows
            .into_iter()
            .map(|n| NodeView {
                last_heartbeat: crate::cdr::clock_time(n.heartbeat_ms),
                heartbeat_age_secs: ((now - n.heartbeat_ms) / 1000).max(0),
                epoch: n.epoch,
                fenced: n.fenced_ms.is_some(),
                taken_over_by: n.taker,
                calls_taken_over: n.taken_calls,
                id: n.id,
            })
            .collect(),
    }))
}
