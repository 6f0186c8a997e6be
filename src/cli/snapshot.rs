//! `kopir snapshot …`: the auditor's snapshot.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;

use crate::config::Config;
use crate::snapshot;
use crate::store::{Db, StoreError};

use super::Failure;

#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Write a consistent, secret-free copy of the database and its signed manifest (safe while serving).
    Export {
        /// The snapshot file; FILE.manifest.jws (signed) and FILE.manifest.json (readable) are written beside it.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Replace customers' IINs with keyed hashes (HMAC-SHA256 with a key kept in the data directory), stable
        /// across snapshots, so an auditor can follow one customer without learning who it is.
        #[arg(long)]
        pseudonymise: bool,
    },
    /// Check a snapshot: manifest signature, file hash, integrity, every table, the audit chain, no secrets.
    Verify {
        snapshot: PathBuf,
        /// The platform's key set (GET /.well-known/jwks.json). Without it, the keys of this data directory.
        #[arg(long, value_name = "FILE")]
        jwks: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(config: &Config, command: SnapshotCommand) -> Result<(), Failure> {
    match command {
        SnapshotCommand::Export { out, pseudonymise } => {
            let (db, _) = Db::open(&config.db_path(), crate::bootstrap::store_options(config), false)?;
            let manifest = snapshot::export(config, &db, &out, pseudonymise).await?;
            let (jws, json) = snapshot::manifest_paths(&out);
            println!("snapshot {} ({} bytes, sha256 {})", out.display(), manifest.file_bytes, manifest.file_sha256);
            println!(
                "  schema version {}, {} tables, audit chain {} rows, head {}",
                manifest.schema_version,
                manifest.tables.len(),
                manifest.audit_rows,
                manifest.audit_head
            );
            if manifest.pseudonymised {
                println!("  customers' IINs replaced by keyed pseudonyms");
            }
            println!("  signed manifest: {}", jws.display());
            println!("  readable copy:   {}", json.display());
            Ok(())
        }
        SnapshotCommand::Verify { snapshot: file, jwks, json } => {
            let set = key_set(config, jwks).await?;
            let verified = tokio::task::spawn_blocking(move || snapshot::verify(&file, &set))
                .await
                .map_err(|e| anyhow::anyhow!("verification stopped: {e}"))?;
            match verified {
                Ok(v) => {
                    if json {
                        println!("{}", serde_json::json!({ "ok": true, "kid": v.kid, "manifest": v.manifest }));
                    } else {
                        println!(
                            "snapshot verified: signed by key {}, {} tables, audit chain {} rows intact",
                            v.kid,
                            v.manifest.tables.len(),
                            v.manifest.audit_rows
                        );
                    }
                    Ok(())
                }
                Err(e) => {
                    if json {
                        println!("{}", serde_json::json!({ "ok": false, "error": e.to_string() }));
                    }
                    Err(anyhow::anyhow!("snapshot verification failed: {e}").into())
                }
            }
        }
    }
}

/// The key set to verify against: the given JWKS file, else the keys of this data directory.
pub(super) async fn key_set(config: &Config, jwks: Option<PathBuf>) -> Result<serde_json::Value, Failure> {
    Ok(match jwks {
        Some(path) => serde_json::from_str(
            &std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?,
        )
        .with_context(|| format!("{} is not a JSON key set", path.display()))?,
        None => {
            let (db, _) = Db::open(&config.db_path(), crate::bootstrap::store_options(config), false)?;
            db.read(|c| crate::pki::signing::jwks(c, crate::clock::now()).map_err(StoreError::from)).await?
        }
    })
}
