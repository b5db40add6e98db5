//! `freecall cdr tail`: call records in a terminal, read from the switch's own database.
//!
//! Without `-f` it prints the newest records (or everything after `--since` / `--after`)
//! and exits; with `-f` it then follows, printing each record as it is stored. Records are
//! read in the order they were stored (their position), so following survives restarts
//! of the switch and database outages without gaps or repeats; `--after` resumes from a
//! position printed earlier.

use crate::cdr::{CallRecord, clock_time};
use crate::store::Store;
use crate::store::cdrs::CdrQuery;
use std::io::Write;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Csv,
}

impl Format {
    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "table" => Some(Format::Table),
            "json" => Some(Format::Json),
            "csv" => Some(Format::Csv),
            _ => None,
        }
    }
}

pub struct Tail {
    pub query: CdrQuery,
    /// Without `since`/`after`: how many of the newest records to start with.
    pub lines: i64,
    pub follow: bool,
    pub format: Format,
    /// Stop following after this long (tests, scripts); `None`: until interrupted.
    pub for_secs: Option<u64>,
}

const COLUMNS: [&str; 13] = [
    "ID",
    "ENDED (UTC)",
    "CALLER",
    "CALLEE",
    "KIND",
    "TRUNK",
    "CODE",
    "TALK",
    "BILLED",
    "COST",
    "ACCOUNT",
    "BY",
    "CAUSE",
];

fn cells(r: &CallRecord) -> [String; 13] {
    [
        r.id.to_string(),
        clock_time(r.ended_ms),
        r.caller.clone(),
        r.callee.clone(),
        r.destination.clone(),
        r.trunk.clone().unwrap_or_else(|| "-".into()),
        r.code.to_string(),
        format!("{:.1}", r.talk_secs()),
        r.billed_secs.to_string(),
        r.cost.to_string(),
        r.account_id
            .map(|a| a.to_string())
            .unwrap_or_else(|| "-".into()),
        r.ended_by.clone(),
        r.cause.clone(),
    ]
}

const WIDTHS: [usize; 13] = [7, 19, 13, 13, 13, 8, 4, 7, 6, 7, 7, 6, 0];

/// One CSV line (quoted where needed).
fn csv_line<const N: usize>(cells: [impl AsRef<[u8]>; N]) -> std::io::Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(cells).map_err(std::io::Error::other)?;
    w.into_inner()
        .map_err(|e| std::io::Error::other(e.to_string()))
}

fn print(out: &mut impl Write, format: Format, records: &[CallRecord]) -> std::io::Result<()> {
    for r in records {
        match format {
            Format::Json => {
                serde_json::to_writer(&mut *out, r)?;
                writeln!(out)?;
            }
            Format::Table => {
                let c = cells(r);
                let mut line = String::new();
                for (i, cell) in c.iter().enumerate() {
                    if i + 1 == c.len() {
                        line.push_str(cell);
                    } else {
                        line.push_str(&format!("{cell:<w$} ", w = WIDTHS[i]));
                    }
                }
                writeln!(out, "{}", line.trim_end())?;
            }
            Format::Csv => out.write_all(&csv_line(cells(r))?)?,
        }
    }
    out.flush()
}

/// Run the tail, printing to `out` (progress and problems to stderr).
pub fn run(store: &Store, mut t: Tail, out: &mut impl Write) -> std::io::Result<()> {
    match t.format {
        Format::Table => {
            let mut line = String::new();
            for (i, c) in COLUMNS.iter().enumerate() {
                line.push_str(&format!("{c:<w$} ", w = WIDTHS[i]));
            }
            writeln!(out, "{}", line.trim_end())?;
        }
        Format::Csv => out.write_all(&csv_line(COLUMNS)?)?,
        Format::Json => {}
    }
    let from_start = t.query.after > 0 || t.query.since_ms.is_some();
    if !from_start {
        // Like tail(1): the newest few, then (with -f) what comes.
        match store.last_cdrs(&t.query, t.lines) {
            Ok(rows) => {
                if let Some(last) = rows.last() {
                    t.query.after = last.id;
                } else if let Ok(id) = store.last_cdr_id() {
                    t.query.after = id;
                }
                print(out, t.format, &rows)?;
            }
            Err(e) => eprintln!("freecall: call records: {e}"),
        }
    } else if let Ok(total) = store.count_cdrs(&t.query)
        && total > 1000
    {
        eprintln!("catching up: {total} records to print");
    }
    let started = store.clock().now();
    let mut printed_since_progress = 0i64;
    let mut unavailable = false;
    loop {
        let q = CdrQuery {
            limit: 1000,
            ..t.query.clone()
        };
        match store.cdrs(&q) {
            Ok(rows) => {
                if unavailable {
                    eprintln!("freecall: the database answers again");
                    unavailable = false;
                }
                if let Some(last) = rows.last() {
                    t.query.after = last.id;
                }
                print(out, t.format, &rows)?;
                if rows.len() == 1000 {
                    printed_since_progress += 1000;
                    eprintln!(
                        "catching up: {printed_since_progress} records printed, at position {}",
                        t.query.after
                    );
                    continue;
                }
                // Up to date: stop, or follow.
                if !t.follow {
                    return Ok(());
                }
            }
            Err(e) => {
                if !unavailable {
                    eprintln!("freecall: call records: {e} (retrying)");
                    unavailable = true;
                }
                if !t.follow {
                    return Err(std::io::Error::other(e.to_string()));
                }
            }
        }
        if let Some(secs) = t.for_secs
            && store.clock().now().saturating_duration_since(started) >= Duration::from_secs(secs)
        {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}
