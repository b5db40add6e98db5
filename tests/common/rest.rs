//! The REST API on its own (no switch), for the API tests: a small rate table, sign-up
//! bonuses, and a key of each scope (admin, credit, read).
#![allow(dead_code)]

use freecall::api::{self, ApiState};
use freecall::billing::{AccountKind, Tariff, Tariffs};
use freecall::numbers::DestinationKind;
use freecall::store::Store;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

pub struct Api {
    pub addr: SocketAddr,
    pub admin: String,
    pub credit: String,
    pub read: String,
    _rt: actix_web::rt::SystemRunner,
    handle: actix_web::dev::ServerHandle,
}

impl Drop for Api {
    fn drop(&mut self) {
        let h = self.handle.clone();
        self._rt.block_on(async move { h.stop(false).await });
    }
}

fn key(store: &Store, scope: &str) -> String {
    let k = format!("fc_test_{scope}_{}", std::process::id());
    store
        .create_api_key(scope, &freecall::auth::api_key_hash(&k), scope)
        .unwrap();
    k
}

pub fn start(store: Store) -> Api {
    let mut t = Tariffs::new(3600);
    for (dest, per_minute) in [
        (DestinationKind::Landline, 10),
        (DestinationKind::Mobile, 20),
        (DestinationKind::TollFree, 0),
    ] {
        t.insert(
            AccountKind::Mileage,
            Tariff {
                destination: dest,
                per_minute,
                first_secs: 60,
                increment_secs: 60,
                minimum: 0,
                connection: 0,
            },
        );
    }
    t.insert(
        AccountKind::Guild,
        Tariff {
            destination: DestinationKind::Landline,
            per_minute: 50,
            first_secs: 30,
            increment_secs: 6,
            minimum: 0,
            connection: 0,
        },
    );
    let state = ApiState {
        store: store.clone(),
        tariffs: Arc::new(RwLock::new(Arc::new(t))),
        realm: "freecall".into(),
        signup_bonus_mileage: 300,
        signup_bonus_guild: 1000,
        metrics: None,
        placing: None,
        public_url: String::new(),
        numbers: freecall::numbers::Classifier::new("KR").expect("home country"),
        bookings: None,
        registrations: None,
        fence: Default::default(),
    };
    let (admin, credit, read) = (
        key(&store, "admin"),
        key(&store, "credit"),
        key(&store, "read"),
    );
    let rt = actix_web::rt::System::new();
    let (server, addr) = rt
        .block_on(async { api::serve(state, "127.0.0.1:0".parse().unwrap(), 4096) })
        .unwrap();
    let handle = server.handle();
    std::thread::spawn(move || {
        let _ = actix_web::rt::System::new().block_on(server);
    });
    Api {
        addr,
        admin,
        credit,
        read,
        _rt: rt,
        handle,
    }
}

pub fn problem_type(r: &super::http::Response) -> String {
    assert_eq!(
        r.header("Content-Type"),
        Some("application/problem+json"),
        "{}",
        r.text()
    );
    r.json()["type"].as_str().unwrap().to_string()
}
