//! Trunk health: OPTIONS to every address of every trunk every `sip.trunk_ping_secs`; an
//! address that does not answer (or answers 5xx) is skipped until it answers again, and a
//! trunk none of whose addresses answers is skipped by routing. An address that let an
//! INVITE time out is skipped for [`FAILED_FOR`], one that answered 503 with Retry-After
//! until then. A trunk given by host name has the addresses DNS last gave (`crate::dns`),
//! none before the first answer; each attempt takes them by SRV priority, equal
//! priorities in turn by weight.

use super::{ClientPurpose, Manager, contact_for};
use crate::routing::TrunkDest;
use crate::routing::{Hop, HostName};
use crate::sip::Method;
use crate::transaction::Peer;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};
use tracing::info;

/// How long an address that let an INVITE time out is passed over by new attempts.
pub(super) const FAILED_FOR: Duration = Duration::from_secs(30);

/// Why an address is skipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Down {
    /// It did not answer its last ping: until a ping is answered.
    Ping,
    /// An INVITE to it timed out: until then.
    Failed(Instant),
    /// It answered 503 with Retry-After: until then, whatever its pings say.
    Blocked(Instant),
}

/// What the OPTIONS pings found out.
#[derive(Default)]
pub(super) struct TrunkHealth {
    /// Per trunk, whether any of its addresses answered its last ping (what the
    /// operator's gauge shows).
    pub(super) up: Vec<bool>,
    /// Pings out, by trunk and address.
    pub(super) pinging: HashSet<(usize, Peer)>,
    /// Addresses known not to answer.
    pub(super) down: HashMap<Peer, Down>,
    /// Host names' addresses, as DNS last gave them.
    pub(super) resolved: HashMap<HostName, Vec<Hop>>,
    /// Each named trunk's addresses' running credit for their turns by SRV weight.
    pub(super) hop_credit: HashMap<(usize, Peer), i64>,
    /// A trunk that answered 503 with Retry-After is skipped until then.
    pub(super) blocked_until: Vec<Option<Instant>>,
    /// When each trunk's INVITEs of the last second went out (for `calls_per_second`).
    pub(super) recent: Vec<std::collections::VecDeque<Instant>>,
    /// Bumped when routing is replaced: answers to older pings are ignored.
    pub(super) generation: u64,
    pub(super) next_ping: Option<Instant>,
    /// Changes (trunk name, up) for the operator, drained by the driver.
    pub(super) changes: Vec<(String, bool)>,
    /// Per rank of equal trunks (by their indices): each one's running credit for smooth
    /// weighted round robin.
    pub(super) shares: std::collections::HashMap<Vec<usize>, Vec<i64>>,
}

impl TrunkHealth {
    /// A new trunk list: every trunk up, none being pinged, older pings' answers ignored.
    pub(super) fn reset(&mut self, trunks: usize) {
        self.up = vec![true; trunks];
        self.pinging.clear();
        self.down.clear();
        self.hop_credit.clear();
        self.blocked_until = vec![None; trunks];
        self.recent = vec![Default::default(); trunks];
        self.shares.clear();
        self.generation += 1;
    }
}

impl Manager {
    /// The order a new call tries `route`'s trunks in: rank by rank; within a rank, first
    /// the trunk whose turn it is by weight (smooth weighted round robin: with weights 3
    /// and 1, four calls go a, a, b, a), then the others of the rank as configured.
    pub(super) fn route_order(&mut self, route: &crate::routing::Route) -> Vec<usize> {
        let mut order = Vec::with_capacity(route.trunks.len());
        for rank in &route.ranks {
            if rank.len() < 2 {
                order.extend(rank);
                continue;
            }
            let weights: Vec<i64> = rank
                .iter()
                .map(|&i| {
                    self.routing
                        .trunks
                        .get(i)
                        .map_or(1, |t| i64::from(t.weight))
                })
                .collect();
            let credit = self
                .trunks
                .shares
                .entry(rank.clone())
                .or_insert_with(|| vec![0; rank.len()]);
            let first = smooth_turn(credit, &weights);
            order.push(rank[first]);
            order.extend(
                rank.iter()
                    .enumerate()
                    .filter(|&(j, _)| j != first)
                    .map(|(_, &i)| i),
            );
        }
        order
    }

