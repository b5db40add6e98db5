//! Architecture invariants from ARCHITECTURE.md, checked on the source (comments and
//! strings left out): a lower layer never names a higher one — in a path, a `use`, or a
//! grouped `use crate::{…}` — and the sans-IO core names no runtime, database, socket or
//! file system.

use std::fs;
use std::path::Path;

/// (module folder or file, modules it must not use)
const RULES: &[(&str, &[&str])] = &[
    (
        "sip",
        &[
            "transaction",
            "dialog",
            "call",
            "media",
            "routing",
            "driver",
            "config",
            "store",
            "accounting",
            "api",
            "placing",
        ],
    ),
    (
        "transaction",
        &[
            "dialog",
            "call",
            "media",
            "routing",
            "driver",
            "config",
            "store",
            "accounting",
            "api",
            "placing",
        ],
    ),
    (
        "dialog.rs",
        &[
            "call",
            "media",
            "routing",
            "driver",
            "config",
            "store",
            "accounting",
            "api",
            "placing",
        ],
    ),
    (
        "media",
        &["sip", "transaction", "dialog", "call", "routing", "driver"],
    ),
    // Routing names a trunk's codecs (`media::codec::Codec`, read once from the
    // configuration), nothing else of media.
    ("routing.rs", &["call", "dialog", "driver", "dns"]),
    (
        "dns.rs",
        &[
            "call",
            "dialog",
            "driver",
            "config",
            "store",
            "accounting",
            "api",
            "placing",
            "media",
            "web",
        ],
    ),
    (
        "call",
        &["driver", "config", "store", "accounting", "api", "placing"],
    ),
    (
        "placing",
        &[
            "sip",
            "transaction",
            "dialog",
            "media",
            "driver",
            "accounting",
            "api",
        ],
    ),
    // Money knows nothing of SIP, media or the database.
    (
        "billing",
        &[
            "sip",
            "transaction",
            "dialog",
            "call",
            "media",
            "driver",
            "store",
            "accounting",
            "api",
            "config",
        ],
    ),
    (
        "numbers.rs",
        &["sip", "call", "media", "driver", "store", "api"],
    ),
    (
        "auth.rs",
        &["sip", "call", "media", "driver", "store", "api"],
    ),
    // Call records are plain data: the call layer fills them, the store keeps them.
    (
        "cdr.rs",
        &[
            "sip",
            "transaction",
            "dialog",
            "call",
            "media",
            "driver",
            "store",
            "accounting",
            "api",
        ],
    ),
    // The store holds domain data; it never reaches up into the call path or the API.
    (
        "store",
        &[
            "sip",
            "transaction",
            "dialog",
            "call",
            "media",
            "driver",
            "accounting",
            "api",
            "routing",
        ],
    ),
    // A card's rules and formats: plain data over the store's types.
    (
        "cards",
        &[
            "sip",
            "transaction",
            "dialog",
            "call",
            "media",
            "driver",
            "accounting",
            "api",
            "web",
            "placing",
        ],
    ),
    // The pages read the store and place calls through `placing`: never the call path.
    (
        "web",
        &[
            "sip",
            "transaction",
            "dialog",
            "call",
            "media",
            "driver",
            "accounting",
        ],
    ),
    // Uploaded audio: a leaf the media, the call layer and the pages all use.
    (
        "clip.rs",
        &[
            "sip",
            "transaction",
            "dialog",
            "call",
            "media",
            "driver",
            "store",
            "accounting",
            "api",
            "web",
            "placing",
        ],
    ),
    (
        "accounting",
        &["sip", "transaction", "dialog", "call", "media", "api"],
    ),
    // The flood gate is a leaf both the call path and the API use.
    (
        "flood.rs",
        &[
            "sip",
            "transaction",
            "dialog",
            "call",
            "media",
            "routing",
            "driver",
            "config",
            "store",
            "accounting",
            "api",
            "web",
            "placing",
        ],
    ),
];

fn sources(path: &Path, out: &mut Vec<(String, String)>) {
    if path.is_dir() {
        for entry in fs::read_dir(path).unwrap() {
            sources(&entry.unwrap().path(), out);
        }
    } else if path.extension().is_some_and(|e| e == "rs") {
        out.push((
            path.display().to_string(),
            fs::read_to_string(path).unwrap(),
        ));
    }
}

/// The sans-IO core: no runtime, no database, no sockets, no web framework. Its state
/// machines take `now` and bytes and return what to send (ARCHITECTURE.md).
const SANS_IO: &[&str] = &[
    "sip",
    "transaction",
    "dialog.rs",
    "call",
    "routing.rs",
    "flood.rs",
];
const IO_CRATES: &[&str] = &[
    "tokio",
    "diesel",
    "actix_web",
    "std::net::UdpSocket",
    "std::net::TcpStream",
    "std::net::TcpListener",
    "std::thread::sleep",
    "std::fs",
];

