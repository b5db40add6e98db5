//! SIP over TLS for phones (rustls): the certificate the listener presents, read from PEM
//! files at start and again on SIGHUP (a renewed certificate is used by the next
//! connection; one that cannot be read leaves the old one in place), and the handshake.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
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
