//! The built-in certificate authority: a root CA and an issuing CA made at `kopir init`, the HTTPS server
//! certificate, the platform's own client certificate for calling banks, client certificates for participants'
//! systems signed from their CSRs, and the certificate revocation list.
//!
//! Key files live in `<data_dir>/pki` (0700) with mode 0600 and are never logged, stored in the database or put in a
//! snapshot. Every certificate made is recorded in the `certificates` table, which is also where revocation lives.

pub mod certs;
pub mod console;
pub mod crl;
pub mod files;
pub mod lifecycle;
pub mod local_keys;
pub mod routes;
pub mod signing;

/// Every route of this domain (certificate files, the CRL and the console list of certificates), mounted by the web server.
pub fn router() -> axum::Router<crate::web::AppState> {
    axum::Router::new().merge(routes::router()).merge(console::router())
}

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, CrlDistributionPoint, DistinguishedName,
    DnType, DnValue, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use thiserror::Error;
use time::{Duration, OffsetDateTime};

use crate::clock;
use crate::config::{Config, PkiConfig};
use crate::digest::sha256_hex;
pub use certs::{CertKind, CertRecord, CertSerial, CertStatus, RevocationReason};

#[derive(Debug, Error)]
pub enum PkiError {
    #[error("{path}: {error}")]
    File { path: PathBuf, error: std::io::Error },
    #[error("{0}: the certificate authority is incomplete; restore the pki directory from a backup")]
    Incomplete(PathBuf),
    #[error("the certificate signing request is not acceptable: {0}")]
    BadCsr(String),
    #[error("certificate {0}: {1}")]
    BadCertificate(PathBuf, String),
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("no certificate with serial {0}")]
    NoSuchCertificate(String),
    #[error("certificate {serial} is a {kind} certificate and cannot be revoked this way")]
    NotRevocable { serial: String, kind: &'static str },
    #[error("certificate {0} is already revoked")]
    AlreadyRevoked(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

impl From<rusqlite::Error> for PkiError {
    fn from(e: rusqlite::Error) -> Self {
        PkiError::Store(e.into())
    }
}

/// Where the CA's files are.
#[derive(Debug, Clone)]
pub struct PkiPaths {
    pub dir: PathBuf,
}

impl PkiPaths {
    pub fn new(config: &Config) -> PkiPaths {
        PkiPaths { dir: config.pki_dir() }
    }
    pub fn root_cert(&self) -> PathBuf {
        self.dir.join("root-ca.pem")
    }
    pub fn root_key(&self) -> PathBuf {
        self.dir.join("root-ca.key")
    }
    pub fn issuing_cert(&self) -> PathBuf {
        self.dir.join("issuing-ca.pem")
    }
    pub fn issuing_key(&self) -> PathBuf {
        self.dir.join("issuing-ca.key")
    }
    pub fn server_cert(&self) -> PathBuf {
        self.dir.join("server.pem")
    }
    pub fn server_key(&self) -> PathBuf {
        self.dir.join("server.key")
    }
    pub fn platform_client_cert(&self) -> PathBuf {
        self.dir.join("platform-client.pem")
    }
    pub fn platform_client_key(&self) -> PathBuf {
        self.dir.join("platform-client.key")
    }
}

fn read_text(path: &Path) -> Result<String, PkiError> {
    std::fs::read_to_string(path).map_err(|error| PkiError::File { path: path.to_path_buf(), error })
}

fn read_private(path: &Path) -> Result<String, PkiError> {
    files::read_key(path).map_err(|error| PkiError::File { path: path.to_path_buf(), error })
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
    move |error| PkiError::File { path: path.to_path_buf(), error }
}

/// The common name of the platform's own client certificate (reserved: no organisation may register a name like it).
pub const PLATFORM_CLIENT_NAME: &str = "kopir platform client";

/// The certificate policy that marks the platform's own client certificate, and that no participant's certificate
/// ever carries (participants' certificates are made from scratch, nothing of a CSR's extensions is copied). A bank
/// recognises the platform by this policy in the certificatePolicies extension of a client certificate that chains
/// to the platform's root — never by the subject, which participants choose. The OID is a UUID OID (ITU-T X.667,
/// arc 2.25), unique without registration.
pub const PLATFORM_CLIENT_POLICY: &str = "2.25.95442352668626155380301802102688163027";
const PLATFORM_CLIENT_POLICY_UUID: u128 = 95442352668626155380301802102688163027;
/// id-ce-certificatePolicies (RFC 5280 §4.2.1.4).
const CERTIFICATE_POLICIES: &[u64] = &[2, 5, 29, 32];

/// The DER content (without tag and length) of [`PLATFORM_CLIENT_POLICY`]: 2.25 in one byte, then the UUID in base 128.
fn platform_policy_oid() -> Vec<u8> {
    let mut arc = Vec::new();
    let mut n = PLATFORM_CLIENT_POLICY_UUID;
    arc.push((n & 0x7f) as u8);
    n >>= 7;
    while n > 0 {
        arc.push(((n & 0x7f) as u8) | 0x80);
        n >>= 7;
    }
    arc.push(40 * 2 + 25);
    arc.reverse();
    arc
}

/// certificatePolicies ::= SEQUENCE OF PolicyInformation { policyIdentifier } with the platform's policy alone.
fn platform_policy_extension() -> rcgen::CustomExtension {
    // Every part is far below 128 bytes, so each length is one byte.
    let tlv = |tag: u8, content: Vec<u8>| -> Vec<u8> {
        let mut out = vec![tag, content.len() as u8];
        out.extend(content);
        out
    };
    let policies = tlv(0x30, tlv(0x30, tlv(0x06, platform_policy_oid())));
    rcgen::CustomExtension::from_oid_content(CERTIFICATE_POLICIES, policies)
}

/// Whether `der` (a client certificate, already verified to chain to the platform's root) is the platform's own:
/// it carries [`PLATFORM_CLIENT_POLICY`].
pub fn is_platform_client(der: &[u8]) -> bool {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else { return false };
    let wanted = platform_policy_oid();
    cert.extensions().iter().any(|extension| match extension.parsed_extension() {
        x509_parser::extensions::ParsedExtension::CertificatePolicies(policies) => {
            policies.iter().any(|policy| policy.policy_id.as_bytes() == wanted.as_slice())
        }
        _ => false,
    })
}

/// A fresh positive 16-byte serial (RFC 5280 allows up to 20). rcgen's default derives the serial from the public
/// key, which repeats when a key is re-certified; random serials never do.
pub fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    // Positive and without a leading zero byte, so the DER integer and our hex string are the same bytes.
    bytes[0] = (bytes[0] & 0x7f).max(1);
    SerialNumber::from_slice(&bytes)
}

fn dn(common_name: &str, pki: &PkiConfig) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, pki.country.as_str());
    dn.push(DnType::OrganizationName, pki.organization.as_str());
    dn.push(DnType::CommonName, common_name);
    dn
}

