//! SDP rewriting for media anchoring (RFC 4566 through the `sdp` crate).
//!
//! The far end's SDP is read for where it receives media, then rewritten to name our
//! address and port so that media flows through the switch. ICE candidates and `a=rtcp`
//! are removed (they would name the far end's addresses); direction attributes
//! (sendonly/recvonly/inactive for hold) pass through untouched. Only the first audio
//! stream is anchored: other streams are refused with port 0.
//!
//! Codec negotiation per leg (`Format`, `offer_for_trunk`, `answer_for_caller`): the B-leg
//! is offered what the caller offered that the trunk takes, then the codecs the switch can
//! transcode to; the caller is answered with the trunk's codec when it offered it (the
//! relay then leaves packets untouched) or with its own preferred codec (transcoded).

use super::Remote;
use super::codec::{Codec, OpusFmtp};
use sdp::SessionDescription;
use sdp::description::common::Attribute;
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
    #[error("no common codec")]
    NoCodec,
}

/// One payload format on the audio stream: `m=` entry with its rtpmap and fmtp.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Format {
    pub pt: u8,
    /// Encoding name as written (`PCMU`, `opus`, `telephone-event`, `G722`, …).
    pub name: String,
    pub clock: u32,
    /// The rtpmap's encoding parameters (channels), if any.
    pub params: Option<String>,
    pub fmtp: Option<String>,
}

impl Format {
    pub fn codec(&self) -> Option<Codec> {
        Codec::from_rtpmap(&self.name, self.clock)
    }
    pub fn is_dtmf(&self) -> bool {
        self.name.eq_ignore_ascii_case("telephone-event")
    }
    /// The same encoding (name and clock), whatever the payload type.
    pub fn same_encoding(&self, other: &Format) -> bool {
        self.name.eq_ignore_ascii_case(&other.name) && self.clock == other.clock
    }
    fn of_codec(codec: Codec, pt: u8) -> Format {
        Format {
            pt,
            name: codec.name().into(),
            clock: codec.clock(),
            params: (codec == Codec::Opus).then(|| "2".into()),
            // We receive narrowband and can use FEC the far end sends.
            fmtp: (codec == Codec::Opus)
                .then(|| "useinbandfec=1;maxplaybackrate=8000;sprop-maxcapturerate=8000".into()),
        }
    }
    fn dtmf(pt: u8, clock: u32) -> Format {
        Format {
            pt,
            name: "telephone-event".into(),
            clock,
            params: None,
            fmtp: Some("0-16".into()),
        }
    }
}

/// What one leg sends and receives once negotiated: its audio format and, if it agreed to
/// RFC 4733, the telephone-event payload type and its clock. The clock is the audio's
/// when the leg offers that, else what it offers: an Opus phone may offer only
/// `telephone-event/8000`. Events keep the audio's timestamp base (RFC 4733 2.1); their
/// durations count in the event clock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LegFormat {
    pub audio: Format,
    pub dtmf: Option<u8>,
    pub dtmf_clock: u32,
}

impl LegFormat {
    pub fn codec(&self) -> Option<Codec> {
        self.audio.codec()
    }
    pub fn opus(&self) -> OpusFmtp {
        self.audio
            .fmtp
            .as_deref()
            .map(OpusFmtp::parse)
            .unwrap_or_default()
    }
    /// The codec's name for records and logs.
    pub fn name(&self) -> String {
        self.audio.name.clone()
    }
    fn from_list(formats: &[Format], audio: &Format) -> LegFormat {
        let dtmf = formats
            .iter()
            .find(|f| f.is_dtmf() && f.clock == audio.clock)
            .or_else(|| formats.iter().find(|f| f.is_dtmf() && f.clock == 8000))
            .or_else(|| formats.iter().find(|f| f.is_dtmf()));
        LegFormat {
            audio: audio.clone(),
            dtmf: dtmf.map(|f| f.pt),
            dtmf_clock: dtmf.map(|f| f.clock).unwrap_or(audio.clock),
        }
    }
}

/// The formats of the first audio stream, in the order given. Static payload types
/// without an rtpmap get their RFC 3551 names.
pub fn formats(body: &[u8]) -> Result<Vec<Format>, SdpError> {
    formats_of(&parse(body)?)
}

/// An offer as the switch first reads it: where the far end receives media, and the
/// formats it offers (one parse).
pub fn read_offer(body: &[u8]) -> Result<(Remote, Vec<Format>), SdpError> {
    let sd = parse(body)?;
    let (_, remote) = far_end(&sd)?;
    Ok((remote, formats_of(&sd)?))
}

