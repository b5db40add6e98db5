//! Registration trunks: a carrier that wants the switch to register (`register = true`)
//! gets a REGISTER for the trunk's username at start, answered challenges (the trunk's
//! credentials, once per request), a new one before the granted time runs out, retries
//! with a growing pause after a failure (30 s, doubling, at most 30 minutes), and an
//! un-REGISTER (`Expires: 0`) when the switch stops. Calls from a registered carrier are
//! its inbound calls (see admission). Sans-IO: times come in as `now`.

use super::{ClientPurpose, Manager};
use crate::sip::{Message, Method, OutRequest};
use crate::transaction::TxId;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// The longest registration the switch asks for, whatever a registrar's 423 says.
const MAX_EXPIRES: Duration = Duration::from_secs(86_400);
/// The first pause after a failed registration; it doubles up to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_secs(30);
const MAX_BACKOFF: Duration = Duration::from_secs(1800);
/// A trunk whose host name has no address yet tries to register again this soon.
const UNRESOLVED_RETRY: Duration = Duration::from_secs(5);

/// Where a trunk's registration stands (the metrics' and the health endpoint's words).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegState {
    Registering,
    Registered,
    Failed,
    Unregistered,
}

impl RegState {
    pub fn as_str(self) -> &'static str {
        match self {
            RegState::Registering => "registering",
            RegState::Registered => "registered",
            RegState::Failed => "failed",
            RegState::Unregistered => "unregistered",
        }
    }
}

/// One trunk's registration.
#[derive(Debug)]
pub(super) struct Registration {
    state: RegState,
    /// When to send the next REGISTER (None: one is out, or the switch is stopping).
    next_at: Option<Instant>,
    backoff: Duration,
    call_id: String,
    from_tag: String,
    cseq: u32,
    tx: Option<TxId>,
    /// The REGISTER out is the un-REGISTER of a stopping switch.
    leaving: bool,
    /// The registrar's `Min-Expires` (its 423), when longer than the trunk asks for.
    at_least: Option<Duration>,
    /// Where the REGISTER out went (a silent one's address is passed over next time).
    sent_to: Option<crate::transaction::Peer>,
}

/// Every trunk's registration, by trunk index (None: the trunk does not register).
#[derive(Debug, Default)]
pub(super) struct Registrations {
    pub(super) slots: Vec<Option<Registration>>,
    /// Changes (trunk name, state) for the operator, drained by the driver.
    pub(super) changes: Vec<(String, RegState)>,
}

impl Manager {
    /// A new trunk list: each registering trunk registers at `now` (at once when the
    /// manager runs; at start, as soon as the driver gives the clock).
    pub(super) fn reset_registrations(&mut self, now: Option<Instant>) {
        let slots = self
            .routing
            .trunks
            .iter()
            .map(|t| {
                t.register.map(|_| Registration {
                    state: RegState::Registering,
                    next_at: now,
                    backoff: FIRST_BACKOFF,
                    call_id: format!("{}@freecall", self.tx.new_token()),
                    from_tag: self.tx.new_token(),
                    cseq: 0,
                    tx: None,
                    leaving: false,
                    at_least: None,
                    sent_to: None,
                })
            })
            .collect();
        self.registrations.slots = slots;
    }

    /// After a reload: a trunk that registers as before (same name, address, account and
    /// time) keeps its registration, wherever it now stands in the list, and a REGISTER
    /// of it that is out is answered into its new place; the others start anew. Pings
    /// out are forgotten.
    pub(super) fn carry_registrations(&mut self, old: &[crate::routing::Trunk]) {
        let mut kept: HashMap<String, (usize, Registration)> = old
            .iter()
            .zip(std::mem::take(&mut self.registrations.slots))
            .enumerate()
            .filter_map(|(i, (t, r))| Some((t.name.clone(), (i, r?))))
            .collect();
        self.reset_registrations(self.wall_anchor.map(|(at, _)| at));
        let mut moved: HashMap<usize, usize> = HashMap::new();
        for (i, t) in self.routing.trunks.iter().enumerate() {
            if let Some((was, reg)) = kept.remove(&t.name)
                && old[was].dest == t.dest
                && old[was].register == t.register
                && old[was].register_user == t.register_user
                && t.register.is_some()
            {
                self.registrations.slots[i] = Some(reg);
                moved.insert(was, i);
            }
        }
        self.client_txs.retain(|_, (_, purpose)| match purpose {
            ClientPurpose::Register { index } => match moved.get(index) {
                Some(&now_at) => {
                    *index = now_at;
                    true
                }
                None => false,
            },
            // A ping of the old list would be answered (a challenge, its result) for
            // whichever trunk now has its index: forgotten, the new list is pinged anew.
            ClientPurpose::Ping { .. } => false,
            _ => true,
        });
    }