fn validity(params: &mut CertificateParams, days: u32, cap: Option<OffsetDateTime>) {
    let now = clock::now();
    // A few minutes back-dated: a participant whose clock is slightly behind must not see "not yet valid".
    params.not_before = now - Duration::minutes(5);
    let end = now + Duration::days(days.into());
    params.not_after = match cap {
        Some(cap) if cap < end => cap,
        _ => end,
    };
}

/// Bytes that are not a DER X.509 certificate (the parser's words).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct NotACertificate(#[from] x509_parser::nom::Err<x509_parser::error::X509Error>);

/// The parts of a certificate the platform records.
pub fn describe(der: &[u8]) -> Result<(String, String, String, String), NotACertificate> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)?;
    let serial = hex::encode(cert.raw_serial());
    let subject = cert.subject().to_string();
    let not_before = clock::rfc3339(cert.validity().not_before.to_datetime());
    let not_after = clock::rfc3339(cert.validity().not_after.to_datetime());
    Ok((serial, subject, not_before, not_after))
}

/// A `certificates` row for a certificate the CA made.
pub fn record_for(
    der: &[u8],
    pem: &str,
    kind: CertKind,
    label: &str,
    issued_by: &str,
) -> Result<CertRecord, NotACertificate> {
    let (serial, subject, not_before, not_after) = describe(der)?;
    Ok(CertRecord {
        serial,
        kind,
        label: label.to_string(),
        subject,
        sha256: sha256_hex(der),
        not_before,
        not_after,
        pem: pem.to_string(),
        issued_at: clock::now_rfc3339(),
        issued_by: issued_by.to_string(),
        revoked_at: None,
        revocation_reason: None,
    })
}

