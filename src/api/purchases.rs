//! `POST /v1/purchases`: a member buys products; the sales record (M4) is kept and the
//! mileage the products award is credited. Needs an `Idempotency-Key`.

use super::{ApiState, Problem, Scope, authorize, idempotency_key, request_hash};
use crate::store::accounts::Idempotent;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PurchaseIn {
    pub member_id: i64,
    /// 1-100 lines.
    pub items: Vec<PurchaseItem>,
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PurchaseItem {
    pub product_id: i64,
    /// 1-10000.
    pub quantity: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SaleView {
    pub sale_id: i64,
    pub member_id: i64,
    pub account_id: i64,
    pub items: Vec<SaleLine>,
    pub total_price: i64,
    /// Mileage credited by this purchase.
    pub mileage: i64,
    /// The member's mileage balance after it.
    pub balance: i64,
    pub created_ms: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SaleLine {
    pub product_id: i64,
    pub quantity: i64,
    pub unit_price: i64,
    pub mileage: i64,
}

/// Record a purchase and credit its mileage.
#[utoipa::path(
    post,
    path = "/v1/purchases",
    request_body = PurchaseIn,
    params(("Idempotency-Key" = String, Header, description = "Unique per purchase; a retry with the same key and body returns the original sale")),
    responses(
        (status = 201, description = "Sale recorded, mileage credited", body = SaleView),
        (status = 404, description = "No such member or product", body = Problem),
        (status = 422, description = "Invalid body, or the key was used for another request", body = Problem),
    ),
    security(("bearer" = ["credit", "admin"]))
)]
pub async fn create(
    state: web::Data<ApiState>,
    req: HttpRequest,
    body: web::Json<PurchaseIn>,
) -> Result<HttpResponse, Problem> {
    let api_key = authorize(&state, &req, &[Scope::Credit]).await?;
    let key = idempotency_key(&req)?;
    let b = body.into_inner();
    if b.items.is_empty() || b.items.len() > 100 {
        return Err(Problem::validation("items must hold 1-100 lines"));
    }
    if b.member_id <= 0 {
        return Err(Problem::validation("member_id must be positive"));
    }
    for (i, it) in b.items.iter().enumerate() {
        if it.product_id <= 0 || !(1..=10_000).contains(&it.quantity) {
            return Err(Problem::validation(&format!(
                "items[{i}]: product_id must be positive and quantity 1-10000"
            )));
        }
    }
    let idem = Idempotent {
        scope: format!("purchase:{api_key}"),
        key,
        request_hash: request_hash(&b),
    };
    let items: Vec<(i64, i64)> = b.items.iter().map(|i| (i.product_id, i.quantity)).collect();
    let member = b.member_id;
    let answer = state
        .store
        .run(move |s| {
            s.purchase(member, &items, &idem, |sale| {
                serde_json::to_string(&SaleView {
                    sale_id: sale.id,
                    member_id: sale.member_id,
                    account_id: sale.account_id,
                    items: sale
                        .items
                        .iter()
                        .map(|&(product_id, quantity, unit_price, mileage)| SaleLine {
                            product_id,
                            quantity,
                            unit_price,
                            mileage,
                        })
                        .collect(),
                    total_price: sale.total_price,
                    mileage: sale.mileage,
                    balance: sale.balance,
                    created_ms: sale.created_ms,
                })
                .unwrap_or_default()
            })
        })
        .await
        .map_err(Problem::from_store)?;
    Ok(super::accounts::replayable(answer))
}
