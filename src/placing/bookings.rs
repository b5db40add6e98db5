//! Calls booked for a set time (C11): a call-back (or a member's dial) that waits, placed
//! exactly as a live request would be when its time comes — once, whatever restarts or
//! nodes there are (the store's states and claims, `store::bookings`).
//!
//! The scheduler sleeps until the next due time the store names (one indexed query), or
//! until a booking is made, moved or an attempt ends; at most `MAX_SLEEP` so bookings made
//! on other nodes are seen. Each due booking is claimed with a lease, marked `dialling`
//! (committed) and only then handed to the switch with the money checked again; a refusal
//! ends it with the reason and nobody is dialled. Busy or no answer: another attempt after
//! `retry_secs`, up to `attempts`. Every attempt's call id carries the serial
//! (`fc-R-20261202-0042-1-…`), so the call's record names the booking.

use super::{PlaceError, Placing};
use crate::call::Progress;
use crate::config::BookingsConfig;
use crate::store::bookings::{Booking, BookingLimits, NewBooking};
use crate::store::{Store, StoreError};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tracing::{info, warn};

const MAX_SLEEP: Duration = Duration::from_secs(30);
/// Due bookings claimed per round.
const CLAIM_BATCH: i64 = 20;

#[derive(Clone, Debug)]
pub struct BookingRules {
    pub max_ahead_ms: i64,
    pub late_window_ms: i64,
    pub lease_ms: i64,
    pub attempts: i64,
    pub retry_secs: i64,
    pub limits: BookingLimits,
}

impl BookingRules {
    pub fn from_config(c: &BookingsConfig) -> BookingRules {
        BookingRules {
            max_ahead_ms: c.max_days_ahead as i64 * 86_400_000,
            late_window_ms: c.late_window_secs as i64 * 1000,
            lease_ms: c.lease_secs as i64 * 1000,
            attempts: c.attempts as i64,
            retry_secs: c.retry_secs as i64,
            limits: BookingLimits {
                per_owner: c.per_owner_open as i64,
                per_number: c.per_number_open as i64,
            },
        }
    }
}

/// Who a booking is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    /// A card's visitor is called back.
    Card(i64),
    /// A member's web dial.
    Member(i64),
}

#[derive(Debug, thiserror::Error)]
pub enum BookError {
    #[error("{0}")]
    Place(#[from] PlaceError),
    /// The time is not one we can book (unparsable, unknown zone, past, too far).
    #[error("{0}")]
    Time(String),
    #[error("{0}")]
    Conflict(String),
    #[error("no such booking")]
    NotFound,
}

fn store_error(e: StoreError) -> BookError {
    match e {
        StoreError::NotFound(_) => BookError::NotFound,
        StoreError::Conflict(m) => BookError::Conflict(m),
        other => BookError::Place(super::store_error(other)),
    }
}

/// `at` as UTC milliseconds: RFC 3339 with an offset (`2026-12-02T15:00:00+09:00`), or a
/// local time (`2026-12-02T15:00`) in the IANA zone `tz` (`Asia/Seoul`).
pub fn parse_time(at: &str, tz: &str) -> Result<i64, String> {
    use chrono::TimeZone;
    let zone: chrono_tz::Tz = tz
        .parse()
        .map_err(|_| format!("'{tz}' is not an IANA time zone (e.g. Asia/Seoul)"))?;
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(at.trim()) {
        return Ok(t.timestamp_millis());
    }
    let local = [
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
    ]
    .iter()
    .find_map(|f| chrono::NaiveDateTime::parse_from_str(at.trim(), f).ok())
    .ok_or_else(|| {
        format!("'{at}' is not a time (e.g. 2026-12-02T15:00, or with an offset +09:00)")
    })?;
    zone.from_local_datetime(&local)
        .earliest()
        .map(|t| t.timestamp_millis())
        .ok_or_else(|| format!("{at} does not exist in {tz} (a clock change skips it)"))
}

/// `ms` as a local time in `tz`, for the booker (RFC 3339 with the zone's offset).
pub fn local_time(ms: i64, tz: &str) -> String {
    use chrono::TimeZone;
    let zone: chrono_tz::Tz = tz.parse().unwrap_or(chrono_tz::UTC);
    zone.timestamp_millis_opt(ms)
        .single()
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, false))
        .unwrap_or_default()
}

struct InFlight {
    booking: i64,
    attempts: i64,
    max_attempts: i64,
    retry_secs: i64,
}

struct Inner {
    placing: Placing,
    store: Store,
    node: String,
    rules: BookingRules,
    wake: Notify,
    inflight: Mutex<HashMap<String, InFlight>>,
}