fn first_der(pem: &str, path: &Path) -> Result<CertificateDer<'static>, PkiError> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .next()
        .ok_or_else(|| PkiError::BadCertificate(path.to_path_buf(), "no certificate in file".into()))?
        .map_err(|e| PkiError::BadCertificate(path.to_path_buf(), e.to_string()))
}

/// One step of `kopir init`'s CA set-up, for the report.
#[derive(Debug, Clone)]
pub struct Step {
    pub what: &'static str,
    pub path: PathBuf,
    pub created: bool,
}

/// Creates whatever part of the CA is missing and leaves every existing file untouched. Returns what it did and
/// the records of all the platform's own certificates (so the database can be brought in line).
pub fn bootstrap(config: &Config) -> Result<(Vec<Step>, Vec<CertRecord>), PkiError> {
    let paths = PkiPaths::new(config);
    files::private_dir(&paths.dir).map_err(io(&paths.dir))?;
    let pki = &config.pki;
    let mut steps = Vec::new();
    let mut records = Vec::new();
    let actor = "system:init";

    // Root CA: made once; without it nothing else can be made.
    let root_exists = paths.root_cert().exists() && paths.root_key().exists();
    if !root_exists {
        if paths.issuing_cert().exists() || paths.server_cert().exists() {
            return Err(PkiError::Incomplete(paths.root_cert()));
        }
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = dn(&format!("{} Root CA", pki.organization), pki);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(1));
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        params.serial_number = Some(random_serial());
        validity(&mut params, pki.root_validity_days, None);
        let cert = params.self_signed(&key)?;
        files::write_key(&paths.root_key(), &key.serialize_pem()).map_err(io(&paths.root_key()))?;
        files::write_cert(&paths.root_cert(), &cert.pem()).map_err(io(&paths.root_cert()))?;
    }
    steps.push(Step { what: "root CA", path: paths.root_cert(), created: !root_exists });
    let root_pem = read_text(&paths.root_cert())?;
    let root_der = first_der(&root_pem, &paths.root_cert())?;
    records.push(
        record_for(&root_der, &root_pem, CertKind::RootCa, "root CA", actor)
            .map_err(|e| PkiError::BadCertificate(paths.root_cert(), e.to_string()))?,
    );

    let issuing_exists = paths.issuing_cert().exists() && paths.issuing_key().exists();
    if !issuing_exists {
        let root_key = KeyPair::from_pem(&read_private(&paths.root_key())?)?;
        let root = Issuer::from_ca_cert_der(&root_der, root_key)?;
        let root_not_after = not_after(&root_der);
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = dn(&format!("{} Issuing CA 1", pki.organization), pki);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(random_serial());
        validity(&mut params, pki.issuing_validity_days, root_not_after);
        let cert = params.signed_by(&key, &root)?;
        files::write_key(&paths.issuing_key(), &key.serialize_pem()).map_err(io(&paths.issuing_key()))?;
        files::write_cert(&paths.issuing_cert(), &cert.pem()).map_err(io(&paths.issuing_cert()))?;
    }
    steps.push(Step { what: "issuing CA", path: paths.issuing_cert(), created: !issuing_exists });

    let authority = Authority::load(config)?;
    records.push(authority.issuing_record()?);

    let leaves: [(&'static str, CertKind, PathBuf, PathBuf); 2] = [
        ("server certificate", CertKind::Server, paths.server_cert(), paths.server_key()),
        (
            "platform client certificate",
            CertKind::PlatformClient,
            paths.platform_client_cert(),
            paths.platform_client_key(),
        ),
    ];
    for (what, kind, cert_path, key_path) in leaves {
        let exists = cert_path.exists() && key_path.exists();
        if !exists {
            authority.write_leaf(config, kind, &cert_path, &key_path)?;
        }
        steps.push(Step { what, path: cert_path.clone(), created: !exists });
        let pem = read_text(&cert_path)?;
        let der = first_der(&pem, &cert_path)?;
        let leaf_pem = pem_of(&der);
        records.push(
            record_for(&der, &leaf_pem, kind, what, actor)
                .map_err(|e| PkiError::BadCertificate(cert_path, e.to_string()))?,
        );
    }
    Ok((steps, records))
}

