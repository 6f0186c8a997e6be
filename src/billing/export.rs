//! `kopir billing export`: every statement of a closed month, for a bank's accountant — for each statement its JSON
//! as issued (`N.json`), its seal (`N.jws`, as `/org/billing/statements/N/jws` serves it), its line items (`N.csv`)
//! and its printable document (`N.html`); every credit note correcting the month, as issued (`CN.json`) with its
//! seal (`CN.jws`) — and a manifest listing every file with its size and SHA-256, signed with
//! the platform's key like the auditor's snapshot manifest (`manifest.jws`, `typ` [`MANIFEST_TYPE`]; a readable copy
//! in `manifest.json`). [`verify`] checks the signature against the platform's key set (the snapshot's
//! [`crate::snapshot::verify_signed`]), every file's hash, and that each JSON's hash is the statement's (or the
//! credit note's) own.
//! A month that has not been closed is refused: nothing is exported that could still change.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::close::{self, Statement};
use super::credit::{self, CreditNote};
use super::print::{self, Issuer};
use crate::config::Config;
use crate::digest::sha256_hex;
use crate::i18n::Lang;
use crate::pki::signing::{KeyError, Signer};
use crate::store::{Db, StoreError};

/// The `typ` of the export manifest's JWS.
pub const MANIFEST_TYPE: &str = "kopir-billing-export-manifest+jwt";
/// The signed manifest and its readable copy, in the export directory.
pub const MANIFEST_JWS: &str = "manifest.jws";
pub const MANIFEST_JSON: &str = "manifest.json";

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("--month must be YYYY-MM")]
    Month,
    #[error(
        "{0} is not closed: run `kopir billing close --month {0}` first (only a closed month's statements are final)"
    )]
    NotClosed(String),
    #[error("{0} is not an empty directory; choose another --out")]
    NotEmpty(PathBuf),
    #[error("{path}: {error}")]
    File { path: PathBuf, error: std::io::Error },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error("rendering: {0}")]
    Render(String),
    #[error(transparent)]
    Signature(#[from] crate::snapshot::SnapshotError),
    #[error("the export does not match its manifest: {0}")]
    Mismatch(String),
}

/// One file of the export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportFile {
    pub name: String,
    pub bytes: u64,
    pub sha256: String,
}

/// One statement of the export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportStatement {
    pub number: String,
    pub kind: String,
    pub organisation_bin: Option<String>,
    pub total_tiyn: i64,
    /// The SHA-256 of the statement's JSON as issued (its file's, and the one its seal binds).
    pub sha256: String,
}

/// One credit note of the export: a correction of one of the month's statement lines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportCreditNote {
    pub number: String,
    /// The statement line it credits, `KOPIR-YYYYMM-NNNNNN/N` (or `…/N/fee`).
    pub line: String,
    pub amount_tiyn: i64,
    /// The SHA-256 of the credit note's JSON as issued.
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub kopir_version: String,
    pub instance_id: String,
    /// The platform that issued the statements (`server.public_url`).
    pub iss: String,
    pub month: String,
    pub created_at: String,
    pub statements: Vec<ExportStatement>,
    /// The credit notes correcting the month, oldest first.
    #[serde(default)]
    pub credit_notes: Vec<ExportCreditNote>,
    pub files: Vec<ExportFile>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ExportError + '_ {
    move |error| ExportError::File { path: path.to_path_buf(), error }
}

/// What one statement needs to be written.
struct Loaded {
    printable: print::Printable,
    bin: Option<String>,
    csv: String,
}

/// What the export reads of a month, in one read.
struct Read {
    closed: bool,
    instance_id: String,
    loaded: Vec<Loaded>,
    /// The month's credit notes, oldest first, with their documents as issued.
    notes: Vec<(CreditNote, String)>,
}

