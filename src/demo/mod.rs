//! `kopir demo`: the whole platform on embedded defaults, with three reference banks whose APIs are published
//! through the catalogue's check, an accredited API user ("Qaz Budget") whose sample application is connected to
//! them, and the standard's sandbox customers — so a newcomer walks the customer's journey in a browser.
//!
//! Everything is set up through the platform's own domain functions (registration, accreditation application and
//! approval, API passport and publication, application and certificate, connection), once; later runs reuse it.

pub mod app;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use rusqlite::OptionalExtension;

use crate::audit::Actor;
use crate::config::{Config, Mode};
use crate::participants::accreditation::{self, ApplicationInput, Decision, NewDocument, Questionnaire};
use crate::refbank::{BankConfig, RunningBank};
use crate::store::StoreError;
use crate::web::Running;

/// The demo's banks: invented names, BINs with valid control digits.
pub const BANKS: [(&str, &str); 3] =
    [("Altyn Bank JSC", "99054000011"), ("Dala Bank JSC", "99054000022"), ("Kapshagai Bank JSC", "99054000033")];
const FINTECH: (&str, &str) = ("Qaz Budget LLP", "99054100044");
const APP_NAME: &str = "Qaz Budget";

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("the demo runs in demo mode only; this configuration says mode = \"production\"")]
    Production,
    #[error(transparent)]
    Init(#[from] crate::bootstrap::InitError),
    #[error(transparent)]
    Serve(#[from] crate::web::ServeError),
    #[error("reference bank: {0}")]
    Bank(#[from] crate::refbank::BankError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{path}: {error}")]
    File { path: PathBuf, error: std::io::Error },
    #[error("setting up {what}: {why}")]
    Setup { what: String, why: String },
}

impl From<rusqlite::Error> for DemoError {
    fn from(error: rusqlite::Error) -> DemoError {
        DemoError::Store(StoreError::from(error))
    }
}

fn setup(what: &str, why: impl std::fmt::Display) -> DemoError {
    DemoError::Setup { what: what.to_string(), why: why.to_string() }
}

/// Where the demo's banks listen: fixed ports keep their URLs stable across runs (0: the kernel chooses, for tests
/// that start a fresh demo each time).
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub bank_ports: [u16; 3],
}

impl Default for DemoOptions {
    fn default() -> DemoOptions {
        DemoOptions { bank_ports: [9441, 9442, 9443] }
    }
}

/// A running demo.
pub struct RunningDemo {
    pub platform: Running,
    pub banks: Vec<RunningBank>,
    /// Demo credentials, also kept in `<data_dir>/demo/credentials.txt` (0600).
    pub credentials: Vec<(String, String, String)>,
}

impl RunningDemo {
    pub async fn shutdown(self) {
        self.platform.shutdown().await;
        for bank in self.banks {
            bank.shutdown().await;
        }
    }
}

fn demo_dir(config: &Config) -> PathBuf {
    config.data_dir.join("demo")
}

fn actor() -> Actor {
    Actor { name: "cli:demo".into(), source: "cli".into(), user_id: None }
}

/// Starts the platform, the banks and the sample application; sets up what is missing.
pub async fn start(mut config: Config, options: DemoOptions) -> Result<RunningDemo, DemoError> {
    if config.mode != Mode::Demo {
        return Err(DemoError::Production);
    }
    let report = crate::bootstrap::init(&config, "cli:demo", crate::clock::now()).await?;
    let dir = demo_dir(&config);
    crate::pki::files::private_dir(&dir).map_err(|error| DemoError::File { path: dir.clone(), error })?;

    // The banks' certificate authorities first, so that the platform starts trusting them.
    let mut cas = String::new();
    for (i, (name, _)) in BANKS.iter().enumerate() {
        let pki = crate::refbank::pki::load_or_create(&dir.join(format!("bank{}", i + 1)), name)?;
        cas.push_str(&pki.ca_pem);
    }
    let ca_file = dir.join("bank-cas.pem");
    std::fs::write(&ca_file, cas).map_err(|error| DemoError::File { path: ca_file.clone(), error })?;
    config.gateway.provider_ca_file = ca_file;

    let sample = Arc::new(app::DemoApp::default());
    let platform = crate::web::start(config.clone(), Some(app::router(sample.clone()))).await?;
    let state = platform.state.clone();
    let root_pem = state.authority.trust_anchor_pem().to_string();

    let mut banks = Vec::new();
    for (i, (name, digits)) in BANKS.iter().enumerate() {
        let bin = crate::kz::with_control_digit(digits).ok_or_else(|| setup(name, "no BIN for these digits"))?;
        let mut bank = BankConfig::new(
            *name,
            bin,
            dir.join(format!("bank{}", i + 1)),
            state.public_url.to_string(),
            root_pem.clone(),
        );
        bank.listen = SocketAddr::from(([127, 0, 0, 1], options.bank_ports[i]));
        bank.seed = i as u64 + 1;
        banks.push(crate::refbank::start(bank).await?);
    }

    let mut credentials = Vec::new();
    if let Some(admin) = report.admin {
        credentials.push(("operator administrator".into(), admin.username, admin.one_time_password));
    }
    let urls: Vec<&str> = banks.iter().map(|b| b.base_url.as_str()).collect();
    let (client_id, identity_pem, bank_list) = seed(&state, &BANKS, &urls, &dir, &mut credentials).await?;
    let ready = app::Ready::new(platform.addr, client_id, &identity_pem, &root_pem, bank_list)
        .map_err(|e| setup(APP_NAME, e))?;
    sample.set_ready(ready);
    let credentials = remember(&dir, credentials)?;
    Ok(RunningDemo { platform, banks, credentials })
}

/// Keeps the demo's generated passwords (first run) and returns all of them (every run).
fn remember(
    dir: &std::path::Path,
    new: Vec<(String, String, String)>,
) -> Result<Vec<(String, String, String)>, DemoError> {
    let path = dir.join("credentials.txt");
    let mut text = crate::pki::files::read_key(&path).unwrap_or_default();
    for (who, user, password) in &new {
        text.push_str(&format!("{who}\t{user}\t{password}\n"));
    }
    crate::pki::files::write_key(&path, &text).map_err(|error| DemoError::File { path: path.clone(), error })?;
    Ok(text
        .lines()
        .filter_map(|l| {
            let mut parts = l.split('\t');
            Some((parts.next()?.to_string(), parts.next()?.to_string(), parts.next()?.to_string()))
        })
        .collect())
}

/// An organisation registered, applied and approved through the accreditation functions; returns its id.
async fn accredited(
    state: &crate::web::AppState,
    name: &str,
    digits: &str,
    provider: bool,
    admin: &str,
    credentials: &mut Vec<(String, String, String)>,
) -> Result<i64, DemoError> {
    let bin = crate::kz::with_control_digit(digits)
        .and_then(|digits| crate::kz::Bin::parse(&digits).ok())
        .ok_or_else(|| setup(name, "no BIN for these digits"))?;
    let existing = {
        let bin = bin.clone();
        state.db.read(move |c| crate::participants::organisation_by_bin(c, &bin).map_err(StoreError::from)).await?
    };
    if let Some(org) = existing {
        return Ok(org.id);
    }
    let password = crate::identity::generate_password();
    let hash = crate::identity::hash_password(&password).map_err(|e| setup(name, e))?;
    let (name_owned, admin_owned) = (name.to_string(), admin.to_string());
    let id = state
        .db
        .write(move |tx| -> Result<i64, DemoError> {
            let new = crate::participants::NewOrganisation {
                bin,
                name: name_owned.clone(),
                licence_number: format!("ARDFM-{}", &digits_tail(&name_owned)),
                contact_email: "openbanking@example.kz".into(),
                contact_phone: "+7 727 250 00 00".into(),
            };
            let org_id = crate::participants::insert(tx, &new, crate::clock::now())?;
            let admin_id = crate::identity::create_member(
                tx,
                &admin_owned,
                "Demo Administrator",
                "admin@example.kz",
                crate::identity::Role::ParticipantAdmin,
                Some(org_id),
                &hash,
                // One first sign-in rule for every account whose password someone else chose (the operator's
                // administrator from `kopir init`, staff invited by an administrator, these): change it, then enrol
                // the second factor.
                true,
                crate::clock::now(),
            )?;
            let Some(org) = crate::participants::organisation(tx, org_id)? else {
                return Err(setup(&name_owned, "the organisation vanished"));
            };
            let input = ApplicationInput {
                wants_provider: provider,
                wants_user: !provider,
                questionnaire: Questionnaire {
                    isms: true,
                    isms_detail: "ISO/IEC 27001:2022".into(),
                    security_officer_name: "Demo Security Officer".into(),
                    security_officer_email: "security@example.kz".into(),
                    incident_phone: "+7 727 250 00 01".into(),
                    pentest: false,
                    pentest_date: String::new(),
                    data_in_kz: true,
                    encryption_at_rest: true,
                },
                contact_name: "Demo Contact".into(),
                contact_email: "openbanking@example.kz".into(),
                contact_phone: "+7 727 250 00 00".into(),
            };
            let document = NewDocument {
                filename: "licence.pdf".into(),
                content_type: "application/pdf",
                content: b"%PDF-1.4\n% kopir demo: a licence stands here\n%%EOF\n".to_vec(),
            };
            // The demo organisation's administrator accepts the accession agreement of its role, as accreditation needs.
            let administrator =
                Actor { name: format!("user:{admin_owned}"), source: "cli".into(), user_id: Some(admin_id) };
            let kinds = crate::docs::agreements::Kind::for_roles(provider, !provider);
            crate::docs::agreements::accept_current(
                tx,
                org.party(),
                &administrator,
                &kinds,
                crate::i18n::Lang::En,
                crate::clock::now(),
            )?;
            let saved =
                accreditation::save_application(tx, &org, &input, &[document], true, &actor(), crate::clock::now())?;
            let accreditation::SaveOutcome::Saved { application_id, .. } = saved else {
                return Err(setup(&name_owned, format!("application not saved: {saved:?}")));
            };
            let decided = accreditation::decide(
                tx,
                application_id,
                Decision::Approve,
                "kopir demo",
                &actor(),
                crate::clock::now(),
            )?;
            if !matches!(decided, accreditation::DecideOutcome::Decided { .. }) {
                return Err(setup(&name_owned, format!("not approved: {decided:?}")));
            }
            Ok(org_id)
        })
        .await?;
    credentials.push((format!("{name} administrator"), admin.to_string(), password));
    Ok(id)
}

fn digits_tail(name: &str) -> String {
    format!("{:06}", name.bytes().map(u32::from).sum::<u32>())
}

/// Sets up banks' APIs, the API user, its application and connections. Returns the application's client id, its
/// certificate chain + key (PEM) and the banks it is connected to.
pub(crate) async fn seed(
    state: &crate::web::AppState,
    plan: &[(&str, &str)],
    base_urls: &[&str],
    dir: &std::path::Path,
    credentials: &mut Vec<(String, String, String)>,
) -> Result<(String, String, Vec<(String, String)>), DemoError> {
    let checker = state.publication_check.clone();
    let mut apis = Vec::new();
    let mut bank_list = Vec::new();
    for (i, ((name, digits), base_url)) in plan.iter().zip(base_urls).enumerate() {
        let org_id = accredited(state, name, digits, true, &format!("bank{}.admin", i + 1), credentials).await?;
        let listed =
            state.db.read(move |c| crate::catalog::list_for_organisation(c, org_id).map_err(StoreError::from)).await?;
        let api = match listed.into_iter().next() {
            Some(api) => api,
            None => {
                let passport = crate::catalog::Passport {
                    name: "Current accounts".into(),
                    version: "1.0".into(),
                    standard: "kopir-ais-v1".into(),
                    description: format!("{name}: accounts, balances and transactions of personal current accounts"),
                    sandbox_base_url: base_url.to_string(),
                    production_base_url: base_url.to_string(),
                    // The platform's default: the demo must publish on a slow laptop too (the check judges the
                    // p95 of its calls against this).
                    sla_response_ms: 1000,
                    timeout_ms: 3000,
                    contact_email: "api@example.kz".into(),
                    contact_phone: "+7 727 250 00 00".into(),
                };
                crate::catalog::create(&state.db, org_id, passport, actor(), state.clock.now())
                    .await
                    .map_err(|e| setup(name, e))?
            }
        };
        if api.status != crate::catalog::ApiStatus::Published {
            crate::catalog::publish(&state.db, checker.as_ref(), org_id, api.id, actor(), &state.clock)
                .await
                .map_err(|e| setup(name, e))?;
        }
        apis.push(api.id);
        bank_list.push((crate::kz::with_control_digit(digits).unwrap_or_default(), name.to_string()));
    }
    let user_org = accredited(state, FINTECH.0, FINTECH.1, false, "qazbudget.admin", credentials).await?;
    let key_path = dir.join("qaz-budget.key");
    let chain_path = dir.join("qaz-budget.pem");
    let existing = state
        .db
        .read(move |c| -> Result<Option<(i64, String)>, StoreError> {
            Ok(c.query_row(
                "SELECT id, client_id FROM applications WHERE organisation_id = ?1 AND name = ?2",
                rusqlite::params![user_org, APP_NAME],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
        })
        .await?;
    let (app_id, client_id) = match existing {
        Some(found) if key_path.exists() && chain_path.exists() => found,
        _ => {
            let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|e| setup(APP_NAME, e))?;
            let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(|e| setup(APP_NAME, e))?;
            params.distinguished_name.push(rcgen::DnType::CommonName, APP_NAME);
            let csr = params.serialize_request(&key).and_then(|c| c.pem()).map_err(|e| setup(APP_NAME, e))?;
            let user_id = state
                .db
                .read(move |c| -> Result<i64, StoreError> {
                    Ok(c.query_row("SELECT id FROM users WHERE organisation_id = ?1 LIMIT 1", [user_org], |r| {
                        r.get(0)
                    })?)
                })
                .await?;
            let new = crate::apps::NewApplication {
                name: APP_NAME.into(),
                kind: crate::apps::AppKind::ApiUser,
                mode: crate::apps::AppMode::Production,
                redirect_uris: vec![state.url(&format!("{}/callback", app::BASE))],
                csr_pem: csr,
            };
            let (application, issued) = crate::apps::register(
                &state.db,
                state.authority.clone(),
                user_org,
                user_id,
                new,
                actor(),
                state.clock.now(),
            )
            .await
            .map_err(|e| setup(APP_NAME, e))?;
            crate::pki::files::write_key(&key_path, &key.serialize_pem())
                .map_err(|error| DemoError::File { path: key_path.clone(), error })?;
            std::fs::write(&chain_path, &issued.chain_pem)
                .map_err(|error| DemoError::File { path: chain_path.clone(), error })?;
            (application.id, application.client_id.clone().into_string())
        }
    };
    for api in apis {
        crate::catalog::connect(&state.db, user_org, api, app_id, actor(), state.clock.now())
            .await
            .map_err(|e| setup(APP_NAME, e))?;
    }
    let mut identity =
        std::fs::read_to_string(&chain_path).map_err(|error| DemoError::File { path: chain_path.clone(), error })?;
    identity.push_str(
        &crate::pki::files::read_key(&key_path).map_err(|error| DemoError::File { path: key_path.clone(), error })?,
    );
    Ok((client_id, identity, bank_list))
}