/// The source without comments and string literals (so a doc line naming a module does
/// not count as using it).
fn code_only(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            while i + 1 < b.len() && !b[i..].starts_with(b"*/") {
                i += 1;
            }
            i += 2;
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if b[i] == b'\'' && i + 2 < b.len() && (b[i + 2] == b'\'' || b[i + 1] == b'\\') {
            // A char literal ('x', '\n'); lifetimes ('a) are left alone.
            i += 1;
            while i < b.len() && b[i] != b'\'' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("' '");
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    out
}

/// Every module of this crate that `code` names: `crate::x::…`, `crate::x;` and each
/// item of a grouped `use crate::{x, y::z}` (nested groups included).
fn crate_modules(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        let rest_trim = rest.trim_start();
        if let Some(group) = rest_trim.strip_prefix('{') {
            // The group's top-level items, up to its closing brace.
            let (mut depth, mut item, mut end) = (0usize, String::new(), group.len());
            for (n, ch) in group.char_indices() {
                match ch {
                    '{' => {
                        depth += 1;
                        item.push(ch);
                    }
                    '}' if depth == 0 => {
                        end = n;
                        break;
                    }
                    '}' => {
                        depth -= 1;
                        item.push(ch);
                    }
                    ',' if depth == 0 => {
                        out.push(first_segment(&item));
                        item.clear();
                    }
                    _ => item.push(ch),
                }
            }
            out.push(first_segment(&item));
            rest = &group[end.min(group.len())..];
        } else {
            out.push(first_segment(rest_trim));
        }
    }
    out.retain(|m| !m.is_empty());
    out
}

fn first_segment(path: &str) -> String {
    path.trim()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

#[test]
fn the_checker_sees_grouped_and_nested_uses() {
    let code = code_only(
        "use crate::{billing::Tariff, store::{self, Store}};\nuse crate::sip;\n\
let x = crate::media::Side::A; // crate::api::nothing\nlet s = \"crate::driver::x\";",
    );
    let mut found = crate_modules(&code);
    found.sort();
    assert_eq!(found, ["billing", "media", "sip", "store"]);
}

#[test]
fn the_sans_io_core_uses_no_runtime_database_or_sockets() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut violations = Vec::new();
    for module in SANS_IO {
        let mut files = Vec::new();
        sources(&src.join(module), &mut files);
        assert!(!files.is_empty(), "no sources for {module}");
        for (file, text) in files {
            let code = code_only(&text);
            for (n, line) in code.lines().enumerate() {
                for io in IO_CRATES {
                    let named = line.match_indices(io).any(|(at, _)| {
                        at == 0
                            || !line.as_bytes()[at - 1].is_ascii_alphanumeric()
                                && line.as_bytes()[at - 1] != b'_'
                                && line.as_bytes()[at - 1] != b':'
                    });
                    if named {
                        violations.push(format!(
                            "{file}:{}: {module} uses {io}: {}",
                            n + 1,
                            line.trim()
                        ));
                    }
                }
            }
        }
    }
    assert!(
        violations.is_empty(),
        "I/O in the sans-IO core:\n{}",
        violations.join("\n")
    );
}

#[test]
fn postgresqls_fast_path_is_a_leaf_of_the_store() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/store/pg_fast.rs");
    let code = code_only(&fs::read_to_string(path).unwrap());
    for sibling in [
        "calls", "settle", "placed", "accounts", "cards", "shop", "cdrs",
    ] {
        assert!(
            !code.contains(&format!("super::{sibling}")),
            "pg_fast.rs uses store::{sibling}: shared types belong in store::reservation"
        );
    }
}

#[test]
fn layers_only_use_what_is_below_them() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut violations = Vec::new();
    for (module, forbidden) in RULES {
        let mut files = Vec::new();
        sources(&src.join(module), &mut files);
        assert!(!files.is_empty(), "no sources for {module}");
        for (file, text) in files {
            let code = code_only(&text);
            for (n, line) in code.lines().enumerate() {
                for used in crate_modules(line) {
                    if forbidden.contains(&used.as_str()) {
                        violations.push(format!(
                            "{file}:{}: {module} uses {used}: {}",
                            n + 1,
                            line.trim()
                        ));
                    }
                }
            }
            // A grouped use may span lines: check the whole file too.
            for used in crate_modules(&code) {
                if forbidden.contains(&used.as_str())
                    && !violations
                        .iter()
                        .any(|v| v.starts_with(&file) && v.contains(&format!("uses {used}:")))
                {
                    violations.push(format!("{file}: {module} uses {used} (in a grouped use)"));
                }
            }
        }
    }
    assert!(
        violations.is_empty(),
        "layering violations:\n{}",
        violations.join("\n")
    );
}

/// The test kit (phones, audio end points, a PostgreSQL cluster that runs `chown` and
/// `runuser`) is a crate of its own that only the tests and the benchmark depend on: the
/// shipped binary contains none of it.
#[test]
fn the_test_kit_is_a_dev_only_crate() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    assert!(
        !root.join("src/testkit").exists(),
        "src/testkit is back in the product"
    );
    let lib = code_only(&fs::read_to_string(root.join("src/lib.rs")).unwrap());
    assert!(
        !lib.contains("mod testkit"),
        "the product declares a testkit module"
    );
    let manifest = fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let mut section = "";
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            section = line;
        } else if line.starts_with("freecall-testkit") {
            assert_eq!(
                section, "[dev-dependencies]",
                "the test kit outside dev-dependencies"
            );
        }
    }
    let mut files = Vec::new();
    sources(&root.join("src"), &mut files);
    for (file, text) in files {
        assert!(
            !code_only(&text).contains("freecall_testkit"),
            "{file} uses the test kit"
        );
    }
}