/// The bookings service: REST and the pages book through it, its task fires them.
#[derive(Clone)]
pub struct Bookings(Arc<Inner>);

impl Bookings {
    pub fn new(placing: Placing, store: Store, node: String, rules: BookingRules) -> Bookings {
        Bookings(Arc::new(Inner {
            placing,
            store,
            node,
            rules,
            wake: Notify::new(),
            inflight: Mutex::new(HashMap::new()),
        }))
    }

    fn check_time(&self, due: i64, now: i64) -> Result<(), BookError> {
        if due < now - 60_000 {
            return Err(BookError::Time("that time has passed".into()));
        }
        if due > now + self.0.rules.max_ahead_ms {
            return Err(BookError::Time(format!(
                "bookings are taken at most {} days ahead",
                self.0.rules.max_ahead_ms / 86_400_000
            )));
        }
        Ok(())
    }

    /// Book a call to `number` at `at` in `tz`, asked from `client`: the number and the
    /// card's rules are checked now (and again when it fires), the money when it fires.
    pub async fn book(
        &self,
        owner: Owner,
        number: &str,
        at: &str,
        tz: &str,
        client: IpAddr,
        record: bool,
    ) -> Result<Booking, BookError> {
        self.0.placing.admit_request(client)?;
        let due = parse_time(at, tz).map_err(BookError::Time)?;
        self.check_time(due, self.0.store.clock().unix_ms())?;
        let (card_id, member_id) = match owner {
            Owner::Card(card) => {
                self.0.placing.check_callback(card, number).await?;
                (Some(card), None)
            }
            Owner::Member(member) => {
                self.0.placing.parse_number(number)?;
                self.0
                    .store
                    .run(move |s| s.member(member))
                    .await
                    .map_err(store_error)?;
                (None, Some(member))
            }
        };
        let new = NewBooking {
            card_id,
            member_id,
            number: number.trim().to_string(),
            due_ms: due,
            time_zone: tz.to_string(),
            max_attempts: self.0.rules.attempts,
            retry_secs: self.0.rules.retry_secs,
            record,
        };
        let limits = self.0.rules.limits;
        let b = self
            .0
            .store
            .run(move |s| s.create_booking(&new, limits))
            .await
            .map_err(store_error)?;
        info!(serial = %b.serial, due = %local_time(b.due_ms, &b.time_zone), "call booked");
        self.0.wake.notify_one();
        Ok(b)
    }

    /// Move a booking that has not fired.
    pub async fn reschedule(
        &self,
        token: &str,
        at: &str,
        tz: Option<&str>,
    ) -> Result<Booking, BookError> {
        let t = token.to_string();
        let b = self
            .0
            .store
            .run(move |s| s.booking(&t))
            .await
            .map_err(store_error)?;
        let tz = tz.unwrap_or(&b.time_zone).to_string();
        let due = parse_time(at, &tz).map_err(BookError::Time)?;
        self.check_time(due, self.0.store.clock().unix_ms())?;
        let t = token.to_string();
        let b = self
            .0
            .store
            .run(move |s| s.move_booking(&t, due))
            .await
            .map_err(store_error)?;
        self.0.wake.notify_one();
        Ok(b)
    }

    pub async fn cancel(&self, token: &str) -> Result<Booking, BookError> {
        let t = token.to_string();
        self.0
            .store
            .run(move |s| s.cancel_booking(&t))
            .await
            .map_err(store_error)
    }

