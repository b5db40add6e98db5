//! Architecture invariants from ARCHITECTURE.md, checked on the source text: a lower layer
//! never imports a higher one.

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
        ],
    ),
    (
        "transaction",
        &["dialog", "call", "media", "routing", "driver", "config"],
    ),
    (
        "dialog.rs",
        &["call", "media", "routing", "driver", "config"],
    ),
    (
        "media",
        &["sip", "transaction", "dialog", "call", "routing", "driver"],
    ),
    ("routing.rs", &["call", "media", "dialog", "driver"]),
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
    (
        "accounting.rs",
        &["sip", "transaction", "dialog", "call", "media", "api"],
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

#[test]
fn layers_only_use_what_is_below_them() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut violations = Vec::new();
    for (module, forbidden) in RULES {
        let mut files = Vec::new();
        sources(&src.join(module), &mut files);
        assert!(!files.is_empty(), "no sources for {module}");
        for (file, text) in files {
            for (n, line) in text.lines().enumerate() {
                for f in *forbidden {
                    if line.contains(&format!("crate::{f}::"))
                        || line.contains(&format!("crate::{f};"))
                    {
                        violations.push(format!(
                            "{file}:{}: {module} uses {f}: {}",
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
        "layering violations:\n{}",
        violations.join("\n")
    );
}