    /// Trunks whose state changed since the last call: (name, up).
    pub fn take_trunk_changes(&mut self) -> Vec<(String, bool)> {
        std::mem::take(&mut self.trunks.changes)
    }

    /// Whether trunk `index` answered its last ping (or has not been pinged yet) and is
    /// not blocked by its own `503` with `Retry-After`.
    pub(super) fn trunk_is_up(&self, index: usize, now: Instant) -> bool {
        let blocked = self
            .trunks
            .blocked_until
            .get(index)
            .copied()
            .flatten()
            .is_some_and(|until| now < until);
        !blocked && !self.live_targets(index, now).is_empty()
    }

    /// A host name's addresses, from the DNS keeper: new attempts and pings use them.
    pub fn set_resolved(&mut self, name: HostName, targets: Vec<Hop>) {
        self.trunks.resolved.insert(name, targets);
    }

    /// Every address of trunk `index` with its priority and weight (a named trunk's as
    /// DNS last gave them; none before its first answer).
    fn trunk_hops(&self, index: usize) -> Vec<Hop> {
        match self.routing.trunks.get(index).map(|t| &t.dest) {
            Some(TrunkDest::Fixed(peer)) => vec![Hop {
                peer: *peer,
                priority: 0,
                weight: 1,
            }],
            Some(TrunkDest::Named(name)) => {
                self.trunks.resolved.get(name).cloned().unwrap_or_default()
            }
            None => Vec::new(),
        }
    }

    /// Whether trunk `index` has an address at `ip` (without building its list: this is
    /// asked of every new request a flood could send).
    pub(super) fn trunk_has_ip(&self, index: usize, ip: std::net::IpAddr) -> bool {
        match self.routing.trunks.get(index).map(|t| &t.dest) {
            Some(TrunkDest::Fixed(peer)) => peer.addr.ip() == ip,
            Some(TrunkDest::Named(name)) => self
                .trunks
                .resolved
                .get(name)
                .is_some_and(|hops| hops.iter().any(|h| h.peer.addr.ip() == ip)),
            None => false,
        }
    }

    /// The trunk the switch reaches at `peer`, by name: the driver opens a TLS
    /// connection only to such a trunk (checking the certificate against it) and counts
    /// failed connections by trunk.
    pub fn trunk_name_at(&self, peer: Peer) -> Option<&str> {
        let index = self.trunk_at(peer)?;
        Some(self.routing.trunks[index].name.as_str())
    }

    /// Every address of trunk `index`.
    pub(super) fn trunk_targets(&self, index: usize) -> Vec<Peer> {
        self.trunk_hops(index).into_iter().map(|h| h.peer).collect()
    }

    fn usable(&self, peer: &Peer, now: Instant) -> bool {
        match self.trunks.down.get(peer) {
            None => true,
            Some(Down::Ping) => false,
            Some(Down::Failed(until) | Down::Blocked(until)) => now >= *until,
        }
    }

    /// The addresses of trunk `index` a new attempt may use: those not known to be down.
    pub(super) fn live_targets(&self, index: usize, now: Instant) -> Vec<Peer> {
        let mut all = self.trunk_targets(index);
        all.retain(|p| self.usable(p, now));
        all
    }

    /// Whether trunk `index` has an address at all (its host name resolved).
    pub(super) fn has_targets(&self, index: usize) -> bool {
        !self.trunk_hops(index).is_empty()
    }

