//! SIP over TLS (rustls). For phones: the certificate the listener presents, read from
//! PEM files at start and again on SIGHUP (a renewed certificate is used by the next
//! connection; one that cannot be read leaves the old one in place), and the handshake.
//! For trunks on TLS: the connections the switch opens itself, each checking that the
//! carrier's certificate is signed by an authority the trunk trusts (its `tls_ca`, else
//! the machine's store) and names the trunk (`tls_server_name`, else its host name),
//! which is also sent as SNI.

use crate::config::{Config, TrunkAddress, TrunkConfig};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// The certificate in use, swapped whole on reload.
#[derive(Debug)]
pub struct Certificates {
    current: RwLock<Arc<CertifiedKey>>,
}

impl Certificates {
    /// The chain in `certificate` and the key in `private_key` (PEM), checked to belong
    /// together.
    pub fn load(certificate: &str, private_key: &str) -> Result<Certificates, String> {
        Ok(Certificates {
            current: RwLock::new(Arc::new(read(certificate, private_key)?)),
        })
    }

    /// Read the files again; on failure the certificate in use stays.
    pub fn reload(&self, certificate: &str, private_key: &str) -> Result<(), String> {
        let fresh = read(certificate, private_key)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(fresh);
        Ok(())
    }

    /// What TLS handshakes with phones use.
    pub fn acceptor(self: &Arc<Certificates>) -> tokio_rustls::TlsAcceptor {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default TLS versions")
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        )
    }
}

fn read(certificate: &str, private_key: &str) -> Result<CertifiedKey, String> {
    let chain = CertificateDer::pem_file_iter(certificate)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("'{certificate}': {e}"))?;
    if chain.is_empty() {
        return Err(format!("'{certificate}' holds no certificate"));
    }
    let key =
        PrivateKeyDer::from_pem_file(private_key).map_err(|e| format!("'{private_key}': {e}"))?;
    let provider = rustls::crypto::ring::default_provider();
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| format!("'{private_key}': {e}"))?;
    let certified = CertifiedKey::new(chain, signing);
    certified
        .keys_match()
        .map_err(|e| format!("the key does not belong to the certificate: {e}"))?;
    Ok(certified)
}

/// How the switch opens TLS connections to its trunks, by trunk name.
#[derive(Clone, Default)]
pub struct TrunkTls {
    by_trunk: HashMap<String, TrunkConnector>,
}

/// One trunk's TLS: the name its certificate must carry and whom it trusts.
#[derive(Clone)]
pub struct TrunkConnector {
    pub server_name: ServerName<'static>,
    pub connector: tokio_rustls::TlsConnector,
}

impl TrunkTls {
    /// Every trunk with `transport = "tls"` of `cfg`; an error names the trunk and what is
    /// wrong (an unreadable CA file, a server name that is none).
    pub fn from_config(cfg: &Config) -> Result<TrunkTls, String> {
        let mut by_trunk = HashMap::new();
        let mut roots_by_file: HashMap<Option<String>, Arc<rustls::RootCertStore>> = HashMap::new();
        for (i, t) in cfg.trunks.iter().enumerate() {
            if t.transport != Some(crate::sip::Transport::Tls) {
                continue;
            }
            let server_name = server_name(t).map_err(|e| format!("trunks[{i}]: {e}"))?;
            let roots = match roots_by_file.get(&t.tls_ca) {
                Some(r) => r.clone(),
                None => {
                    let r = Arc::new(
                        roots(t.tls_ca.as_deref())
                            .map_err(|e| format!("trunks[{i}].tls_ca: {e}"))?,
                    );
                    roots_by_file.insert(t.tls_ca.clone(), r.clone());
                    r
                }
            };
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("ring supports the default TLS versions")
                .with_root_certificates(roots)
                .with_no_client_auth();
            by_trunk.insert(
                t.name.clone(),
                TrunkConnector {
                    server_name,
                    connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
                },
            );
        }
        Ok(TrunkTls { by_trunk })
    }

    pub fn get(&self, trunk: &str) -> Option<&TrunkConnector> {
        self.by_trunk.get(trunk)
    }
}

/// The name a trunk's certificate must carry: `tls_server_name`, else the host name of
/// its address, else its IP address.
fn server_name(t: &TrunkConfig) -> Result<ServerName<'static>, String> {
    let name = match (&t.tls_server_name, &t.address) {
        (Some(n), _) => n.clone(),
        (None, TrunkAddress::Host { name, .. }) => name.clone(),
        (None, TrunkAddress::At(addr)) => addr.ip().to_string(),
    };
    ServerName::try_from(name.clone())
        .map_err(|_| format!("tls_server_name: '{name}' is not a host name or an IP address"))
}

/// The authorities a trunk trusts: the certificates in `ca` (PEM), else the machine's.
fn roots(ca: Option<&str>) -> Result<rustls::RootCertStore, String> {
    let mut store = rustls::RootCertStore::empty();
    match ca {
        Some(file) => {
            let certs = CertificateDer::pem_file_iter(file)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("'{file}': {e}"))?;
            for c in certs {
                store.add(c).map_err(|e| format!("'{file}': {e}"))?;
            }
            if store.is_empty() {
                return Err(format!("'{file}' holds no certificate"));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(
                    "no tls_ca given and the machine trusts no authority (install ca-certificates)"
                        .into(),
                );
            }
        }
    }
    Ok(store)
}
