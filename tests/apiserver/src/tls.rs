//! HTTPS for the fake API server, as in-cluster clients meet a cluster's:
//! a CA made for the server, and a serving certificate it signed for the
//! addresses clients dial (127.0.0.1, `localhost`, and the names of the
//! `kubernetes` Service). A Pod trusts the CA through its service account's
//! `ca.crt`, which is what [`ServerTls::ca_pem`] gives.
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use tokio_rustls::{
    TlsAcceptor,
    rustls::{
        ServerConfig,
        crypto::ring,
        pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer},
    },
};

/// The names the serving certificate is valid for.
pub const SERVER_NAMES: [&str; 5] = [
    "127.0.0.1",
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
];

/// A CA and the server's certificate, ready to accept connections.
#[derive(Clone)]
pub struct ServerTls {
    ca_pem: String,
    acceptor: TlsAcceptor,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls").finish_non_exhaustive()
    }
}

impl ServerTls {
    /// A fresh CA ("syscensus test cluster CA") and a serving certificate
    /// for [`SERVER_NAMES`] signed by it.
    pub fn new() -> Self {
        let fail = |what: &str, e: &dyn std::fmt::Display| -> ! {
            panic!("failed to make the fake API server's {what}: {e}")
        };
        let ca_key = KeyPair::generate().unwrap_or_else(|e| fail("CA key", &e));
        let mut ca = CertificateParams::new(Vec::<String>::new())
            .unwrap_or_else(|e| fail("CA parameters", &e));
        ca.distinguished_name
            .push(DnType::CommonName, "syscensus test cluster CA");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca
            .self_signed(&ca_key)
            .unwrap_or_else(|e| fail("CA certificate", &e));
        let issuer = Issuer::new(ca, ca_key);
        let server_key = KeyPair::generate().unwrap_or_else(|e| fail("server key", &e));
        let mut server = CertificateParams::new(SERVER_NAMES.map(String::from).to_vec())
            .unwrap_or_else(|e| fail("server parameters", &e));
        server
            .distinguished_name
            .push(DnType::CommonName, "kube-apiserver");
        let server_cert = server
            .signed_by(&server_key, &issuer)
            .unwrap_or_else(|e| fail("server certificate", &e));
        let chain = vec![
            CertificateDer::from(server_cert.der().to_vec()),
            CertificateDer::from(ca_cert.der().to_vec()),
        ];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der()));
        let config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap_or_else(|e| fail("TLS configuration", &e))
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap_or_else(|e| fail("TLS configuration", &e));
        Self {
            ca_pem: ca_cert.pem(),
            acceptor: TlsAcceptor::from(Arc::new(config)),
        }
    }

    /// The CA certificate, PEM: the `ca.crt` of a service account, or a
    /// kubeconfig's `certificate-authority-data` (base64 of it).
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    pub(super) fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }
}

impl Default for ServerTls {
    fn default() -> Self {
        Self::new()
    }
}
