//! For the TLS tests: certificates made by `openssl` (a test authority of its own per
//! name, and leaf certificates it signs for the names a test needs), and SIP messages on
//! a TLS stream (either end's).

use freecall::sip::{Message, frame_stream, parse_framed};
use std::path::{Path, PathBuf};
use std::process::Command;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// SIP messages on a TLS connection, framed by Content-Length.
pub struct Conn<S> {
    pub stream: S,
    buf: Vec<u8>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    pub fn new(stream: S) -> Conn<S> {
        Conn {
            stream,
            buf: Vec::new(),
        }
    }

    pub async fn send(&mut self, text: &str) {
        self.stream.write_all(text.as_bytes()).await.unwrap();
        self.stream.flush().await.unwrap();
    }

    /// The next message, within `super::WAIT`.
    pub async fn next(&mut self) -> Message {
        tokio::time::timeout(super::WAIT, async {
            let mut chunk = [0u8; 4096];
            loop {
                while let Some((skip, len)) = frame_stream(&self.buf).expect("a SIP stream") {
                    let frame: Vec<u8> = self.buf.drain(..skip + len).skip(skip).collect();
                    if len > 0 {
                        return parse_framed(&frame).expect("a SIP message");
                    }
                }
                let n = self.stream.read(&mut chunk).await.expect("read");
                assert!(n > 0, "the TLS connection was closed");
                self.buf.extend_from_slice(&chunk[..n]);
            }
        })
        .await
        .expect("a message on the TLS connection in time")
    }

    /// The final response, provisional ones skipped.
    pub async fn final_response(&mut self) -> Message {
        loop {
            let m = self.next().await;
            if m.status().is_some_and(|c| c >= 200) {
                return m;
            }
        }
    }
}

/// A test certificate authority: its certificate (what a peer trusts) and key.
pub struct Authority {
    pub certificate: PathBuf,
    key: PathBuf,
    dir: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl makes the test's certificates");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const EC: [&str; 5] = [
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
];

/// A new authority called `name`, its files in `dir`.
pub fn authority(dir: &Path, name: &str) -> Authority {
    let (crt, key) = (format!("{name}-ca.crt"), format!("{name}-ca.key"));
    let subject = format!("/CN={name} test CA");
    openssl(
        dir,
        &[
            &["req", "-x509"][..],
            &EC,
            &[
                "-days", "2", "-subj", &subject, "-keyout", &key, "-out", &crt,
            ],
        ]
        .concat(),
    );
    Authority {
        certificate: dir.join(crt),
        key: dir.join(key),
        dir: dir.to_path_buf(),
    }
}

impl Authority {
    /// A certificate signed by this authority for `sans` (`DNS:carrier.test,IP:127.0.0.1`):
    /// (certificate, key).
    pub fn issue(&self, name: &str, sans: &str) -> (PathBuf, PathBuf) {
        let (crt, key, csr, ext) = (
            format!("{name}.crt"),
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.ext"),
        );
        openssl(
            &self.dir,
            &[
                &["req"][..],
                &EC,
                &[
                    "-subj",
                    &format!("/CN={name}"),
                    "-keyout",
                    &key,
                    "-out",
                    &csr,
                ],
            ]
            .concat(),
        );
        std::fs::write(
            self.dir.join(&ext),
            format!("subjectAltName={sans}\nbasicConstraints=CA:FALSE\n"),
        )
        .unwrap();
        openssl(
            &self.dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                self.certificate.to_str().unwrap(),
                "-CAkey",
                self.key.to_str().unwrap(),
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &ext,
                "-out",
                &crt,
            ],
        );
        (self.dir.join(crt), self.dir.join(key))
    }
}

/// A certificate for localhost and 127.0.0.1 signed by an authority of its own:
/// (certificate, key, the authority's certificate a phone trusts).
pub fn certificate(dir: &Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let ca = authority(dir, name);
    let (crt, key) = ca.issue(name, "DNS:localhost,IP:127.0.0.1");
    (crt, key, ca.certificate)
}

/// `[sip]` lines for TLS on a free port with `cert` and `key`.
pub fn tls_lines(cert: &Path, key: &Path) -> String {
    format!(
        "tls_listen = \"127.0.0.1:0\"\ntls_certificate = \"{}\"\ntls_private_key = \"{}\"",
        cert.display(),
        key.display()
    )
}