    /// Fire what is due at `now_ms`: claim, mark `dialling`, place. How many were placed.
    /// (The scheduler's task calls this with the clock; tests with a time of their own.)
    pub async fn tick(&self, now_ms: i64) -> usize {
        let s = &self.0;
        let (node, lease) = (s.node.clone(), now_ms + s.rules.lease_ms);
        let claimed = match s
            .store
            .run(move |st| st.claim_due(&node, now_ms, lease, CLAIM_BATCH))
            .await
        {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "bookings: cannot claim due bookings");
                return 0;
            }
        };
        let mut placed = 0;
        for b in claimed {
            if b.attempts == 0 && now_ms - b.due_ms > s.rules.late_window_ms {
                let (id, node) = (b.id, s.node.clone());
                let _ = s
                    .store
                    .run(move |st| {
                        st.end_claim(
                            id,
                            &node,
                            "missed",
                            "missed: no switch was running at the booked time",
                        )
                    })
                    .await;
                warn!(serial = %b.serial, "booking missed");
                continue;
            }
            let call_id = format!(
                "fc-{}-{}-{:08x}",
                b.serial,
                b.attempts + 1,
                rand::random::<u32>()
            );
            let (id, node, cid) = (b.id, s.node.clone(), call_id.clone());
            match s
                .store
                .run(move |st| st.start_dialling(id, &node, &cid, now_ms))
                .await
            {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    warn!(serial = %b.serial, error = %e, "bookings: cannot mark dialling");
                    continue;
                }
            }
            s.inflight.lock().unwrap_or_else(|e| e.into_inner()).insert(
                call_id.clone(),
                InFlight {
                    booking: b.id,
                    attempts: b.attempts + 1,
                    max_attempts: b.max_attempts,
                    retry_secs: b.retry_secs,
                },
            );
            let result = match (b.card_id, b.member_id) {
                (Some(card), _) => {
                    s.placing
                        .callback_as(card, &b.number, Some(call_id.clone()), b.record)
                        .await
                }
                (_, Some(member)) => {
                    s.placing
                        .web_dial_as(member, &b.number, Some(call_id.clone()), b.record)
                        .await
                }
                _ => Err(PlaceError::NotFound("card")),
            };
            match result {
                Ok(_) => {
                    info!(serial = %b.serial, call = %call_id, attempt = b.attempts + 1, "booking fired");
                    placed += 1;
                }
                Err(e) => {
                    s.inflight
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&call_id);
                    let cause = match &e {
                        PlaceError::Refused(r) => r.code().to_string(),
                        PlaceError::BadNumber(_) => "bad-number".into(),
                        PlaceError::NotFound(_) => "not-found".into(),
                        PlaceError::NothingToRing(_) => "nothing-to-ring".into(),
                        PlaceError::Stopped => "switch-stopping".into(),
                    };
                    info!(serial = %b.serial, %cause, "booking refused when it fell due");
                    let (id, cid) = (b.id, call_id.clone());
                    let _ = s
                        .store
                        .run(move |st| st.finish_attempt(id, &cid, &cause, "refused", None))
                        .await;
                }
            }
        }
        placed
    }

    /// A step of a placed call: the end of a booking's attempt decides what comes next.
    pub async fn on_progress(&self, p: &Progress) {
        if p.state != "ended" {
            return;
        }
        let Some(f) = self
            .0
            .inflight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&p.id)
        else {
            return;
        };
        let cause = p
            .cause
            .as_ref()
            .map(|c| c.code())
            .unwrap_or("ended")
            .to_string();
        let again = matches!(cause.as_str(), "busy" | "no-answer") && f.attempts < f.max_attempts;
        let state = if cause == "hung-up" { "done" } else { "failed" };
        let retry = again.then(|| p.at_ms + f.retry_secs * 1000);
        let (id, call) = (f.booking, p.id.clone());
        let c = cause.clone();
        if let Err(e) = self
            .0
            .store
            .run(move |st| st.finish_attempt(id, &call, &c, state, retry))
            .await
        {
            warn!(call = %p.id, error = %e, "bookings: cannot record an attempt's end");
        }
        info!(call = %p.id, %cause, retry = again, "booking attempt ended");
        self.0.wake.notify_one();
    }

    /// The scheduler's task: what this node left half-done is settled first, then due
    /// bookings fire as their time comes.
    pub fn spawn(&self) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let node = me.0.node.clone();
            match me.0.store.run(move |s| s.recover_bookings(&node)).await {
                Ok((0, 0)) => {}
                Ok((interrupted, released)) => {
                    warn!(interrupted, released, "bookings left by the last run")
                }
                Err(e) => warn!(error = %e, "bookings: cannot recover the last run's"),
            }
            let mut steps = me.0.placing.hub().subscribe();
            // When to look at the store next: the next due time, or at once when woken.
            let mut next_check = 0i64;
            loop {
                let now = me.0.store.clock().unix_ms();
                if now >= next_check {
                    me.tick(now).await;
                    let next = me.0.store.run(|s| s.next_due_ms()).await.ok().flatten();
                    let cap = me.0.store.clock().unix_ms() + MAX_SLEEP.as_millis() as i64;
                    next_check = next.unwrap_or(cap).min(cap);
                }
                let wait = (next_check - me.0.store.clock().unix_ms()).max(0) as u64;
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(wait)) => {}
                    _ = me.0.wake.notified() => next_check = 0,
                    step = steps.recv() => match step {
                        Ok(p) => me.on_progress(&p).await,
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                            warn!(missed = n, "bookings: progress steps were missed");
                        }
                        Err(_) => return,
                    },
                }
            }
        })
    }
}
