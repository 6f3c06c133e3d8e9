//! TLS to the database, with libpq's `sslmode` and `sslrootcert`.
//!
//! | `sslmode` | encrypted | the server's certificate |
//! | --- | --- | --- |
//! | `disable` | never | |
//! | `prefer` (default) | if the server offers it | not checked (checked as for `verify-ca` when a root certificate file is there) |
//! | `require` | always | as for `prefer` |
//! | `verify-ca` | always | signed by a certificate of `sslrootcert` |
//! | `verify-full` | always | signed by one of them, and for the host connected to |
//!
//! `sslrootcert` defaults to `~/.postgresql/root.crt`, as in libpq. tokio-postgres
//! knows only `disable`, `prefer` and `require`, and refuses `verify-ca`,
//! `verify-full` and `sslrootcert` in a URL; so they are read and removed
//! here, and the certificate checks done by a verifier of Cubby's own on top
//! of rustls (ring as the crypto provider). The server's handshake
//! signature is always checked, with the public key of the certificate it
//! sent.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use deadpool_postgres::tokio_postgres::config::SslMode as PgSslMode;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls13_signature_with_raw_key};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, SubjectPublicKeyInfoDer, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;
use x509_cert::der::{Decode, Encode};

use crate::engine::OpenError;

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Result<Self, OpenError> {
        Ok(match value {
            "disable" => Self::Disable,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            // libpq's `allow` tries without TLS first; Cubby does not.
            other => {
                return Err(OpenError::InvalidUrl {
                    reason: format!(
                        "sslmode={other} is not one of disable, prefer, require, verify-ca, \
                         verify-full"
                    ),
                });
            }
        })
    }

    /// What tokio-postgres is told: whether to ask for TLS at all.
    pub fn for_client(self) -> PgSslMode {
        match self {
            Self::Disable => PgSslMode::Disable,
            Self::Prefer => PgSslMode::Prefer,
            Self::Require | Self::VerifyCa | Self::VerifyFull => PgSslMode::Require,
        }
    }
}

/// The TLS settings of a connection string, taken out of it.
#[derive(Debug)]
pub(super) struct TlsSettings {
    pub mode: SslMode,
    /// `sslrootcert`, if the connection string names one.
    pub root_cert: Option<PathBuf>,
}

/// Splits `sslmode` and `sslrootcert` off a connection string (a
/// `postgres://` URL or `key=value` pairs), returning the rest for
/// tokio-postgres.
pub(super) fn take_settings(conn: &str) -> Result<(String, TlsSettings), OpenError> {
    let mut settings = TlsSettings {
        mode: SslMode::Prefer,
        root_cert: None,
    };
    let mut take = |key: &str, value: String| -> Result<bool, OpenError> {
        match key {
            "sslmode" => settings.mode = SslMode::parse(&value)?,
            "sslrootcert" => settings.root_cert = Some(PathBuf::from(value)),
            _ => return Ok(false),
        }
        Ok(true)
    };
    let rest = if conn.starts_with("postgres://") || conn.starts_with("postgresql://") {
        match conn.split_once('?') {
            None => conn.to_owned(),
            Some((base, query)) => {
                let mut kept = Vec::new();
                for pair in query.split('&').filter(|p| !p.is_empty()) {
                    let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                    if !take(key, percent_decode(value))? {
                        kept.push(pair);
                    }
                }
                if kept.is_empty() {
                    base.to_owned()
                } else {
                    format!("{base}?{}", kept.join("&"))
                }
            }
        }
    } else {
        let mut kept = Vec::new();
        for (key, value, raw) in key_values(conn) {
            if !take(&key, value)? {
                kept.push(raw);
            }
        }
        kept.join(" ")
    };
    Ok((rest, settings))
}

/// `%XX` escapes of a URL's query value decoded (invalid ones kept).
fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The `key=value` pairs of a libpq key-value connection string: key, value
/// (unquoted), and the pair as written.
fn key_values(conn: &str) -> Vec<(String, String, String)> {
    let mut pairs = Vec::new();
    let mut chars = conn.char_indices().peekable();
    loop {
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        let Some(&(start, _)) = chars.peek() else {
            break;
        };
        let mut key = String::new();
        while let Some((_, c)) = chars.next_if(|(_, c)| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        chars.next_if(|(_, c)| *c == '=');
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if(|(_, c)| *c == '\'').is_some() {
            while let Some((_, c)) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next().map(|(_, c)| c)),
                    '\'' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some((_, c)) = chars.next_if(|(_, c)| !c.is_whitespace()) {
                value.push(c);
            }
        }
        let end = chars.peek().map_or(conn.len(), |(i, _)| *i);
        pairs.push((key, value, conn[start..end].trim_end().to_owned()));
    }
    pairs
}

/// The connector for `settings`: rustls with the checks of its mode.
pub(super) fn connector(settings: &TlsSettings) -> Result<MakeRustlsConnect, OpenError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let root_file = settings
        .root_cert
        .clone()
        .or_else(|| default_root_cert().filter(|p| p.exists()));
    let check = match (settings.mode, &root_file) {
        (SslMode::VerifyFull, Some(file)) => Check::Full(web_pki(file, &provider)?),
        (SslMode::VerifyCa, Some(file)) => Check::Chain(web_pki(file, &provider)?),
        (SslMode::VerifyFull | SslMode::VerifyCa, None) => {
            return Err(tls_error(format!(
                "sslmode={} needs the certificate of the authority that signed the server's: \
                 give it as sslrootcert=FILE (or put it at ~/.postgresql/root.crt)",
                if settings.mode == SslMode::VerifyFull {
                    "verify-full"
                } else {
                    "verify-ca"
                }
            )));
        }
        // As libpq: a root certificate file, named or in its default place,
        // makes `prefer` and `require` check the chain.
        (_, Some(file)) => Check::Chain(web_pki(file, &provider)?),
        (_, None) => Check::Encrypt,
    };
    let verifier = Verifier {
        check,
        provider: provider.clone(),
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

fn default_root_cert() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|home| Path::new(&home).join(".postgresql/root.crt"))
}

