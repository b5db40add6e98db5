//! Where the requester of a placed call follows it: every step the call layer reports
//! (`call::Progress`), kept per request and broadcast to live listeners (the REST
//! `GET /v1/calls/{id}` and its event stream).
//!
//! The hub lives on the node that placed the call; a request's steps are kept for an hour
//! after it ended (its record stays in the store for good), at most `MAX_KEPT` of them.

use crate::call::Progress;
use std::collections::HashMap;
use std::sync::Mutex;
use tokio::sync::broadcast;

const MAX_KEPT: usize = 20_000;
const KEEP_ENDED_MS: i64 = 3600 * 1000;

/// One request as its requester sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub id: String,
    pub card: Option<i64>,
    pub member: Option<i64>,
    /// The number that is called back (the visitor's, or the number a member dials).
    pub number: String,
    pub events: Vec<Progress>,
}

impl Request {
    pub fn ended(&self) -> bool {
        self.events.iter().any(|e| e.state == "ended")
    }

    pub fn state(&self) -> &str {
        self.events
            .last()
            .map(|e| e.state.as_str())
            .unwrap_or("requested")
    }
}

pub struct ProgressHub {
    requests: Mutex<HashMap<String, Request>>,
    live: broadcast::Sender<Progress>,
}

impl Default for ProgressHub {
    fn default() -> Self {
        ProgressHub {
            requests: Mutex::new(HashMap::new()),
            live: broadcast::channel(4096).0,
        }
    }
}

impl ProgressHub {
    /// A request about to be handed to the switch.
    pub fn register(&self, request: Request) {
        let mut map = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_KEPT {
            // Forget the requests that ended first.
            let mut ended: Vec<(i64, String)> = map
                .values()
                .filter(|r| r.ended())
                .map(|r| (r.events.last().map(|e| e.at_ms).unwrap_or(0), r.id.clone()))
                .collect();
            ended.sort_unstable();
            for (_, id) in ended.into_iter().take(MAX_KEPT / 10) {
                map.remove(&id);
            }
        }
        map.insert(request.id.clone(), request);
    }

    /// A step from the call layer.
    pub fn publish(&self, p: Progress) {
        {
            let mut map = self.requests.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(r) = map.get_mut(&p.id) {
                r.events.push(p.clone());
            }
            let now = p.at_ms;
            map.retain(|_, r| {
                !r.ended() || r.events.last().map(|e| e.at_ms).unwrap_or(now) + KEEP_ENDED_MS > now
            });
        }
        // Nobody listening is fine.
        let _ = self.live.send(p);
    }

    pub fn get(&self, id: &str) -> Option<Request> {
        let map = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        map.get(id).cloned()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Progress> {
        self.live.subscribe()
    }

    /// Requests on `card` that have not ended.
    pub fn active_on_card(&self, card: i64) -> usize {
        let map = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        map.values()
            .filter(|r| r.card == Some(card) && !r.ended())
            .count()
    }
}
