//! Call records (C9): one per call, written once when the call is settled.
//!
//! The call layer fills a `CallRecord` when a call ends; the accounting service stores it
//! in the same transaction as the call's settlement (so a record exists exactly when the
//! money was settled), then appends it to a JSON-lines file (`CdrFile`) that rotates by
//! size and by date. A call cut short by a crash is settled at the next start from its
//! reservation, and its record is rebuilt from the same row.

use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Who ended the call.
pub const BY_CALLER: &str = "caller";
pub const BY_CALLEE: &str = "callee";
pub const BY_SWITCH: &str = "switch";

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    /// Position in the record stream (assigned by the store; 0 before).
    pub id: i64,
    /// The switch's name of the call (`fc-…`), as in the logs.
    pub call_id: String,
    pub node: String,
    /// The calling number (the caller's From user part), "" when unknown.
    pub caller: String,
    /// The dialled number, normalised.
    pub callee: String,
    /// The called and calling numbers as the trunk of the last attempt got them (its
    /// number format and prefixes, the caller as presented: `anonymous` when withheld);
    /// empty when the call reached no trunk.
    #[serde(default)]
    pub sent_callee: String,
    #[serde(default)]
    pub sent_caller: String,
    /// Who paid: the account, and the card when a card's guild paid.
    pub account_id: Option<i64>,
    pub card_id: Option<i64>,
    /// Destination kind of the dialled number (landline, mobile, …).
    pub destination: String,
    /// Trunks dialled, in order; the last one is where the call went.
    pub trunks: Vec<String>,
    /// The trunk that answered.
    pub trunk: Option<String>,
    /// Wall-clock milliseconds: INVITE received, answer, end.
    pub setup_ms: i64,
    pub answered_ms: Option<i64>,
    pub ended_ms: i64,
    /// Talk time as billed (rounded per the tariff) and what it cost, in the paying
    /// account's unit; 0 for free calls.
    pub billed_secs: i64,
    pub cost: i64,
    /// The final SIP status the caller saw (200 for an answered call).
    pub code: u16,
    pub cause: String,
    /// `caller`, `callee` or `switch`.
    pub ended_by: String,
    pub codec_caller: String,
    pub codec_callee: String,
    /// Media statistics per leg (packets, loss, jitter), as JSON.
    pub media: Option<serde_json::Value>,
    /// A call the switch placed (a call-back, a web dial) has two dialled legs, each
    /// answered and billed on its own: first the issuer (or member), then the visitor (or
    /// the dialled number). Empty for a call that came in. The record's `billed_secs` is
    /// the longest leg's, its `cost` the sum.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub legs: Vec<RecordLeg>,
}

/// One dialled leg of a call the switch placed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordLeg {
    /// `issuer`, `visitor`, `member` or `dialled`.
    pub role: String,
    pub number: String,
    /// The number as the leg's trunk (or phone) got it, and who it was shown as calling.
    #[serde(default)]
    pub sent: String,
    #[serde(default)]
    pub presented: String,
    /// The number's kind (landline, mobile, internet, international…): its rate.
    pub destination: String,
    pub answered_ms: Option<i64>,
    pub ended_ms: i64,
    pub billed_secs: i64,
    pub cost: i64,
    /// The reservation that paid for this leg (0: none); the store fills in the cost.
    #[serde(default)]
    pub reservation: i64,
}

impl CallRecord {
    /// Seconds from answer to end (unrounded), 0 when unanswered.
    pub fn talk_secs(&self) -> f64 {
        match self.answered_ms {
            Some(a) if self.ended_ms > a => (self.ended_ms - a) as f64 / 1000.0,
            _ => 0.0,
        }
    }
}

/// The JSON-lines file: one record per line, appended after the record is stored. When
/// the file passes `max_bytes`, or the UTC day changes, it is renamed with the time of
/// the switch (`calls-2026-11-23T101500.jsonl`) and a new one begun.
pub struct CdrFile {
    path: PathBuf,
    max_bytes: u64,
    file: Option<std::fs::File>,
    size: u64,
    day: i64,
}

const DAY_MS: i64 = 86_400_000;

impl CdrFile {
    pub fn new(path: &Path, max_bytes: u64) -> CdrFile {
        CdrFile {
            path: path.to_path_buf(),
            max_bytes,
            file: None,
            size: 0,
            day: -1,
        }
    }