fn not_after(der: &[u8]) -> Option<OffsetDateTime> {
    x509_parser::parse_x509_certificate(der).ok().map(|(_, c)| c.validity().not_after.to_datetime())
}

/// PEM text of one DER certificate.
pub fn pem_of(der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// The CA at run time: the issuing CA's key (to sign client certificates and CRLs) and the public certificates.
pub struct Authority {
    pub root_pem: String,
    pub root_der: CertificateDer<'static>,
    pub issuing_pem: String,
    pub issuing_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
    issuing_not_after: Option<OffsetDateTime>,
    crl_url: String,
    pki: PkiConfig,
}

impl Authority {
    /// Loads the CA from the data directory. The root key is not loaded: only `init` needs it.
    pub fn load(config: &Config) -> Result<Authority, PkiError> {
        let paths = PkiPaths::new(config);
        let root_pem = read_text(&paths.root_cert())?;
        let root_der = first_der(&root_pem, &paths.root_cert())?;
        let issuing_pem = read_text(&paths.issuing_cert())?;
        let issuing_der = first_der(&issuing_pem, &paths.issuing_cert())?;
        let key = KeyPair::from_pem(&read_private(&paths.issuing_key())?)?;
        let issuer = Issuer::from_ca_cert_der(&issuing_der, key)?;
        Ok(Authority {
            issuing_not_after: not_after(&issuing_der),
            root_pem,
            root_der,
            issuing_pem,
            issuing_der,
            issuer,
            crl_url: format!("{}/pki/crl.pem", config.server.public_url.trim_end_matches('/')),
            pki: config.pki.clone(),
        })
    }

    /// Makes a fresh key and certificate for the server or the platform client and writes both files.
    fn write_leaf(&self, config: &Config, kind: CertKind, cert_path: &Path, key_path: &Path) -> Result<(), PkiError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let params = match kind {
            CertKind::Server => self.server_params(config)?,
            _ => {
                let mut params = self.leaf_params(PLATFORM_CLIENT_NAME, ExtendedKeyUsagePurpose::ClientAuth);
                params.custom_extensions.push(platform_policy_extension());
                params
            }
        };
        let cert = params.signed_by(&key, &self.issuer)?;
        files::write_key(key_path, &key.serialize_pem()).map_err(io(key_path))?;
        files::write_cert(cert_path, &format!("{}{}", cert.pem(), self.issuing_pem)).map_err(io(cert_path))
    }

    /// Replaces the server certificate and key with new ones for the configured host names and addresses.
    /// Returns the serial of the replaced certificate (if it could be read) and the new certificate's record.
    pub fn renew_server(&self, config: &Config, actor: &str) -> Result<(Option<String>, CertRecord), PkiError> {
        let paths = PkiPaths::new(config);
        let old = read_text(&paths.server_cert())
            .ok()
            .and_then(|pem| first_der(&pem, &paths.server_cert()).ok())
            .and_then(|der| describe(&der).ok())
            .map(|(serial, ..)| serial);
        self.write_leaf(config, CertKind::Server, &paths.server_cert(), &paths.server_key())?;
        let pem = read_text(&paths.server_cert())?;
        let der = first_der(&pem, &paths.server_cert())?;
        let record = record_for(&der, &pem_of(&der), CertKind::Server, "server certificate", actor)
            .map_err(|e| PkiError::BadCertificate(paths.server_cert(), e.to_string()))?;
        Ok((old, record))
    }

    /// Re-issues the platform's client certificate when the one on disk lacks [`PLATFORM_CLIENT_POLICY`] (made
    /// before banks recognised the platform by it). Returns the replaced serial and the new record, or `None` when
    /// the certificate already carries the policy.
    pub fn mark_platform_client(
        &self,
        config: &Config,
        actor: &str,
    ) -> Result<Option<(Option<String>, CertRecord)>, PkiError> {
        let paths = PkiPaths::new(config);
        let (cert_path, key_path) = (paths.platform_client_cert(), paths.platform_client_key());
        let current = read_text(&cert_path).ok().and_then(|pem| first_der(&pem, &cert_path).ok());
        if current.as_ref().is_some_and(|der| is_platform_client(der)) {
            return Ok(None);
        }
        let old = current.and_then(|der| describe(&der).ok()).map(|(serial, ..)| serial);
        self.write_leaf(config, CertKind::PlatformClient, &cert_path, &key_path)?;
        let pem = read_text(&cert_path)?;
        let der = first_der(&pem, &cert_path)?;
        let record = record_for(&der, &pem_of(&der), CertKind::PlatformClient, "platform client certificate", actor)
            .map_err(|e| PkiError::BadCertificate(cert_path, e.to_string()))?;
        Ok(Some((old, record)))
    }

    fn issuing_record(&self) -> Result<CertRecord, PkiError> {
        record_for(&self.issuing_der, &self.issuing_pem, CertKind::IssuingCa, "issuing CA", "system:init")
            .map_err(|e| PkiError::BadCertificate(PathBuf::from("issuing-ca.pem"), e.to_string()))
    }

    pub fn issuer(&self) -> &Issuer<'static, KeyPair> {
        &self.issuer
    }

    fn leaf_params(&self, common_name: &str, usage: ExtendedKeyUsagePurpose) -> CertificateParams {
        let mut params = CertificateParams::default();
        params.distinguished_name = dn(common_name, &self.pki);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![usage];
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(random_serial());
        params.crl_distribution_points = vec![CrlDistributionPoint { uris: vec![self.crl_url.clone()] }];
        let days = if params.extended_key_usages.contains(&ExtendedKeyUsagePurpose::ServerAuth) {
            self.pki.server_validity_days
        } else {
            self.pki.client_validity_days
        };
        validity(&mut params, days, self.issuing_not_after);
        params
    }

    fn server_params(&self, config: &Config) -> Result<CertificateParams, PkiError> {
        let first = config.server.hostnames.first().map(String::as_str).unwrap_or("localhost");
        let mut params = self.leaf_params(first, ExtendedKeyUsagePurpose::ServerAuth);
        let mut sans = Vec::new();
        for name in &config.server.hostnames {
            sans.push(SanType::DnsName(name.clone().try_into()?));
        }
        for ip in &config.server.ip_addresses {
            sans.push(SanType::IpAddress(*ip));
        }
        params.subject_alt_names = sans;
        Ok(params)
    }

    /// Signs a participant's CSR into a client (transport) certificate. Only the CSR's public key and its common
    /// and organisation names are taken: the platform decides every extension (no CA bit, client authentication
    /// only, its own validity and serial), whatever the request asked for.
    pub fn issue_client(&self, csr_pem: &str, label: &str, issued_by: &str) -> Result<Issued, PkiError> {
        self.issue_client_for(csr_pem, label, issued_by, None)
    }

    /// Like [`Authority::issue_client`], but for a participant the platform knows: `organisation` (its registered
    /// name) becomes the certificate's O whatever the CSR says, so the subject cannot claim another participant.
    pub fn issue_client_for(
        &self,
        csr_pem: &str,
        label: &str,
        issued_by: &str,
        organisation: Option<&str>,
    ) -> Result<Issued, PkiError> {
        check_csr_key(csr_pem)?;
        let requested =
            CertificateSigningRequestParams::from_pem(csr_pem).map_err(|e| PkiError::BadCsr(csr_error(&e)))?;
        let cn = dn_text(&requested.params.distinguished_name, DnType::CommonName)
            .ok_or_else(|| PkiError::BadCsr("the subject has no common name (CN)".into()))?;
        if cn.is_empty() || cn.len() > 64 || cn.chars().any(char::is_control) {
            return Err(PkiError::BadCsr("the common name must be 1 to 64 printable characters".into()));
        }
        let mut params = self.leaf_params(&cn, ExtendedKeyUsagePurpose::ClientAuth);
        let mut subject = DistinguishedName::new();
        subject.push(DnType::CountryName, self.pki.country.as_str());
        let requested_org = dn_text(&requested.params.distinguished_name, DnType::OrganizationName);
        let org = match organisation {
            // Longer names are cut at 64 characters (the X.520 upper bound of O).
            Some(name) => Some(name.chars().filter(|c| !c.is_control()).take(64).collect::<String>()),
            None => requested_org,
        };
        if let Some(org) = org
            && !org.is_empty()
            && org.len() <= 64
            && !org.chars().any(char::is_control)
        {
            subject.push(DnType::OrganizationName, org);
        }
        subject.push(DnType::CommonName, cn);
        params.distinguished_name = subject;
        let cert = params.signed_by(&requested.public_key, &self.issuer)?;
        let leaf_pem = cert.pem();
        let record = record_for(cert.der(), &leaf_pem, CertKind::Client, label, issued_by)
            .map_err(|e| PkiError::BadCsr(e.to_string()))?;
        Ok(Issued { chain_pem: format!("{leaf_pem}{}", self.issuing_pem), record })
    }

    /// Certificates a client should trust for the server, and a verifier should trust for clients: the root.
    pub fn trust_anchor_pem(&self) -> &str {
        &self.root_pem
    }
}

