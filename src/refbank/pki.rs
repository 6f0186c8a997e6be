//! The reference bank's own small PKI: a CA and a server certificate for localhost, made on first start and kept in
//! the data directory (keys 0600), so the platform can trust the bank once (`gateway.provider_ca_file`) across
//! restarts.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

use super::BankError;
use crate::pki::files;
use crate::pki::{TlsIdentity, random_serial};

pub struct BankPki {
    pub ca_pem: String,
    pub ca_file: PathBuf,
    pub identity: TlsIdentity,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BankError + '_ {
    move |error| BankError::File { path: path.to_path_buf(), error }
}

/// Loads the CA and server certificate from `dir`, making whichever is missing. Public so that a test or the demo
/// can make a bank's CA before the platform starts, and tell the platform to trust it.
pub fn load_or_create(dir: &Path, bank_name: &str) -> Result<BankPki, BankError> {
    files::private_dir(dir).map_err(io(dir))?;
    let (ca_file, ca_key_file) = (dir.join("ca.pem"), dir.join("ca.key"));
    let (server_file, server_key_file) = (dir.join("server.pem"), dir.join("server.key"));
    if !ca_file.exists() {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = name(&format!("{bank_name} reference bank CA"));
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.serial_number = Some(random_serial());
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::days(1);
        params.not_after = now + Duration::days(3_650);
        let cert = params.self_signed(&key)?;
        // The key first: a certificate without its key would stop every later start.
        files::write_key(&ca_key_file, &key.serialize_pem()).map_err(io(&ca_key_file))?;
        files::write_cert(&ca_file, &cert.pem()).map_err(io(&ca_file))?;
        // A new CA makes any older server certificate useless.
        let _ = std::fs::remove_file(&server_file);
    }
    let ca_pem = std::fs::read_to_string(&ca_file).map_err(io(&ca_file))?;
    if !server_file.exists() {
        let ca_key = KeyPair::from_pem(&files::read_key(&ca_key_file).map_err(io(&ca_key_file))?)?;
        let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key)?;
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::new(vec!["localhost".to_string()])?;
        params.subject_alt_names.push(SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()));
        params.subject_alt_names.push(SanType::IpAddress(std::net::Ipv6Addr::LOCALHOST.into()));
        params.distinguished_name = name(&format!("{bank_name} reference bank"));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.serial_number = Some(random_serial());
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::days(1);
        params.not_after = now + Duration::days(1_825);
        let cert = params.signed_by(&key, &issuer)?;
        files::write_key(&server_key_file, &key.serialize_pem()).map_err(io(&server_key_file))?;
        files::write_cert(&server_file, &format!("{}{ca_pem}", cert.pem())).map_err(io(&server_file))?;
    }
    let identity = TlsIdentity::load(&server_file, &server_key_file)?;
    Ok(BankPki { ca_pem, ca_file, identity })
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn.push(DnType::OrganizationName, "kopir reference bank");
    dn.push(DnType::CountryName, "KZ");
    dn
}