    /// Append records (the current wall-clock `now_ms` decides the day).
    pub fn append(&mut self, records: &[CallRecord], now_ms: i64) -> std::io::Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let day = now_ms.div_euclid(DAY_MS);
        if self.file.is_none() {
            self.open(day)?;
        }
        if self.size >= self.max_bytes || (self.day != day && self.size > 0) {
            self.rotate(now_ms)?;
            self.open(day)?;
        }
        let mut buf = Vec::with_capacity(records.len() * 400);
        for r in records {
            serde_json::to_writer(&mut buf, r).map_err(std::io::Error::other)?;
            buf.push(b'\n');
        }
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| std::io::Error::other("closed"))?;
        file.write_all(&buf)?;
        self.size += buf.len() as u64;
        Ok(())
    }

    fn open(&mut self, day: i64) -> std::io::Result<()> {
        if let Some(dir) = self.path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        let meta = file.metadata()?;
        self.size = meta.len();
        // A file left from an earlier day is rotated on the first append of today.
        self.day = meta
            .modified()
            .ok()
            .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| (d.as_millis() as i64).div_euclid(DAY_MS))
            .filter(|_| self.size > 0)
            .unwrap_or(day);
        self.file = Some(file);
        Ok(())
    }

    fn rotate(&mut self, now_ms: i64) -> std::io::Result<()> {
        self.file = None;
        let stem = self
            .path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("calls")
            .to_string();
        let mut n = 0;
        loop {
            let suffix = if n == 0 {
                String::new()
            } else {
                format!("-{n}")
            };
            let name = format!("{stem}-{}{suffix}.jsonl", stamp(now_ms));
            let target = self.path.with_file_name(name);
            if !target.exists() {
                return std::fs::rename(&self.path, target);
            }
            n += 1;
        }
    }
}

use time::macros::format_description;
use time::{Date, OffsetDateTime, PrimitiveDateTime};

fn utc(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// `2026-11-23T101500` for a wall-clock time in milliseconds (UTC).
pub fn stamp(ms: i64) -> String {
    utc(ms)
        .format(format_description!(
            "[year]-[month]-[day]T[hour][minute][second]"
        ))
        .unwrap_or_default()
}

/// `2026-11-23 10:15:00` for terminals.
pub fn clock_time(ms: i64) -> String {
    utc(ms)
        .format(format_description!(
            "[year]-[month]-[day] [hour]:[minute]:[second]"
        ))
        .unwrap_or_default()
}

/// Parse `2026-11-23`, `2026-11-23T10:15:00` / `2026-11-23 10:15:00` (UTC) or
/// milliseconds since 1970.
pub fn parse_time(text: &str) -> Option<i64> {
    if let Ok(ms) = text.parse::<i64>() {
        return Some(ms);
    }
    let text = text.trim_end_matches('Z');
    let at = PrimitiveDateTime::parse(
        text,
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]"),
    )
    .or_else(|_| {
        PrimitiveDateTime::parse(
            text,
            format_description!("[year]-[month]-[day] [hour]:[minute]:[second]"),
        )
    })
    .or_else(|_| {
        Date::parse(text, format_description!("[year]-[month]-[day]")).map(|d| d.midnight())
    })
    .ok()?;
    i64::try_from(at.assume_utc().unix_timestamp_nanos() / 1_000_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip() {
        let ms = parse_time("2026-11-23T10:15:00").unwrap();
        assert_eq!(stamp(ms), "2026-11-23T101500");
        assert_eq!(clock_time(ms), "2026-11-23 10:15:00");
        assert_eq!(parse_time("1970-01-01"), Some(0));
        assert_eq!(parse_time("2024-02-29"), Some(1_709_164_800_000));
        assert_eq!(parse_time("2026-13-01"), None);
        assert_eq!(parse_time("1234"), Some(1234));
    }

    #[test]
    fn the_file_rotates_by_size_and_by_day() {
        let dir = std::env::temp_dir().join(format!("freecall-cdrfile-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("calls.jsonl");
        let mut f = CdrFile::new(&path, 1000);
        let rec = CallRecord {
            call_id: "fc-1".into(),
            ..Default::default()
        };
        let day1 = parse_time("2026-11-23T10:00:00").unwrap();
        f.append(std::slice::from_ref(&rec), day1).unwrap();
        f.append(std::slice::from_ref(&rec), day1 + 1000).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 2);
        // Past the size: the next append starts a new file.
        f.append(&vec![rec.clone(); 5], day1 + 2000).unwrap();
        f.append(std::slice::from_ref(&rec), day1 + 3000).unwrap();
        // A new day: another file.
        f.append(std::slice::from_ref(&rec), day1 + DAY_MS).unwrap();
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "calls-2026-11-23T100003.jsonl",
                "calls-2026-11-24T100000.jsonl",
                "calls.jsonl"
            ]
        );
        let total: usize = names
            .iter()
            .map(|n| {
                std::fs::read_to_string(dir.join(n))
                    .unwrap()
                    .lines()
                    .count()
            })
            .sum();
        assert_eq!(total, 9, "every record in exactly one file");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
