//! The `[media]` section, as the media side reads it (composed by `crate::config`).

use serde::Deserialize;
use std::net::IpAddr;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaConfig {
    /// Address RTP sockets bind to and, unless `advertised_address` is set, SDP advertises.
    pub address: IpAddr,
    /// Address written into SDP when it differs from `address`: the public address of a
    /// 1:1 NAT (a cloud machine's elastic IP) while the sockets bind the private one.
    #[serde(default)]
    pub advertised_address: Option<IpAddr>,
    pub port_min: u16,
    pub port_max: u16,
    #[serde(default = "default_rtp_timeout")]
    pub rtp_timeout_secs: u64,
    /// Folder of prompts (`<name>.wav`, 16-bit mono 8 kHz) the switch plays: refusal
    /// reasons, "one minute left", "please hold". Relative to the working directory;
    /// empty plays none (refusals are then a bare SIP status).
    #[serde(default)]
    pub prompts_dir: String,
    /// Answer a ringing trunk's 180 with our own early media: "please hold", then the
    /// ringback tone (the trunk's own early media replaces it when it sends some).
    #[serde(default)]
    pub local_ringback: bool,
    /// Seconds before a paid call's limit at which its caller hears "one minute left"
    /// (0: never). Only calls more than twice as long as this are warned.
    #[serde(default = "default_warning_secs")]
    pub warning_secs: u64,
    /// Folder for recordings (`<call id>.wav`): routes with `record = true`, and calls
    /// recorded on request (a call-back, booking or member's dial that asked, or a card
    /// that records every call-back).
    #[serde(default = "default_recordings_dir")]
    pub recordings_dir: String,
    /// Recordings older than this many days are deleted, file and row (0: kept until
    /// their owner deletes them).
    #[serde(default = "default_retention_days")]
    pub recordings_retention_days: u64,
    #[serde(default)]
    pub opus: OpusConfig,
}

/// How the switch encodes Opus when it transcodes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OpusConfig {
    /// Bits per second (narrowband speech: 12000–24000 is plenty).
    pub bitrate: i32,
    /// libopus complexity 0–10.
    pub complexity: u8,
    /// Expected loss in percent, for in-band FEC when the far end asks for it.
    pub loss_percent: u8,
}

impl Default for OpusConfig {
    fn default() -> Self {
        let d = super::codec::OpusSettings::default();
        OpusConfig {
            bitrate: d.bitrate,
            complexity: d.complexity,
            loss_percent: d.loss_percent,
        }
    }
}

impl OpusConfig {
    pub fn settings(&self) -> super::codec::OpusSettings {
        super::codec::OpusSettings {
            bitrate: self.bitrate,
            complexity: self.complexity,
            loss_percent: self.loss_percent,
        }
    }
}

fn default_warning_secs() -> u64 {
    60
}

fn default_retention_days() -> u64 {
    90
}

fn default_recordings_dir() -> String {
    "data/recordings".into()
}

fn default_rtp_timeout() -> u64 {
    60
}

impl MediaConfig {
    /// Every problem of the section, each naming its key.
    pub fn validate(&self, errors: &mut Vec<String>) {
        if !self.port_min.is_multiple_of(2) {
            errors.push(format!(
                "media.port_min: {} must be even (RTP on even ports, RTCP on the next)",
                self.port_min
            ));
        }
        if self.port_min >= self.port_max || self.port_min < 1024 {
            errors.push(format!(
                "media.port_min/media.port_max: {}..{} must be an increasing range above 1023",
                self.port_min, self.port_max
            ));
        }
        if self.rtp_timeout_secs == 0 {
            errors.push("media.rtp_timeout_secs: must be at least 1".into());
        }
        if !(6000..=128_000).contains(&self.opus.bitrate) {
            errors.push(format!(
                "media.opus.bitrate: {} is outside 6000..=128000",
                self.opus.bitrate
            ));
        }
        if self.opus.complexity > 10 {
            errors.push("media.opus.complexity: must be 0..=10".into());
        }
        if self.opus.loss_percent > 100 {
            errors.push("media.opus.loss_percent: must be 0..=100".into());
        }
    }
}