/// A freshly issued certificate: its record and the PEM chain (leaf, then issuing CA) handed to the participant.
pub struct Issued {
    pub record: CertRecord,
    pub chain_pem: String,
}

fn dn_text(dn: &DistinguishedName, ty: DnType) -> Option<String> {
    match dn.get(&ty)? {
        DnValue::PrintableString(s) => Some(s.to_string()),
        DnValue::Utf8String(s) => Some(s.clone()),
        DnValue::Ia5String(s) => Some(s.to_string()),
        DnValue::TeletexString(s) => Some(s.to_string()),
        _ => None,
    }
}

fn csr_error(e: &rcgen::Error) -> String {
    match e {
        rcgen::Error::CouldNotParseCertificationRequest => "it is not a PEM certificate signing request".into(),
        rcgen::Error::InvalidCertificationRequestSignature => "its signature does not verify".into(),
        rcgen::Error::UnsupportedSignatureAlgorithm => {
            "its key type is not supported (use ECDSA P-256/P-384, Ed25519 or RSA of 2048 bits or more)".into()
        }
        rcgen::Error::UnsupportedExtension => "it asks for an extension the platform does not issue".into(),
        other => other.to_string(),
    }
}

/// RSA keys below 2048 bits are refused; EC and Ed25519 keys are accepted as rcgen parsed them.
fn check_csr_key(csr_pem: &str) -> Result<(), PkiError> {
    use x509_parser::prelude::FromDer;
    let der = rustls_pki_types::CertificateSigningRequestDer::from_pem_slice(csr_pem.as_bytes())
        .map_err(|_| PkiError::BadCsr("it is not a PEM certificate signing request".into()))?;
    let (_, csr) = x509_parser::certification_request::X509CertificationRequest::from_der(der.as_ref())
        .map_err(|_| PkiError::BadCsr("it cannot be parsed".into()))?;
    if let Ok(x509_parser::public_key::PublicKey::RSA(rsa)) = csr.certification_request_info.subject_pki.parsed()
        && rsa.key_size() < 2048
    {
        return Err(PkiError::BadCsr(format!("its RSA key has {} bits; 2048 or more are required", rsa.key_size())));
    }
    Ok(())
}

