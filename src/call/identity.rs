//! How the switch names itself to the parties of a call: its Contact and the address a
//! leg on each transport reaches it at (the TLS listener for phones on TLS), and the
//! methods it serves (Allow).

use super::Manager;
use std::net::SocketAddr;

/// Methods we accept, for Allow headers.
const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO";
/// The same with the registrar (a switch that keeps accounts).
const ALLOW_REGISTER: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO, REGISTER";

impl Manager {
    pub(super) fn contact(&self, transport: crate::sip::Transport) -> String {
        contact_for(self.advertised_for(transport), transport)
    }

    /// Where a leg on `transport` reaches the switch: the TLS listener for TLS, else the
    /// SIP address.
    pub(super) fn advertised_for(&self, transport: crate::sip::Transport) -> SocketAddr {
        advertised_on(transport, self.settings.advertised, self.tls_advertised)
    }

    /// Where the leg that client transaction `tx` went out on reaches the switch.
    pub(super) fn leg_advertised(&self, tx: crate::transaction::TxId) -> SocketAddr {
        let transport = self.tx.client_peer(tx).map(|p| p.transport);
        self.advertised_for(transport.unwrap_or(crate::sip::Transport::Udp))
    }

    /// The switch also listens for SIP over TLS, reached at `advertised`.
    pub fn set_tls_address(&mut self, advertised: SocketAddr) {
        self.tls_advertised = Some(advertised);
    }

    /// The methods this switch serves, for Allow headers.
    pub(super) fn allow(&self) -> &'static str {
        if self.settings.billing.is_some() {
            ALLOW_REGISTER
        } else {
            ALLOW
        }
    }
}

/// Our Contact for a leg on `transport`.
pub(crate) fn contact_for(advertised: SocketAddr, transport: crate::sip::Transport) -> String {
    match transport {
        crate::sip::Transport::Udp => format!("<sip:freecall@{advertised}>"),
        crate::sip::Transport::Tcp => format!("<sip:freecall@{advertised};transport=tcp>"),
        crate::sip::Transport::Tls => format!("<sip:freecall@{advertised};transport=tls>"),
    }
}

/// Where a leg on `transport` reaches a switch advertised at `sip`, and at `tls` for SIP
/// over TLS when it listens for it (for callers that hold a call borrowed).
pub(super) fn advertised_on(
    transport: crate::sip::Transport,
    sip: SocketAddr,
    tls: Option<SocketAddr>,
) -> SocketAddr {
    match (transport, tls) {
        (crate::sip::Transport::Tls, Some(tls)) => tls,
        _ => sip,
    }
}