/// Writes every statement of `month` into `out` (created if missing; it must be empty) and the signed manifest.
pub async fn export(
    config: &Config,
    db: &Db,
    month: &str,
    out: &Path,
    lang: Lang,
    now: time::OffsetDateTime,
) -> Result<Manifest, ExportError> {
    let bounds = close::month_bounds(config.time_zone.zone(), month).ok_or(ExportError::Month)?;
    if out.exists() {
        let mut entries = std::fs::read_dir(out).map_err(io(out))?;
        if entries.next().is_some() {
            return Err(ExportError::NotEmpty(out.to_path_buf()));
        }
    }
    let wanted = month.to_string();
    let Read { closed, instance_id, loaded, notes } = db
        .read(move |c| -> Result<Read, StoreError> {
            let closed: bool =
                c.query_row("SELECT count(*) > 0 FROM billing_closes WHERE month = ?1", [&wanted], |r| r.get(0))?;
            let instance_id = crate::store::setting(c, "instance_id")?.unwrap_or_default();
            let mut loaded = Vec::new();
            for statement in close::statements(c, &wanted)? {
                let Some(printable) = print::load(c, &statement.number)? else { continue };
                let bin: Option<String> = match statement.organisation_id {
                    Some(id) => c.query_row("SELECT bin FROM organisations WHERE id = ?1", [id], |r| r.get(0))?,
                    None => None,
                };
                let items = close::line_items(c, &statement, bounds.clone())?;
                loaded.push(Loaded { printable, bin, csv: super::statements::csv(&items) });
            }
            let mut notes = Vec::new();
            for listed in credit::listed(c, credit::Concerning::All, Some(&wanted), u32::MAX)?.into_iter().rev() {
                notes.extend(credit::by_number(c, &listed.number)?);
            }
            Ok(Read { closed, instance_id, loaded, notes })
        })
        .await?;
    if !closed {
        return Err(ExportError::NotClosed(month.to_string()));
    }
    std::fs::create_dir_all(out).map_err(io(out))?;
    let issuer = Issuer::of(config, &config.server.public_url);
    let signer = Signer::new(Arc::new(config.clone()));
    let mut files = Vec::new();
    let mut statements = Vec::new();
    let mut write = |name: String, body: &[u8]| -> Result<(), ExportError> {
        let path = out.join(&name);
        crate::pki::files::write_atomic(&path, body, 0o644).map_err(io(&path))?;
        files.push(ExportFile { name, bytes: body.len() as u64, sha256: sha256_hex(body) });
        Ok(())
    };
    for Loaded { printable, bin, csv } in &loaded {
        let s: &Statement = &printable.statement;
        let jws = signer.sign(db, super::statements::SEAL_TYPE, &super::statements::seal(&issuer.url, s)).await?;
        let html = print::render(printable, &issuer, lang).map_err(|e| ExportError::Render(e.to_string()))?;
        write(format!("{}.json", s.number), printable.document.as_bytes())?;
        write(format!("{}.jws", s.number), jws.as_bytes())?;
        write(format!("{}.csv", s.number), csv.as_bytes())?;
        write(print::filename(&s.number), html.as_bytes())?;
        statements.push(ExportStatement {
            number: s.number.clone(),
            kind: s.kind.clone(),
            organisation_bin: bin.clone(),
            total_tiyn: s.total_tiyn,
            sha256: s.sha256.clone(),
        });
    }
    let mut credit_notes = Vec::new();
    for (note, document) in &notes {
        let seal = super::statements::credit_seal(&issuer.url, note);
        let jws = signer.sign(db, super::statements::CREDIT_SEAL_TYPE, &seal).await?;
        write(format!("{}.json", note.number), document.as_bytes())?;
        write(format!("{}.jws", note.number), jws.as_bytes())?;
        credit_notes.push(ExportCreditNote {
            number: note.number.clone(),
            line: note.line_reference.clone(),
            amount_tiyn: note.amount_tiyn,
            sha256: note.sha256.clone(),
        });
    }
    let manifest = Manifest {
        kopir_version: env!("CARGO_PKG_VERSION").to_string(),
        instance_id,
        iss: issuer.url.clone(),
        month: month.to_string(),
        created_at: crate::clock::rfc3339(now),
        statements,
        credit_notes,
        files,
    };
    let jws = signer.sign(db, MANIFEST_TYPE, &manifest).await?;
    let jws_path = out.join(MANIFEST_JWS);
    crate::pki::files::write_atomic(&jws_path, jws.as_bytes(), 0o644).map_err(io(&jws_path))?;
    let readable = serde_json::to_string_pretty(&manifest).map_err(|e| ExportError::Render(e.to_string()))? + "\n";
    let json_path = out.join(MANIFEST_JSON);
    crate::pki::files::write_atomic(&json_path, readable.as_bytes(), 0o644).map_err(io(&json_path))?;
    Ok(manifest)
}

/// What [`verify`] found, when everything holds: the export's manifest and the key that signed it.
pub type Verified = crate::snapshot::Verified<Manifest>;

/// Checks an export directory against its signed manifest and a key set (the platform's `/.well-known/jwks.json`):
/// the signature, every file's size and SHA-256, and each statement's JSON against the hash its seal binds.
pub fn verify(dir: &Path, jwks: &serde_json::Value) -> Result<Verified, ExportError> {
    let jws_path = dir.join(MANIFEST_JWS);
    let jws = std::fs::read_to_string(&jws_path).map_err(io(&jws_path))?;
    let (manifest, kid) = crate::snapshot::verify_signed::<Manifest>(&jws, MANIFEST_TYPE, jwks)?;
    for file in &manifest.files {
        if file.name.contains(['/', '\\']) || file.name.starts_with('.') {
            return Err(ExportError::Mismatch(format!("the manifest names a file outside the export: {}", file.name)));
        }
        let path = dir.join(&file.name);
        let bytes = std::fs::read(&path).map_err(io(&path))?;
        if bytes.len() as u64 != file.bytes || sha256_hex(&bytes) != file.sha256 {
            return Err(ExportError::Mismatch(format!("{} differs from the manifest", file.name)));
        }
    }
    let documents = manifest.statements.iter().map(|s| (&s.number, &s.sha256, "statement"));
    let notes = manifest.credit_notes.iter().map(|n| (&n.number, &n.sha256, "credit note"));
    for (number, sha256, what) in documents.chain(notes) {
        let name = format!("{number}.json");
        let listed = manifest.files.iter().find(|f| f.name == name);
        if listed.is_none_or(|f| &f.sha256 != sha256) {
            return Err(ExportError::Mismatch(format!("{name} is not the {what} as issued")));
        }
    }
    Ok(Verified { manifest, kid })
}
