//! `POST /v1/products`, `GET /v1/products`: the catalogue (M3), each product with the
//! mileage a purchase of it earns.

use super::problem::{check_amount, check_text};
use super::{ApiState, Problem, Scope, authorize};
use crate::store::shop::{NewProduct, Product};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductIn {
    pub name: String,
    #[serde(default)]
    pub kind: String,
    /// Size or specification.
    #[serde(default)]
    pub spec: String,
    #[serde(default)]
    pub image_url: String,
    #[serde(default)]
    pub features: String,
    /// Price in the shop's currency, minor units.
    pub price: i64,
    #[serde(default)]
    pub supplier: String,
    /// Mileage points one unit earns.
    pub mileage_award: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProductView {
    pub id: i64,
    pub name: String,
    pub kind: String,
    pub spec: String,
    pub image_url: String,
    pub features: String,
    pub price: i64,
    pub supplier: String,
    pub mileage_award: i64,
    pub created_ms: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProductPage {
    pub products: Vec<ProductView>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next_after: Option<i64>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// Return items with an id greater than this.
    pub after: Option<i64>,
    /// At most this many (1-500, default 100).
    pub limit: Option<i64>,
}

impl PageQuery {
    pub fn bounds(&self) -> Result<(i64, i64), Problem> {
        let limit = self.limit.unwrap_or(100);
        if !(1..=500).contains(&limit) {
            return Err(Problem::validation("limit must be 1-500"));
        }
        Ok((self.after.unwrap_or(0).max(0), limit))
    }
}

fn view(p: Product) -> ProductView {
    ProductView {
        id: p.id,
        name: p.name,
        kind: p.kind,
        spec: p.spec,
        image_url: p.image_url,
        features: p.features,
        price: p.price,
        supplier: p.supplier,
        mileage_award: p.mileage_award,
        created_ms: p.created_ms,
    }
}

/// Add a product to the catalogue.
#[utoipa::path(
    post,
    path = "/v1/products",
    request_body = ProductIn,
    responses(
        (status = 201, description = "Product created", body = ProductView),
        (status = 422, description = "Invalid body", body = Problem),
    ),
    security(("bearer" = ["admin"]))
)]
pub async fn create(
    state: web::Data<ApiState>,
    req: HttpRequest,
    body: web::Json<ProductIn>,
) -> Result<HttpResponse, Problem> {
    authorize(&state, &req, &[Scope::Admin]).await?;
    let b = body.into_inner();
    check_text("name", &b.name, 200, true)?;
    for (f, v) in [
        ("kind", &b.kind),
        ("spec", &b.spec),
        ("supplier", &b.supplier),
    ] {
        check_text(f, v, 200, false)?;
    }
    check_text("image_url", &b.image_url, 2000, false)?;
    check_text("features", &b.features, 4000, false)?;
    check_amount("price", b.price, true)?;
    check_amount("mileage_award", b.mileage_award, true)?;
    let new = NewProduct {
        name: b.name,
        kind: b.kind,
        spec: b.spec,
        image_url: b.image_url,
        features: b.features,
        price: b.price,
        supplier: b.supplier,
        mileage_award: b.mileage_award,
        created_ms: state.store.clock().unix_ms(),
    };
    let p = state
        .store
        .run(move |s| s.create_product(&new))
        .await
        .map_err(Problem::from_store)?;
    Ok(HttpResponse::Created().json(view(p)))
}

/// The catalogue, by id.
#[utoipa::path(
    get,
    path = "/v1/products",
    params(PageQuery),
    responses((status = 200, description = "A page of products", body = ProductPage)),
    security(("bearer" = ["read", "admin"]))
)]
pub async fn list(
    state: web::Data<ApiState>,
    req: HttpRequest,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse, Problem> {
    authorize(&state, &req, &[Scope::Read]).await?;
    let (after, limit) = q.bounds()?;
    let rows = state
        .store
        .run(move |s| s.products(after, limit))
        .await
        .map_err(Problem::from_store)?;
    let next_after = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|p| p.id))
        .flatten();
    Ok(HttpResponse::Ok().json(ProductPage {
        products: rows.into_iter().map(view).collect(),
        next_after,
    }))
}