/// The server's certificate chain and key, for rustls.
pub struct TlsIdentity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl TlsIdentity {
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<TlsIdentity, PkiError> {
        let pem = read_text(cert_path)?;
        let chain = CertificateDer::pem_slice_iter(pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| PkiError::BadCertificate(cert_path.to_path_buf(), e.to_string()))?;
        if chain.is_empty() {
            return Err(PkiError::BadCertificate(cert_path.to_path_buf(), "no certificate in file".into()));
        }
        let key_pem = read_private(key_path)?;
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|_| PkiError::BadCertificate(key_path.to_path_buf(), "not a PEM private key".into()))?;
        Ok(TlsIdentity { chain, key })
    }

    /// Names the server certificate does not cover among the configured ones (to warn about at start-up).
    pub fn uncovered_names(&self, hostnames: &[String], ips: &[IpAddr]) -> Vec<String> {
        let Some(leaf) = self.chain.first() else { return hostnames.to_vec() };
        let Ok((_, cert)) = x509_parser::parse_x509_certificate(leaf.as_ref()) else { return hostnames.to_vec() };
        let mut dns = Vec::new();
        let mut addrs = Vec::new();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    x509_parser::extensions::GeneralName::DNSName(n) => dns.push(n.to_ascii_lowercase()),
                    x509_parser::extensions::GeneralName::IPAddress(b) => addrs.push(b.to_vec()),
                    _ => {}
                }
            }
        }
        let mut missing: Vec<String> =
            hostnames.iter().filter(|h| !dns.contains(&h.to_ascii_lowercase())).cloned().collect();
        for ip in ips {
            let bytes = match ip {
                IpAddr::V4(v4) => v4.octets().to_vec(),
                IpAddr::V6(v6) => v6.octets().to_vec(),
            };
            if !addrs.contains(&bytes) {
                missing.push(ip.to_string());
            }
        }
        missing
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn authority() -> (tempfile::TempDir, Config, Authority) {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::defaults().unwrap();
        config.data_dir = dir.path().join("data");
        bootstrap(&config).unwrap();
        let authority = Authority::load(&config).unwrap();
        (dir, config, authority)
    }

    #[test]
    fn the_platform_client_certificate_carries_the_policy_and_a_csr_asking_for_it_never_gets_it() {
        let (_dir, config, authority) = authority();
        let paths = PkiPaths::new(&config);
        let pem = std::fs::read_to_string(paths.platform_client_cert()).unwrap();
        let der = first_der(&pem, &paths.platform_client_cert()).unwrap();
        assert!(is_platform_client(der.as_ref()));
        let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
        let policies = cert
            .extensions()
            .iter()
            .find_map(|e| match e.parsed_extension() {
                x509_parser::extensions::ParsedExtension::CertificatePolicies(p) => Some(p.clone()),
                _ => None,
            })
            .unwrap();
        assert_eq!(policies.len(), 1);
        // The encoding is the OID the documentation names: 2.25 in the first byte, then one arc in base 128.
        let bytes = policies[0].policy_id.as_bytes();
        assert_eq!(bytes[0], 40 * 2 + 25);
        let arc = bytes[1..].iter().fold(0u128, |n, b| (n << 7) | u128::from(b & 0x7f));
        assert_eq!(format!("2.25.{arc}"), PLATFORM_CLIENT_POLICY);

        // A participant's CSR with the platform's subject that asks for the platform's policy.
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name = dn(PLATFORM_CLIENT_NAME, &config.pki);
        params.custom_extensions.push(platform_policy_extension());
        let csr = params.serialize_request(&key).unwrap().pem().unwrap();
        match authority.issue_client(&csr, "impostor", "test") {
            Err(PkiError::BadCsr(_)) => {}
            Err(other) => panic!("unexpected error {other}"),
            Ok(issued) => {
                let der = CertificateDer::pem_slice_iter(issued.chain_pem.as_bytes()).next().unwrap().unwrap();
                assert!(!is_platform_client(der.as_ref()), "a participant's certificate carries the platform's policy");
            }
        }
        // Nothing on disk changes when the certificate already carries the policy.
        assert!(authority.mark_platform_client(&config, "test").unwrap().is_none());
    }
}
