//! Self-signed TLS for the simulators: one throwaway CA per process and a leaf for
//! localhost/127.0.0.1/::1 signed by it, so clients can verify against the CA (rustls/webpki
//! does not accept a self-signed leaf as its own trust anchor).

use std::sync::{Arc, OnceLock};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

pub struct SimTls {
    /// PEM of the CA that signed the simulators' certificate: the CA bundle to give clients.
    pub ca_pem: String,
    pub server_config: Arc<rustls::ServerConfig>,
}

static TLS: OnceLock<Result<SimTls, String>> = OnceLock::new();

pub fn get() -> Result<&'static SimTls, String> {
    TLS.get_or_init(build).as_ref().map_err(Clone::clone)
}

fn build() -> Result<SimTls, String> {
    let e = |what: &str, err: &dyn std::fmt::Display| format!("simulator TLS: {what}: {err}");
    let ca_key = KeyPair::generate().map_err(|x| e("CA key", &x))?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(|x| e("CA", &x))?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "inventory-gateway simulator CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key).map_err(|x| e("CA", &x))?;

    let leaf_key = KeyPair::generate().map_err(|x| e("leaf key", &x))?;
    // 127.0.0.2 and 127.0.1.x: the UCS Central simulator (port 443 for ucscsdk) and its domains.
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "127.0.0.2".to_owned(),
        "::1".to_owned(),
    ];
    names.extend((1..=ucs_central_max_domains()).map(|k| format!("127.0.1.{k}")));
    // 127.0.2.x: the standalone servers' CIMCs behind the Intersight simulator.
    names.extend((1..=super::fleet::MAX_STANDALONE_CIMCS).map(|k| format!("127.0.2.{k}")));
    // 127.0.3.x and 127.0.4.x: simulated Redfish BMCs (standalone, and managed servers').
    names.extend(
        (1..=super::fleet::MAX_REDFISH_BMCS).map(|k| super::fleet::redfish_bmc(k).to_string()),
    );
    names.extend((1..=super::fleet::MAX_REDFISH_BMCS).map(|k| format!("127.0.4.{k}")));
    let mut leaf_params = CertificateParams::new(names).map_err(|x| e("leaf", &x))?;
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf = leaf_params
        .signed_by(&leaf_key, &ca_cert, &ca_key)
        .map_err(|x| e("leaf", &x))?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    // TLS 1.2 stays enabled: HPE's Python SDK speaks nothing else.
    let server_config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|x| e("protocol versions", &x))?
        .with_no_client_auth()
        .with_single_cert(
            vec![
                CertificateDer::from(leaf.der().to_vec()),
                CertificateDer::from(ca_cert.der().to_vec()),
            ],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
        )
        .map_err(|x| e("server config", &x))?;
    Ok(SimTls {
        ca_pem: ca_cert.pem(),
        server_config: Arc::new(server_config),
    })
}

fn ucs_central_max_domains() -> usize {
    super::ucs_central::MAX_DOMAINS
}