fn formats_of(sd: &SessionDescription) -> Result<Vec<Format>, SdpError> {
    let m = sd
        .media_descriptions
        .iter()
        .find(|m| m.media_name.media == "audio" && m.media_name.port.value > 0)
        .ok_or(SdpError::NoAudio)?;
    let attr = |key: &str, pt: u8| {
        m.attributes
            .iter()
            .filter(|a| a.key == key)
            .filter_map(|a| a.value.as_deref())
            .find_map(|v| {
                let (p, rest) = v.split_once(' ')?;
                (p.trim().parse::<u8>().ok()? == pt).then(|| rest.trim().to_string())
            })
    };
    let mut out = Vec::new();
    for f in &m.media_name.formats {
        let Ok(pt) = f.parse::<u8>() else { continue };
        let (name, clock, params) = match attr("rtpmap", pt) {
            Some(map) => {
                let mut parts = map.split('/');
                let name = parts.next().unwrap_or_default().to_string();
                let clock = parts.next().and_then(|c| c.parse().ok()).unwrap_or(8000);
                (name, clock, parts.next().map(str::to_string))
            }
            None => match pt {
                0 => ("PCMU".into(), 8000, None),
                8 => ("PCMA".into(), 8000, None),
                9 => ("G722".into(), 8000, None),
                18 => ("G729".into(), 8000, None),
                _ => continue,
            },
        };
        out.push(Format {
            pt,
            name,
            clock,
            params,
            fmtp: attr("fmtp", pt),
        });
    }
    Ok(out)
}

/// The B-leg's offer. `trunk` lists the codecs the trunk takes (empty: anything the caller
/// offered, passed through). First what the caller offered that the trunk takes (payload
/// types kept, so the relay can leave those packets untouched), then the trunk's codecs
/// the switch can transcode to from one the caller offered, then telephone-event at every
/// clock rate in the offer.
pub fn offer_for_trunk(caller: &[Format], trunk: &[Codec]) -> Result<Vec<Format>, SdpError> {
    let takes = |f: &Format| trunk.is_empty() || f.codec().is_some_and(|c| trunk.contains(&c));
    let mut out: Vec<Format> = caller
        .iter()
        .filter(|f| !f.is_dtmf() && takes(f))
        .cloned()
        .collect();
    let transcodable = caller.iter().any(|f| f.codec().is_some());
    if transcodable {
        for &codec in trunk {
            if out.iter().any(|f| f.codec() == Some(codec)) {
                continue;
            }
            let pt = codec
                .static_pt()
                .unwrap_or_else(|| free_pt(caller, &out, 111));
            out.push(Format::of_codec(codec, pt));
        }
    }
    if out.is_empty() {
        return Err(SdpError::NoCodec);
    }
    let clocks: Vec<u32> = out.iter().map(|f| f.clock).collect();
    for clock in clocks {
        if out.iter().any(|f| f.is_dtmf() && f.clock == clock) {
            continue;
        }
        let dtmf = match caller.iter().find(|f| f.is_dtmf() && f.clock == clock) {
            Some(f) => f.clone(),
            None => Format::dtmf(free_pt(caller, &out, 101), clock),
        };
        out.push(dtmf);
    }
    Ok(out)
}

/// The switch's own offer, for a leg it dials itself (a call-back's legs): `codecs` in
/// order (none given: PCMU, PCMA, Opus, all of which the switch can transcode), then
/// telephone-event at every clock rate offered.
pub fn own_offer(local: SocketAddr, codecs: &[Codec]) -> Vec<u8> {
    let codecs = if codecs.is_empty() {
        &[Codec::Pcmu, Codec::Pcma, Codec::Opus][..]
    } else {
        codecs
    };
    let mut formats: Vec<Format> = Vec::new();
    for &codec in codecs {
        let pt = codec
            .static_pt()
            .unwrap_or_else(|| free_pt(&[], &formats, 111));
        formats.push(Format::of_codec(codec, pt));
    }
    let mut clocks: Vec<u32> = formats.iter().map(|f| f.clock).collect();
    clocks.dedup();
    for (n, clock) in clocks.into_iter().enumerate() {
        let pt = free_pt(&[], &formats, 101 + n as u8);
        formats.push(Format::dtmf(pt, clock));
    }
    own_sdp(local, &formats)
}

/// The switch's answer to a re-offer on a leg it dialled: the leg's negotiated format.
pub fn own_answer(local: SocketAddr, leg: &LegFormat) -> Vec<u8> {
    own_sdp(local, &answer_formats(leg))
}

fn own_sdp(local: SocketAddr, formats: &[Format]) -> Vec<u8> {
    let ip = local.ip();
    let family = if ip.is_ipv4() { "IP4" } else { "IP6" };
    let template = format!(
        "v=0\r\no=freecall 1 1 IN {family} {ip}\r\ns=freecall\r\nc=IN {family} {ip}\r\nt=0 0\r\n\
m=audio {} RTP/AVP 0\r\na=ptime:20\r\na=sendrecv\r\n",
        local.port()
    );
    match rewrite_formats(template.as_bytes(), local, formats) {
        Ok((body, _)) => body,
        // The template is ours and always parses; keep the bare template if it did not.
        Err(_) => template.into_bytes(),
    }
}

