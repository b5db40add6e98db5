//! SDP rewriting for media anchoring (RFC 4566 through the `sdp` crate).
//!
//! The far end's SDP is read for where it receives media, then rewritten to name our
//! address and port so that media flows through the switch. ICE candidates and `a=rtcp`
//! are removed (they would name the far end's addresses); direction attributes
//! (sendonly/recvonly/inactive for hold) pass through untouched. Only the first audio
//! stream is anchored: other streams are refused with port 0.

use super::Remote;
use sdp::SessionDescription;
use std::io::Cursor;
use std::net::{IpAddr, SocketAddr};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SdpError {
    #[error("unparsable SDP: {0}")]
    Parse(String),
    #[error("SDP has no audio stream")]
    NoAudio,
    #[error("SDP connection address is not an IP address")]
    Address,
}

/// Parse `body`, return the rewritten SDP (pointing at `local`) and the far end's media
/// addresses.
pub fn rewrite(body: &[u8], local: SocketAddr) -> Result<(Vec<u8>, Remote), SdpError> {
    let mut sd = SessionDescription::unmarshal(&mut Cursor::new(body))
        .map_err(|e| SdpError::Parse(e.to_string()))?;
    let session_addr = sd
        .connection_information
        .as_ref()
        .and_then(|c| c.address.as_ref())
        .map(|a| a.address.clone());
    let audio = sd
        .media_descriptions
        .iter()
        .position(|m| m.media_name.media == "audio" && m.media_name.port.value > 0)
        .ok_or(SdpError::NoAudio)?;

    let m = &sd.media_descriptions[audio];
    let addr_text = m
        .connection_information
        .as_ref()
        .and_then(|c| c.address.as_ref())
        .map(|a| a.address.clone())
        .or(session_addr.clone())
        .ok_or(SdpError::Address)?;
    // A connection address may carry a TTL ("224.2.1.1/127"); unicast ones do not.
    let ip: IpAddr = addr_text
        .split('/')
        .next()
        .and_then(|a| a.parse().ok())
        .ok_or(SdpError::Address)?;
    let port = u16::try_from(m.media_name.port.value).map_err(|_| SdpError::Address)?;
    let mux = m.attributes.iter().any(|a| a.key == "rtcp-mux");
    let rtcp_port = m
        .attributes
        .iter()
        .find(|a| a.key == "rtcp")
        .and_then(|a| a.value.as_deref())
        .and_then(|v| v.split_whitespace().next())
        .and_then(|p| p.parse::<u16>().ok());
    let on_hold = ip.is_unspecified();
    let remote = if on_hold {
        Remote::default()
    } else {
        let rtp = SocketAddr::new(ip, port);
        let rtcp = if mux {
            rtp
        } else {
            SocketAddr::new(ip, rtcp_port.unwrap_or(port.wrapping_add(1)))
        };
        Remote {
            rtp: Some(rtp),
            rtcp: Some(rtcp),
        }
    };

    // Rewrite towards the other leg.
    let our_ip = local.ip().to_string();
    let addr_type = if local.is_ipv4() { "IP4" } else { "IP6" };
    sd.origin.unicast_address = our_ip.clone();
    sd.origin.address_type = addr_type.into();
    let new_conn = |old: &Option<sdp::description::common::ConnectionInformation>| {
        old.as_ref().map(|c| {
            let mut c = c.clone();
            if let Some(a) = c.address.as_mut() {
                // Hold by 0.0.0.0 (RFC 2543) is kept so the other side also sees hold.
                if !a.address.starts_with("0.0.0.0") {
                    a.address = our_ip.clone();
                    a.ttl = None;
                    a.range = None;
                    c.address_type = addr_type.into();
                }
            }
            c
        })
    };
    sd.connection_information = new_conn(&sd.connection_information);
    for (i, m) in sd.media_descriptions.iter_mut().enumerate() {
        if i == audio {
            m.media_name.port.value = local.port() as isize;
            m.media_name.port.range = None;
            m.connection_information = new_conn(&m.connection_information);
        } else {
            m.media_name.port.value = 0;
        }
        m.attributes.retain(|a| {
            !matches!(
                a.key.as_str(),
                "rtcp"
                    | "candidate"
                    | "end-of-candidates"
                    | "ice-ufrag"
                    | "ice-pwd"
                    | "ice-options"
                    | "remote-candidates"
            )
        });
    }
    sd.attributes.retain(|a| {
        !matches!(
            a.key.as_str(),
            "ice-ufrag" | "ice-pwd" | "ice-options" | "ice-lite"
        )
    });
    Ok((sd.marshal().into_bytes(), remote))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=alice 1 1 IN IP4 10.0.0.5\r\ns=-\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\n\
m=audio 4000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n\
a=rtcp:4001\r\na=candidate:1 1 UDP 1 10.0.0.5 4000 typ host\r\na=sendrecv\r\n\
m=video 5000 RTP/AVP 96\r\n";

    #[test]
    fn points_the_sdp_at_the_switch_and_reads_the_far_end() {
        let local: SocketAddr = "192.0.2.1:20000".parse().unwrap();
        let (out, remote) = rewrite(OFFER.as_bytes(), local).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert_eq!(remote.rtp, Some("10.0.0.5:4000".parse().unwrap()));
        assert_eq!(remote.rtcp, Some("10.0.0.5:4001".parse().unwrap()));
        assert!(out.contains("c=IN IP4 192.0.2.1\r\n"), "{out}");
        assert!(out.contains("o=alice 1 1 IN IP4 192.0.2.1\r\n"));
        assert!(out.contains("m=audio 20000 RTP/AVP 0 8 101\r\n"));
        assert!(out.contains("m=video 0 RTP/AVP 96\r\n"));
        assert!(out.contains("a=sendrecv"));
        assert!(!out.contains("10.0.0.5"), "no far-end address leaks: {out}");
    }

    #[test]
    fn hold_by_zero_address_is_kept() {
        let hold = OFFER.replace("c=IN IP4 10.0.0.5", "c=IN IP4 0.0.0.0");
        let (out, remote) = rewrite(hold.as_bytes(), "192.0.2.1:20000".parse().unwrap()).unwrap();
        assert_eq!(remote, Remote::default());
        assert!(String::from_utf8(out).unwrap().contains("c=IN IP4 0.0.0.0"));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(rewrite(b"hello", "192.0.2.1:20000".parse().unwrap()).is_err());
        let no_audio = "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\nm=video 1 RTP/AVP 96\r\n";
        assert_eq!(
            rewrite(no_audio.as_bytes(), "192.0.2.1:20000".parse().unwrap()),
            Err(SdpError::NoAudio)
        );
    }
}