    /// The addresses a new attempt on trunk `index` tries, in order: the live ones (all,
    /// when none is: the route had nothing better), by priority; among equal priorities
    /// first the one whose turn it is by weight, then the others as DNS gave them.
    pub(super) fn attempt_targets(&mut self, index: usize, now: Instant) -> Vec<Peer> {
        let all = self.trunk_hops(index);
        let mut hops: Vec<Hop> = all
            .iter()
            .copied()
            .filter(|h| self.usable(&h.peer, now))
            .collect();
        if hops.is_empty() {
            hops = all;
        }
        hops.sort_by_key(|h| h.priority);
        let mut order = Vec::with_capacity(hops.len());
        for group in hops.chunk_by(|a, b| a.priority == b.priority) {
            if group.len() < 2 {
                order.extend(group.iter().map(|h| h.peer));
                continue;
            }
            let weights: Vec<i64> = group.iter().map(|h| i64::from(h.weight)).collect();
            let mut credit: Vec<i64> = group
                .iter()
                .map(|h| {
                    self.trunks
                        .hop_credit
                        .get(&(index, h.peer))
                        .copied()
                        .unwrap_or(0)
                })
                .collect();
            let first = smooth_turn(&mut credit, &weights);
            for (h, c) in group.iter().zip(credit) {
                self.trunks.hop_credit.insert((index, h.peer), c);
            }
            order.push(group[first].peer);
            order.extend(
                group
                    .iter()
                    .enumerate()
                    .filter(|&(j, _)| j != first)
                    .map(|(_, h)| h.peer),
            );
        }
        order
    }

    /// The host of a trunk's Request-URI: its name as configured, or its address.
    pub(super) fn trunk_uri_host(&self, index: usize, peer: Peer) -> String {
        match self.routing.trunks.get(index).map(|t| &t.dest) {
            Some(TrunkDest::Named(name)) => name.uri_host(),
            _ => peer.addr.to_string(),
        }
    }

    /// An INVITE to `peer` got no answer at all: new attempts pass it over for a while.
    pub(super) fn target_failed(&mut self, peer: Peer, now: Instant) {
        let entry = self.trunks.down.entry(peer).or_insert(Down::Failed(now));
        if let Down::Failed(until) | Down::Blocked(until) = entry {
            *until = (*until).max(now + FAILED_FOR);
        }
        tracing::warn!(target = %peer.addr, secs = FAILED_FOR.as_secs(), "trunk address did not answer: others are tried first for a while");
    }

    /// The trunk that `peer` belongs to (the first, if two share an address).
    pub(super) fn trunk_at(&self, peer: Peer) -> Option<usize> {
        (0..self.routing.trunks.len()).find(|&i| self.trunk_targets(i).contains(&peer))
    }

    /// Whether trunk `index` may take one more call now: below its `max_calls` (the legs
    /// whose current attempt is on it, counted when it has a cap) and its
    /// `calls_per_second`. Taking it counts the call.
    pub(super) fn take_trunk(&mut self, index: usize, now: Instant) -> bool {
        let Some(t) = self.routing.trunks.get(index) else {
            return false;
        };
        let (max_calls, cps) = (t.max_calls, t.calls_per_second);
        if max_calls > 0 {
            let inbound = self
                .calls
                .values()
                .filter(|c| {
                    c.direct.is_none()
                        && c.b.dialog.is_some()
                        && c.b.trunks.get(c.b.trunk) == Some(&index)
                })
                .count();
            let placed: usize = self.placed.values().map(|p| p.legs_on_trunk(index)).sum();
            if inbound + placed >= max_calls {
                return false;
            }
        }
        if let Some(recent) = self.trunks.recent.get_mut(index) {
            while recent.front().is_some_and(|&at| {
                now.saturating_duration_since(at) >= std::time::Duration::from_secs(1)
            }) {
                recent.pop_front();
            }
            if cps > 0 && recent.len() >= cps {
                return false;
            }
            if cps > 0 {
                recent.push_back(now);
            }
        }
        true
    }