    /// Registrations whose time has come (the driver gave a clock: none wait for one).
    pub(super) fn start_registrations(&mut self, now: Instant) {
        for slot in self.registrations.slots.iter_mut().flatten() {
            if slot.next_at.is_none() && slot.tx.is_none() && !slot.leaving {
                slot.next_at = Some(now);
            }
        }
    }

    pub(super) fn next_registration(&self) -> Option<Instant> {
        self.registrations
            .slots
            .iter()
            .flatten()
            .filter_map(|r| r.next_at)
            .min()
    }

    /// Send every REGISTER that is due.
    pub(super) fn registrations_due(&mut self, now: Instant) {
        for index in 0..self.registrations.slots.len() {
            let due = self.registrations.slots[index]
                .as_ref()
                .is_some_and(|r| r.next_at.is_some_and(|at| at <= now) && r.tx.is_none());
            if due {
                let expires = self.asked_expiry(index);
                self.send_register(now, index, expires);
            }
        }
    }

    fn send_register(&mut self, now: Instant, index: usize, expires: Duration) {
        let user = self.routing.trunks[index].register_user.clone();
        // A trunk given by host name registers at the first of its addresses that is up,
        // in its own domain; one whose name is not resolved yet tries again shortly.
        let first_live = self.live_targets(index, now).first().copied();
        let Some(peer) = first_live.or_else(|| self.trunk_targets(index).first().copied()) else {
            if let Some(slot) = self.registrations.slots[index].as_mut() {
                slot.next_at = Some(now + UNRESOLVED_RETRY);
            }
            return;
        };
        let advertised = self.advertised_for(peer.transport);
        let domain = match &self.routing.trunks[index].dest {
            crate::routing::TrunkDest::Named(name) => name.uri_host(),
            crate::routing::TrunkDest::Fixed(_) => peer.addr.to_string(),
        };
        let branch = self.tx.new_branch();
        let Some(slot) = self.registrations.slots[index].as_mut() else {
            return;
        };
        slot.cseq += 1;
        let aor = match &self.routing.trunks[index].dest {
            crate::routing::TrunkDest::Named(name) => format!("sip:{user}@{}", name.host),
            crate::routing::TrunkDest::Fixed(_) => format!("sip:{user}@{}", peer.addr.ip()),
        };
        let request = OutRequest {
            method: Method::Register,
            uri: format!("sip:{domain}"),
            via: crate::dialog::via(peer.transport, advertised, &branch),
            branch,
            max_forwards: 70,
            from: format!("<{aor}>;tag={}", slot.from_tag),
            to: format!("<{aor}>"),
            call_id: slot.call_id.clone(),
            cseq: slot.cseq,
            route: Vec::new(),
            contact: Some(format!(
                "<sip:{user}@{advertised}{}>",
                match peer.transport {
                    crate::sip::Transport::Tcp => ";transport=tcp",
                    crate::sip::Transport::Tls => ";transport=tls",
                    crate::sip::Transport::Udp => "",
                }
            )),
            extra: vec![
                ("Expires".into(), expires.as_secs().to_string()),
                ("User-Agent".into(), self.settings.user_agent.clone()),
            ],
            content_type: None,
            body: Vec::new(),
        };
        slot.next_at = None;
        slot.leaving = expires.is_zero();
        slot.sent_to = Some(peer);
        let tx = self.tx.send_request(now, peer, request);
        slot.tx = Some(tx);
        self.client_txs
            .insert(tx, (0, ClientPurpose::Register { index }));
    }