/// A verifier that checks a server's certificate against the roots in
/// `file`.
fn web_pki(
    file: &Path,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<WebPkiServerVerifier>, OpenError> {
    let mut roots = RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(file)
        .map_err(|e| tls_error(format!("cannot read sslrootcert {}: {e}", file.display())))?;
    for cert in certs {
        let cert = cert
            .map_err(|e| tls_error(format!("cannot read sslrootcert {}: {e}", file.display())))?;
        roots
            .add(cert)
            .map_err(|e| tls_error(format!("sslrootcert {}: {e}", file.display())))?;
    }
    if roots.is_empty() {
        return Err(tls_error(format!(
            "sslrootcert {} holds no certificate",
            file.display()
        )));
    }
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| tls_error(e.to_string()))
}

/// The public key of a certificate, to check the server's handshake
/// signature with. Taken out here rather than by webpki, which refuses
/// X.509 version 1 certificates (Citus makes such self-signed ones; libpq
/// accepts them); `verify-ca` and `verify-full` still need version 3, as
/// webpki checks the chain.
fn public_key(
    cert: &CertificateDer<'_>,
) -> Result<SubjectPublicKeyInfoDer<'static>, rustls::Error> {
    let parsed = x509_cert::Certificate::from_der(cert.as_ref())
        .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
    let spki = parsed
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
    Ok(SubjectPublicKeyInfoDer::from(spki))
}

fn bad_key(_: webpki::Error) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::BadEncoding)
}

fn tls_error(reason: String) -> OpenError {
    OpenError::InvalidUrl { reason }
}

/// What is checked of the server's certificate.
#[derive(Debug)]
enum Check {
    /// Nothing: the connection is encrypted, not authenticated.
    Encrypt,
    /// That a trusted authority signed it (`verify-ca`).
    Chain(Arc<WebPkiServerVerifier>),
    /// That, and that it names the host (`verify-full`).
    Full(Arc<WebPkiServerVerifier>),
}

#[derive(Debug)]
struct Verifier {
    check: Check,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match &self.check {
            Check::Encrypt => Ok(ServerCertVerified::assertion()),
            Check::Full(inner) => {
                inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            }
            // The name is checked after the chain: a name error means the
            // chain was good.
            Check::Chain(inner) => match inner.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            ) {
                Err(rustls::Error::InvalidCertificate(
                    CertificateError::NotValidForName
                    | CertificateError::NotValidForNameContext { .. },
                )) => Ok(ServerCertVerified::assertion()),
                other => other,
            },
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // TLS 1.2 does not say which algorithm of the scheme: try each.
        let spki = public_key(cert)?;
        let key = webpki::RawPublicKeyEntity::try_from(&spki).map_err(bad_key)?;
        let algorithms = &self.provider.signature_verification_algorithms;
        let candidates = algorithms
            .mapping
            .iter()
            .filter(|(scheme, _)| *scheme == dss.scheme)
            .flat_map(|(_, algs)| algs.iter());
        for alg in candidates {
            match key.verify_signature(*alg, message, dss.signature()) {
                Ok(()) => return Ok(HandshakeSignatureValid::assertion()),
                Err(webpki::Error::UnsupportedSignatureAlgorithmForPublicKeyContext(_)) => {}
                Err(_) => break,
            }
        }
        Err(rustls::Error::InvalidCertificate(
            CertificateError::BadSignature,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature_with_raw_key(
            message,
            &public_key(cert)?,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn tls_settings_are_taken_out_of_urls_and_key_value_strings() {
        let (rest, s) = take_settings(
            "postgres://ada:pw@db:5432/cubby?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&application_name=x",
        )
        .unwrap();
        assert_eq!(rest, "postgres://ada:pw@db:5432/cubby?application_name=x");
        assert_eq!(s.mode, SslMode::VerifyFull);
        assert_eq!(s.root_cert.as_deref(), Some(Path::new("/etc/ca.pem")));
        let (rest, s) = take_settings("postgres://db/cubby?sslmode=require").unwrap();
        assert_eq!(
            (rest.as_str(), s.mode),
            ("postgres://db/cubby", SslMode::Require)
        );
        let (rest, s) = take_settings("postgres://db/cubby").unwrap();
        assert_eq!(
            (rest.as_str(), s.mode),
            ("postgres://db/cubby", SslMode::Prefer)
        );
        let (rest, s) =
            take_settings("host=db user=ada sslmode = 'verify-ca' sslrootcert='/a b.pem' dbname=c")
                .unwrap();
        assert_eq!(rest, "host=db user=ada dbname=c");
        assert_eq!(s.mode, SslMode::VerifyCa);
        assert_eq!(s.root_cert.as_deref(), Some(Path::new("/a b.pem")));
        assert!(take_settings("postgres://db/cubby?sslmode=allow").is_err());
        assert!(take_settings("postgres://db/cubby?sslmode=bogus").is_err());
    }

    #[test]
    fn verify_modes_need_a_root_certificate_that_exists() {
        let settings = TlsSettings {
            mode: SslMode::VerifyFull,
            root_cert: Some(PathBuf::from("/nonexistent/ca.pem")),
        };
        let e = connector(&settings).err().unwrap().to_string();
        assert!(e.contains("/nonexistent/ca.pem"), "{e}");
    }
}