/// A dynamic payload type used by neither list, `preferred` if it is free.
fn free_pt(a: &[Format], b: &[Format], preferred: u8) -> u8 {
    let used = |pt: u8| a.iter().chain(b).any(|f| f.pt == pt);
    if !used(preferred) {
        return preferred;
    }
    (96..=127).find(|&pt| !used(pt)).unwrap_or(preferred)
}

/// What the trunk chose: the first audio format of its answer.
pub fn chosen(answer: &[Format]) -> Option<LegFormat> {
    let audio = answer.iter().find(|f| !f.is_dtmf())?;
    Some(LegFormat::from_list(answer, audio))
}

/// The caller's side of the call once the trunk has chosen `trunk`: the trunk's encoding
/// if the caller offered it (relayed untouched), else the caller's first codec the switch
/// can transcode — `None` when there is neither.
pub fn caller_format(caller: &[Format], trunk: &LegFormat) -> Option<LegFormat> {
    let audio = caller
        .iter()
        .find(|f| !f.is_dtmf() && f.same_encoding(&trunk.audio))
        .or_else(|| {
            trunk.codec()?;
            caller.iter().find(|f| f.codec().is_some())
        })?;
    Some(LegFormat::from_list(caller, audio))
}

/// The caller's preferred codec the switch can play to it (for announcements before the
/// trunk has answered).
pub fn caller_playable(caller: &[Format]) -> Option<LegFormat> {
    let audio = caller.iter().find(|f| f.codec().is_some())?;
    Some(LegFormat::from_list(caller, audio))
}

/// The formats an answer on a leg lists: its chosen audio and its telephone-event.
pub fn answer_formats(leg: &LegFormat) -> Vec<Format> {
    let mut out = vec![leg.audio.clone()];
    if let Some(pt) = leg.dtmf {
        out.push(Format::dtmf(pt, leg.dtmf_clock));
    }
    out
}

/// `rewrite`, and the audio stream's formats replaced by `formats` (rtpmap and fmtp
/// rewritten to match).
pub fn rewrite_formats(
    body: &[u8],
    local: SocketAddr,
    formats: &[Format],
) -> Result<(Vec<u8>, Remote), SdpError> {
    let mut sd = parse(body)?;
    let remote = anchor(&mut sd, local)?;
    let Some(m) = sd
        .media_descriptions
        .iter_mut()
        .find(|m| m.media_name.media == "audio" && m.media_name.port.value > 0)
    else {
        return Err(SdpError::NoAudio);
    };
    m.media_name.formats = formats.iter().map(|f| f.pt.to_string()).collect();
    m.attributes
        .retain(|a| a.key != "rtpmap" && a.key != "fmtp");
    let mut attrs = Vec::new();
    for f in formats {
        let map = match &f.params {
            Some(p) => format!("{} {}/{}/{}", f.pt, f.name, f.clock, p),
            None => format!("{} {}/{}", f.pt, f.name, f.clock),
        };
        attrs.push(Attribute::new("rtpmap".into(), Some(map)));
        if let Some(fmtp) = &f.fmtp {
            attrs.push(Attribute::new(
                "fmtp".into(),
                Some(format!("{} {fmtp}", f.pt)),
            ));
        }
    }
    attrs.append(&mut m.attributes);
    m.attributes = attrs;
    Ok((sd.marshal().into_bytes(), remote))
}

/// Parse `body`, return the rewritten SDP (pointing at `local`) and the far end's media
/// addresses.
pub fn rewrite(body: &[u8], local: SocketAddr) -> Result<(Vec<u8>, Remote), SdpError> {
    let mut sd = parse(body)?;
    let remote = anchor(&mut sd, local)?;
    Ok((sd.marshal().into_bytes(), remote))
}

fn parse(body: &[u8]) -> Result<SessionDescription, SdpError> {
    SessionDescription::unmarshal(&mut Cursor::new(body))
        .map_err(|e| SdpError::Parse(e.to_string()))
}

/// Point `sd` at `local` (in place); the far end's media addresses.
/// The first audio stream's index and where the far end receives it.
fn far_end(sd: &SessionDescription) -> Result<(usize, Remote), SdpError> {
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
    Ok((audio, remote))
}

