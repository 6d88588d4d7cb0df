//! TLS 1.3 settings: server certificates from PEM files, client verification
//! against a CA file, and a development PKI generated on the fly with `rcgen`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where a server's certificate chain and private key come from.
#[derive(Debug, Clone)]
pub struct ServerTls {
    /// PEM file with the leaf certificate first, then intermediates.
    pub cert_chain: PathBuf,
    /// PEM file with the private key.
    pub private_key: PathBuf,
    /// Keeps a generated [`DevPki`] directory alive as long as it is in use.
    _dev: Option<Arc<tempfile::TempDir>>,
}

impl ServerTls {
    /// Certificate chain and key from PEM files.
    pub fn from_pem_files(cert_chain: impl Into<PathBuf>, private_key: impl Into<PathBuf>) -> Self {
        Self { cert_chain: cert_chain.into(), private_key: private_key.into(), _dev: None }
    }
}

/// How a client checks the server's certificate.
#[derive(Debug, Clone)]
pub enum ClientTls {
    /// Verify the chain against the CA certificates in this PEM file and the
    /// certificate's names against the server name given to `connect`.
    CaFile(PathBuf),
    /// Accept any certificate. For development only: anyone on the path can
    /// impersonate the server. A warning is logged for every endpoint that
    /// uses it.
    InsecureSkipVerify,
}

/// Why TLS material could not be produced or loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The development certificate could not be generated.
    #[error("cannot generate development certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// A file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A PEM file could not be loaded into TLS.
    #[error("cannot load {what} from {path}: {source} (is it a readable PEM file?)")]
    Load {
        /// What the file should hold.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// quiche's error.
        source: quiche::Error,
    },
}

/// A throwaway certificate authority and a server certificate it signed, for
/// development and tests. Clients verify against [`ca_cert`](Self::ca_cert)
/// exactly as they would in production.
#[derive(Debug, Clone)]
pub struct DevPki {
    /// The CA certificate (PEM) to trust.
    pub ca_cert: PathBuf,
    /// The server's certificate chain (PEM).
    pub cert_chain: PathBuf,
    /// The server's private key (PEM).
    pub private_key: PathBuf,
    dir: Option<Arc<tempfile::TempDir>>,
}

impl DevPki {
    /// Generates a CA and a server certificate for `names` (DNS names or IP
    /// addresses) in a new private temporary directory, removed when the
    /// last clone of this value and of the [`ServerTls`] made from it is gone.
    pub fn generate(names: &[&str]) -> Result<Self, TlsError> {
        let dir = tempfile::Builder::new()
            .prefix("stoq-dev-pki-")
            .tempdir()
            .map_err(|source| TlsError::Write { path: std::env::temp_dir(), source })?;
        let mut pki = Self::generate_in(dir.path(), names)?;
        pki.dir = Some(Arc::new(dir));
        Ok(pki)
    }

    /// Like [`generate`](Self::generate), writing `ca.pem`, `cert.pem` and
    /// `key.pem` into an existing directory that the caller keeps.
    pub fn generate_in(dir: &Path, names: &[&str]) -> Result<Self, TlsError> {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        // A unique name per CA, so two development CAs are never mistaken
        // for one another during chain building.
        let serial: u64 = rand::random();
        ca_params.distinguished_name.push(DnType::CommonName, format!("STOQ development CA {serial:016x}"));
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;

        let mut leaf_params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())?;
        leaf_params.distinguished_name.push(DnType::CommonName, names.first().copied().unwrap_or("stoq"));
        let leaf_key = KeyPair::generate()?;
        let leaf = leaf_params.signed_by(&leaf_key, &ca)?;

        let write = |name: &str, contents: String| {
            let path = dir.join(name);
            std::fs::write(&path, contents).map_err(|source| TlsError::Write { path: path.clone(), source })?;
            Ok::<_, TlsError>(path)
        };
        Ok(Self {
            ca_cert: write("ca.pem", ca.pem())?,
            cert_chain: write("cert.pem", leaf.pem() + &ca.pem())?,
            private_key: write("key.pem", leaf_key.serialize_pem())?,
            dir: None,
        })
    }

    /// Server settings using this PKI's certificate.
    pub fn server_tls(&self) -> ServerTls {
        ServerTls { cert_chain: self.cert_chain.clone(), private_key: self.private_key.clone(), _dev: self.dir.clone() }
    }

    /// Client settings trusting this PKI's CA.
    pub fn client_tls(&self) -> ClientTls {
        ClientTls::CaFile(self.ca_cert.clone())
    }
}

fn path_str(p: &Path) -> &str {
    // quiche takes &str paths; non-UTF-8 paths become an unloadable name and
    // fail with a clear Load error.
    p.to_str().unwrap_or("\u{fffd}")
}

pub(crate) fn apply_server(cfg: &mut quiche::Config, tls: &ServerTls) -> Result<(), TlsError> {
    cfg.load_cert_chain_from_pem_file(path_str(&tls.cert_chain)).map_err(|source| TlsError::Load {
        what: "certificate chain",
        path: tls.cert_chain.clone(),
        source,
    })?;
    cfg.load_priv_key_from_pem_file(path_str(&tls.private_key)).map_err(|source| TlsError::Load {
        what: "private key",
        path: tls.private_key.clone(),
        source,
    })?;
    cfg.verify_peer(false);
    Ok(())
}

pub(crate) fn apply_client(cfg: &mut quiche::Config, tls: &ClientTls) -> Result<(), TlsError> {
    match tls {
        ClientTls::CaFile(path) => {
            cfg.load_verify_locations_from_file(path_str(path)).map_err(|source| TlsError::Load {
                what: "CA certificates",
                path: path.clone(),
                source,
            })?;
            cfg.verify_peer(true);
        }
        ClientTls::InsecureSkipVerify => {
            log::warn!(
                "TLS certificate verification is DISABLED for this endpoint: anyone on the path can impersonate the server"
            );
            cfg.verify_peer(false);
        }
    }
    Ok(())
}

/// Name of a TLS alert (RFC 8446 §6), for error messages.
pub(crate) fn alert_name(alert: u8) -> &'static str {
    match alert {
        0 => "close_notify",
        10 => "unexpected_message",
        20 => "bad_record_mac",
        22 => "record_overflow",
        40 => "handshake_failure",
        42 => "bad_certificate",
        43 => "unsupported_certificate",
        44 => "certificate_revoked",
        45 => "certificate_expired",
        46 => "certificate_unknown",
        47 => "illegal_parameter",
        48 => "unknown_ca",
        49 => "access_denied",
        50 => "decode_error",
        51 => "decrypt_error",
        70 => "protocol_version",
        71 => "insufficient_security",
        80 => "internal_error",
        86 => "inappropriate_fallback",
        90 => "user_canceled",
        109 => "missing_extension",
        110 => "unsupported_extension",
        112 => "unrecognized_name",
        113 => "bad_certificate_status_response",
        115 => "unknown_psk_identity",
        116 => "certificate_required",
        120 => "no_application_protocol",
        _ => "unknown alert",
    }
}

/// What to tell the user about a TLS alert.
pub(crate) fn alert_hint(alert: u8) -> &'static str {
    match alert {
        42..=46 | 48 => "the certificate was not accepted: check the CA file and that the certificate names the server",
        120 => "the peers share no application protocol (ALPN): both must speak stoq/1",
        40 | 71 | 70 => "the peers could not agree on TLS parameters",
        51 => "a signature did not verify: the certificate was not issued by the trusted CA's key",
        _ => "see the peer's logs",
    }
}
