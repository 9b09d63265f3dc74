//! Which certificate authorities TLS trusts: the operating system's store
//! (on Linux the system bundle, or `SSL_CERT_FILE` / `SSL_CERT_DIR` where
//! set), the built-in Mozilla roots only where that store holds none, and
//! the PEM certificates of an optional CA file on top.
//!
//! The CA file is read and checked at start; the system store is read when
//! the first request is made, so that a process that never calls out never
//! pays for it.

use std::path::{Path, PathBuf};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

/// Certificates added to the trusted roots, from a CA file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExtraRoots {
    /// The file they came from.
    pub path: Option<PathBuf>,
    certs: Vec<CertificateDer<'static>>,
}

/// Why a CA file cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CaFileProblem {
    Unreadable { detail: String },
    NoCertificate,
    BadCertificate { index: usize, detail: String },
}

impl ExtraRoots {
    /// Reads and checks the PEM certificates of `path`.
    pub fn read(path: &Path) -> Result<Self, CaFileProblem> {
        let pem = std::fs::read(path).map_err(|e| CaFileProblem::Unreadable {
            detail: e.to_string(),
        })?;
        let mut certs = Vec::new();
        for (index, cert) in CertificateDer::pem_slice_iter(&pem).enumerate() {
            let bad = |detail| CaFileProblem::BadCertificate {
                index: index + 1,
                detail,
            };
            let cert = cert.map_err(|e| bad(format!("{e:?}")))?;
            // The trust anchor is taken out now, as the client will: a
            // certificate it would refuse stops the start, not a call.
            rustls::RootCertStore::empty()
                .add(cert.clone())
                .map_err(|e| bad(e.to_string()))?;
            certs.push(cert);
        }
        if certs.is_empty() {
            return Err(CaFileProblem::NoCertificate);
        }
        Ok(Self {
            path: Some(path.to_owned()),
            certs,
        })
    }

    pub fn len(&self) -> usize {
        self.certs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.certs.is_empty()
    }
}

/// Sets the trusted roots of `builder`: the system's, or the built-in ones
/// where the system has none, and `extra`, and nothing else.
///
/// The roots are given to reqwest as the only ones (`tls_certs_only`), so
/// that the rule "built-in roots only where the system store holds none" is
/// ours to keep: reqwest's platform verifier would decide that by itself.
pub fn trust_roots(builder: reqwest::ClientBuilder, extra: &ExtraRoots) -> reqwest::ClientBuilder {
    install_crypto_provider();
    let system = rustls_native_certs::load_native_certs();
    for e in &system.errors {
        tracing::debug!(error = %e, "a part of the system certificate store could not be read");
    }
    // Stores often hold a few certificates rustls cannot use; they are
    // skipped one by one rather than failing the whole store.
    let der = |cert: &[u8]| reqwest::Certificate::from_der(cert).ok();
    let mut check = rustls::RootCertStore::empty();
    let mut roots: Vec<_> = system
        .certs
        .into_iter()
        .filter(|cert| check.add(cert.clone()).is_ok())
        .filter_map(|cert| der(&cert))
        .collect();
    let usable = roots.len();
    if usable == 0 {
        let built_in = webpki_root_certs::TLS_SERVER_ROOT_CERTS.iter();
        roots.extend(built_in.filter_map(|c| der(c)));
    }
    tracing::debug!(
        system = usable,
        extra = extra.len(),
        "trusted certificate authorities"
    );
    roots.extend(extra.certs.iter().filter_map(|c| der(c)));
    builder.tls_certs_only(roots)
}

/// The process's TLS primitives: ring's, installed once before the first
/// client is made (reqwest is built without a provider of its own).
pub fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_empty_file_is_refused() {
        let dir = std::env::temp_dir().join(format!("ca-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(matches!(
            ExtraRoots::read(&dir.join("absent.pem")),
            Err(CaFileProblem::Unreadable { .. })
        ));
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "no certificate here\n").unwrap();
        assert_eq!(ExtraRoots::read(&empty), Err(CaFileProblem::NoCertificate));
        let junk = dir.join("junk.pem");
        std::fs::write(
            &junk,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        assert!(matches!(
            ExtraRoots::read(&junk),
            Err(CaFileProblem::BadCertificate { index: 1, .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