fn anchor(sd: &mut SessionDescription, local: SocketAddr) -> Result<Remote, SdpError> {
    let (audio, remote) = far_end(sd)?;
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
    Ok(remote)
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_opus_phone_offering_telephone_event_at_8000_is_answered_with_it() {
        // What baresip offers: Opus at 48 kHz, digits at 8 kHz only.
        let offer = "v=0\r\no=b 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
m=audio 4000 RTP/AVP 111 101\r\na=rtpmap:111 opus/48000/2\r\na=rtpmap:101 telephone-event/8000\r\n";
        let formats = super::formats(offer.as_bytes()).unwrap();
        let leg = super::caller_playable(&formats).unwrap();
        assert_eq!((leg.dtmf, leg.dtmf_clock), (Some(101), 8000));
        let answer = super::answer_formats(&leg);
        assert!(
            answer
                .iter()
                .any(|f| f.is_dtmf() && f.clock == 8000 && f.pt == 101)
        );
    }

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

    fn opus_phone() -> Vec<Format> {
        let sdp = "v=0\r\no=- 1 1 IN IP4 10.0.0.7\r\ns=-\r\nc=IN IP4 10.0.0.7\r\nt=0 0\r\n\
m=audio 4000 RTP/AVP 111 101\r\na=rtpmap:111 opus/48000/2\r\n\
a=fmtp:111 useinbandfec=1\r\na=rtpmap:101 telephone-event/48000\r\n";
        formats(sdp.as_bytes()).unwrap()
    }

    #[test]
    fn reads_formats_with_static_defaults() {
        let f = formats(OFFER.as_bytes()).unwrap();
        let names: Vec<_> = f.iter().map(|f| (f.pt, f.name.as_str(), f.clock)).collect();
        assert_eq!(
            names,
            [
                (0, "PCMU", 8000),
                (8, "PCMA", 8000),
                (101, "telephone-event", 8000)
            ]
        );
        let o = opus_phone();
        assert_eq!(o[0].codec(), Some(Codec::Opus));
        assert_eq!(o[0].fmtp.as_deref(), Some("useinbandfec=1"));
    }

    #[test]
    fn an_opus_phone_to_an_alaw_trunk_is_offered_alaw_and_transcoded() {
        let caller = opus_phone();
        let offer = offer_for_trunk(&caller, &[Codec::Pcma]).unwrap();
        let list: Vec<_> = offer
            .iter()
            .map(|f| (f.pt, f.name.as_str(), f.clock))
            .collect();
        assert_eq!(list, [(8, "PCMA", 8000), (96, "telephone-event", 8000)]);
        let trunk = chosen(&offer).unwrap();
        assert_eq!(trunk.dtmf, Some(96));
        let mine = caller_format(&caller, &trunk).unwrap();
        assert_eq!(
            (mine.audio.pt, mine.codec(), mine.dtmf),
            (111, Some(Codec::Opus), Some(101))
        );
        assert!(mine.opus().useinbandfec);
    }

    #[test]
    fn a_codec_both_speak_is_passed_through() {
        let caller = formats(OFFER.as_bytes()).unwrap();
        let offer = offer_for_trunk(&caller, &[]).unwrap();
        assert_eq!(offer, caller);
        let answer = vec![caller[1].clone(), caller[2].clone()];
        let trunk = chosen(&answer).unwrap();
        let mine = caller_format(&caller, &trunk).unwrap();
        assert_eq!(mine, trunk, "PCMA both sides: relayed untouched");
        // A codec the switch cannot transcode is still passed through.
        let g722 = "v=0\r\no=- 1 1 IN IP4 10.0.0.7\r\ns=-\r\nc=IN IP4 10.0.0.7\r\nt=0 0\r\nm=audio 4000 RTP/AVP 9\r\n";
        let caller = formats(g722.as_bytes()).unwrap();
        assert_eq!(
            offer_for_trunk(&caller, &[Codec::Pcma]),
            Err(SdpError::NoCodec)
        );
        let offer = offer_for_trunk(&caller, &[]).unwrap();
        assert_eq!(
            caller_format(&caller, &chosen(&offer).unwrap())
                .unwrap()
                .audio
                .name,
            "G722"
        );
    }

    #[test]
    fn rewritten_formats_carry_rtpmap_and_fmtp() {
        let caller = opus_phone();
        let offer = offer_for_trunk(&caller, &[Codec::Pcmu, Codec::Opus]).unwrap();
        let (out, _) =
            rewrite_formats(OFFER.as_bytes(), "192.0.2.1:20000".parse().unwrap(), &offer).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(
            out.contains("m=audio 20000 RTP/AVP 111 0 101 96\r\n"),
            "{out}"
        );
        assert!(out.contains("a=rtpmap:111 opus/48000/2\r\n"));
        assert!(out.contains("a=fmtp:111 useinbandfec=1\r\n"));
        assert!(
            out.contains("a=rtpmap:96 telephone-event/8000\r\n"),
            "{out}"
        );
        assert_eq!(formats(out.as_bytes()).unwrap(), offer);
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