    /// A trunk refused a call with `503` and `Retry-After: secs`: new calls skip it until
    /// then (at most an hour), as RFC 3261 21.5.4 asks of a client.
    /// A trunk with several addresses (a host name) has only the one that answered so
    /// blocked; its others keep taking calls.
    pub(super) fn trunk_busy_for(
        &mut self,
        index: usize,
        peer: Option<Peer>,
        now: Instant,
        resp: &crate::sip::Message,
    ) {
        let Some(secs) = resp
            .header("Retry-After")
            .and_then(|v| v.split([';', '(']).next())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|s| *s > 0)
        else {
            return;
        };
        let secs = secs.min(3600);
        if let Some(peer) = peer
            && self.trunk_targets(index).len() > 1
        {
            let until = now + Duration::from_secs(secs);
            self.trunks.down.insert(peer, Down::Blocked(until));
            tracing::warn!(target = %peer.addr, secs, "trunk address answered 503 with Retry-After: its other addresses take calls until then");
            return;
        }
        if let Some(slot) = self.trunks.blocked_until.get_mut(index) {
            *slot = Some(now + std::time::Duration::from_secs(secs));
            let name = &self.routing.trunks[index].name;
            tracing::warn!(trunk = %name, secs, "trunk answered 503 with Retry-After: skipped by routing until then");
        }
    }

    /// OPTIONS to every address of every trunk not already being pinged.
    pub(super) fn ping_trunks(&mut self, now: Instant) {
        for index in 0..self.routing.trunks.len() {
            for peer in self.trunk_targets(index) {
                if !self.trunks.pinging.insert((index, peer)) {
                    continue;
                }
                let advertised = self.advertised_for(peer.transport);
                let branch = self.tx.new_branch();
                let tag = self.tx.new_token();
                let uri = format!("sip:{}", self.trunk_uri_host(index, peer));
                let request = crate::sip::OutRequest {
                    method: Method::Options,
                    uri: uri.clone(),
                    via: crate::dialog::via(peer.transport, advertised, &branch),
                    branch,
                    max_forwards: 70,
                    from: format!("<sip:freecall@{}>;tag={tag}", advertised.ip()),
                    to: format!("<{uri}>"),
                    call_id: format!("{}@freecall", self.tx.new_token()),
                    cseq: 1,
                    route: Vec::new(),
                    contact: Some(contact_for(advertised, peer.transport)),
                    extra: vec![("User-Agent".into(), self.settings.user_agent.clone())],
                    content_type: None,
                    body: Vec::new(),
                };
                let tx = self.tx.send_request(now, peer, request);
                self.client_txs.insert(
                    tx,
                    (
                        0,
                        ClientPurpose::Ping {
                            index,
                            peer,
                            generation: self.trunks.generation,
                        },
                    ),
                );
            }
        }
    }

    /// A ping's result: any answer but 5xx means the address is up; the trunk is up while
    /// any of its addresses is.
    pub(super) fn trunk_answered(
        &mut self,
        now: Instant,
        index: usize,
        peer: Peer,
        generation: u64,
        up: bool,
    ) {
        if generation != self.trunks.generation || index >= self.trunks.up.len() {
            return;
        }
        self.trunks.pinging.remove(&(index, peer));
        // A carrier's own Retry-After stands whatever its pings say.
        let blocked =
            matches!(self.trunks.down.get(&peer), Some(Down::Blocked(until)) if now < *until);
        if !blocked {
            if up {
                self.trunks.down.remove(&peer);
            } else {
                self.trunks.down.insert(peer, Down::Ping);
            }
        }
        let any = self
            .trunk_targets(index)
            .iter()
            .any(|p| self.trunks.down.get(p) != Some(&Down::Ping));
        if self.trunks.up[index] != any {
            self.trunks.up[index] = any;
            let name = self.routing.trunks[index].name.clone();
            if any {
                info!(trunk = %name, "trunk answers OPTIONS again: back in routing");
            } else {
                tracing::warn!(trunk = %name, "trunk does not answer OPTIONS: skipped by routing");
            }
            self.trunks.changes.push((name, any));
        }
    }
}

/// Smooth weighted round robin (as nginx shares upstreams): each one's credit grows by
/// its weight, the richest goes first and pays the total. With weights 3 and 1, four turns
/// go a, a, b, a. Weight 0 never goes first while another has weight.
fn smooth_turn(credit: &mut [i64], weights: &[i64]) -> usize {
    let total: i64 = weights.iter().sum();
    for (c, w) in credit.iter_mut().zip(weights) {
        *c += w;
    }
    let first = (0..credit.len())
        .max_by_key(|&j| (credit[j], std::cmp::Reverse(j)))
        .unwrap_or(0);
    credit[first] -= total;
    first
}