    /// A final answer to a REGISTER (a challenge was answered before this), or its
    /// timeout (`resp` None: 408).
    pub(super) fn registration_answered(
        &mut self,
        now: Instant,
        index: usize,
        tx: TxId,
        resp: Option<&Message>,
    ) {
        let code = resp.and_then(Message::status).unwrap_or(408);
        let asked = self.asked_expiry(index);
        let name = self
            .routing
            .trunks
            .get(index)
            .map(|t| t.name.clone())
            .unwrap_or_default();
        let Some(Some(slot)) = self.registrations.slots.get_mut(index) else {
            return;
        };
        if slot.tx != Some(tx) {
            return;
        }
        slot.tx = None;
        let silent = resp.is_none().then_some(slot.sent_to).flatten();
        let state = if slot.leaving {
            info!(trunk = %name, code, "unregistered");
            RegState::Unregistered
        } else if let Some(min) = (code == 423)
            .then(|| resp.and_then(|r| r.header("Min-Expires")))
            .flatten()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs)
            .filter(|min| *min > asked && *min <= MAX_EXPIRES)
        {
            // 423 Interval Too Brief (RFC 3261 10.2.8): asked again at once for the
            // registrar's minimum.
            info!(trunk = %name, min_expires = min.as_secs(), "registrar wants a longer registration: asking again");
            slot.at_least = Some(min);
            slot.next_at = Some(now);
            return;
        } else if (200..300).contains(&code) {
            // Never longer than asked (a registrar's odd number cannot overflow a timer).
            let granted = resp
                .and_then(granted_expiry)
                .unwrap_or(asked)
                .min(asked)
                .max(Duration::from_secs(2));
            // Again before it runs out: a minute early, or halfway for a short one.
            let early = (granted / 2).min(Duration::from_secs(60));
            slot.next_at = Some(now + granted - early);
            slot.backoff = FIRST_BACKOFF;
            if slot.state != RegState::Registered {
                info!(trunk = %name, expires = granted.as_secs(), "registered");
            }
            RegState::Registered
        } else {
            warn!(trunk = %name, code, retry_secs = slot.backoff.as_secs(), "registration refused");
            slot.next_at = Some(now + slot.backoff);
            slot.backoff = (slot.backoff * 2).min(MAX_BACKOFF);
            RegState::Failed
        };
        if slot.state != state {
            slot.state = state;
            self.registrations.changes.push((name, state));
        }
        // A registrar that did not answer at all: its other addresses are tried first.
        if let Some(peer) = silent {
            self.target_failed(peer, now);
        }
    }

    /// How long trunk `index` asks to be registered: its `register_expires`, or the
    /// registrar's minimum when that is longer.
    fn asked_expiry(&self, index: usize) -> Duration {
        let own = self
            .routing
            .trunks
            .get(index)
            .and_then(|t| t.register)
            .unwrap_or_default();
        let at_least = self
            .registrations
            .slots
            .get(index)
            .and_then(|s| s.as_ref())
            .and_then(|s| s.at_least);
        at_least.map_or(own, |min| own.max(min))
    }

    /// The REGISTER was challenged and sent again as `tx` with CSeq `cseq`.
    pub(super) fn registration_resent(&mut self, index: usize, tx: TxId, cseq: u32) {
        if let Some(Some(slot)) = self.registrations.slots.get_mut(index) {
            slot.tx = Some(tx);
            slot.cseq = cseq;
        }
    }

    /// Stopping: every registered trunk is told to forget the switch (`Expires: 0`).
    pub fn unregister_all(&mut self, now: Instant) {
        for index in 0..self.registrations.slots.len() {
            let registered = self.registrations.slots[index]
                .as_ref()
                .is_some_and(|r| r.state == RegState::Registered && !r.leaving);
            if let Some(slot) = self.registrations.slots[index].as_mut() {
                slot.next_at = None;
                if let Some(tx) = slot.tx.take() {
                    self.client_txs.remove(&tx);
                }
            }
            if registered {
                self.send_register(now, index, Duration::ZERO);
            }
        }
    }

    /// Un-REGISTERs still waiting for their answer.
    pub fn unregistering(&self) -> bool {
        self.registrations
            .slots
            .iter()
            .flatten()
            .any(|r| r.leaving && r.tx.is_some())
    }

    /// Registration changes since the last call: (trunk name, state).
    pub fn take_registration_changes(&mut self) -> Vec<(String, RegState)> {
        std::mem::take(&mut self.registrations.changes)
    }

    /// Whether `addr` is a trunk the switch registers with: its calls are the trunk's
    /// inbound calls.
    pub(super) fn registered_trunk_at(&self, addr: std::net::IpAddr) -> Option<&str> {
        self.routing
            .trunks
            .iter()
            .zip(&self.registrations.slots)
            .enumerate()
            .find(|(i, (_, r))| {
                r.as_ref().is_some_and(|r| r.state == RegState::Registered)
                    && self.trunk_has_ip(*i, addr)
            })
            .map(|(_, (t, _))| t.name.as_str())
    }

    /// The number a registered trunk at `addr` registered (its calls in must be to it).
    pub(super) fn registered_number_at(&self, addr: std::net::IpAddr) -> Option<&str> {
        let name = self.registered_trunk_at(addr)?;
        self.routing
            .trunks
            .iter()
            .find(|t| t.name == name)
            .map(|t| t.register_user.as_str())
    }
}

/// The time the registrar granted: the `expires` parameter of our Contact, else the
/// Expires header.
fn granted_expiry(resp: &Message) -> Option<Duration> {
    let from_contact = resp
        .headers_named("Contact")
        .flat_map(crate::sip::split_list)
        .find_map(|c| {
            c.split(';').skip(1).find_map(|p| {
                let (k, v) = p.split_once('=')?;
                k.trim()
                    .eq_ignore_ascii_case("expires")
                    .then(|| v.trim().parse::<u64>().ok())
                    .flatten()
            })
        });
    from_contact
        .or_else(|| resp.header("Expires").and_then(|v| v.trim().parse().ok()))
        .map(Duration::from_secs)
}
