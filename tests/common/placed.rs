//! What the tests of calls the switch places share: a configuration with a PBX trunk for
//! every number, the next new INVITE the PBX sees, and the SDP of a far-end phone.
#![allow(dead_code)]

use freecall::config::Config;
use freecall::sip::Message;
use freecall_testkit::Phone;
use freecall_testkit::audio::RtpEnd;
use std::net::SocketAddr;
use std::time::Duration;

/// Every number goes to the PBX at `trunk`; T1 100 ms, the shipped prompts, its own RTP
/// ports and node name (`node`-…); `extra` TOML (tariffs, sections) appended.
pub fn config(trunk: SocketAddr, node: &str, extra: &str) -> Config {
    let base = super::config(&[trunk], "", "prompts_dir = \"prompts\"", "127.0.0.2/32");
    let port_min = base.media.port_min;
    Config::from_toml(&format!(
        "[sip]\nlisten = \"127.0.0.1:0\"\nt1_ms = 100\n\
[media]\naddress = \"127.0.0.1\"\nport_min = {port_min}\nport_max = {}\nprompts_dir = \"prompts\"\n\
[[trunks]]\nname = \"pbx\"\naddress = \"{trunk}\"\n[[routes]]\nprefix = \"\"\ntrunks = [\"pbx\"]\n\
[billing]\nnode_id = \"{node}-{}-{port_min}\"\n{extra}",
        port_min + 198,
        std::process::id()
    ))
    .expect("config")
}

/// The next new INVITE the PBX receives within `wait`; retransmissions of the calls in
/// `seen` are skipped.
pub async fn next_invite_after(
    pbx: &Phone,
    wait: Duration,
    seen: &[&Message],
) -> Option<(Message, SocketAddr)> {
    let until = freecall::clock::Clock::system().now() + wait;
    loop {
        let left = until.saturating_duration_since(freecall::clock::Clock::system().now());
        let (m, from) = pbx.recv(left).await?;
        if m.method().map(|x| x.as_str()) == Some("INVITE")
            && m.to_tag.is_none()
            && !seen.iter().any(|s| s.call_id == m.call_id)
        {
            return Some((m, from));
        }
    }
}

pub async fn next_invite(pbx: &Phone, wait: Duration) -> Option<(Message, SocketAddr)> {
    next_invite_after(pbx, wait, &[]).await
}

/// The SDP of a phone at `rtp` (its codec and RFC 4733 at 101).
pub fn sdp_for(rtp: &RtpEnd) -> String {
    let name = rtp.codec.name();
    format!(
        "v=0\r\no=pbx 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
m=audio {} RTP/AVP {} 101\r\na=rtpmap:{} {name}/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n",
        rtp.addr.port(),
        rtp.pt,
        rtp.pt
    )
}

/// Where the switch takes the audio of the leg `invite` offers.
pub fn switch_media(invite: &Message) -> SocketAddr {
    let (remote, _) = freecall::media::sdp::read_offer(&invite.body).expect("SDP offer");
    remote.rtp.expect("an RTP address")
}
