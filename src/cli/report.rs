//! `kopir report …`: the signed monthly platform report.

use std::path::PathBuf;

use clap::Subcommand;

use crate::config::Config;
use crate::i18n::Lang;
use crate::reports::monthly::{self, Month};
use crate::store::Db;

use super::Failure;

#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// Write the monthly platform report: FILE (printable HTML), FILE.json (the same numbers) and FILE.jws (the
    /// platform's signature over both). Read-only: safe while the platform serves.
    Monthly {
        /// The month, YYYY-MM (the operator's local days, `time_zone`).
        #[arg(long, value_name = "YYYY-MM")]
        month: String,
        /// The HTML file; FILE.json and FILE.jws are written beside it.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// The language of the HTML: en, ru or kk (the JSON has none).
        #[arg(long, default_value = "en", value_parser = ["en", "ru", "kk"])]
        lang: String,
    },
    /// Check a published report: the signature of FILE.jws against the platform's keys, and that FILE and FILE.json
    /// are the files it signed. Names the file that differs; exits 1 on any failure.
    Verify {
        /// The report's HTML file (FILE.json and FILE.jws beside it).
        file: PathBuf,
        /// The platform's key set (GET /.well-known/jwks.json). Without it, the keys of this data directory.
        #[arg(long, value_name = "FILE")]
        jwks: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(config: &Config, command: ReportCommand) -> Result<(), Failure> {
    match command {
        ReportCommand::Monthly { month, out, lang } => {
            let month = Month::parse(&month)?;
            let lang = Lang::parse(&lang).unwrap_or(Lang::En);
            let (db, _) = Db::open(&config.db_path(), crate::bootstrap::store_options(config), false)?;
            let signer = crate::pki::signing::Signer::new(std::sync::Arc::new(config.clone()));
            let published = monthly::publish(config, &db, &signer, month, lang, crate::clock::now()).await?;
            let out_for_write = out.clone();
            let written = published.clone();
            tokio::task::spawn_blocking(move || monthly::write(&out_for_write, &written))
                .await
                .map_err(|e| anyhow::anyhow!("writing stopped: {e}"))??;
            let (json, jws) = monthly::paths(&out);
            println!("monthly report {} ({}, generated {})", published.month, lang.code(), published.generated_at);
            println!("  HTML:      {}", out.display());
            println!("  JSON:      {}", json.display());
            println!("  signature: {}", jws.display());
            Ok(())
        }
        ReportCommand::Verify { file, jwks, json } => {
            let set = super::snapshot::key_set(config, jwks).await?;
            let verified = tokio::task::spawn_blocking(move || monthly::verify(&file, &set))
                .await
                .map_err(|e| anyhow::anyhow!("verification stopped: {e}"))?;
            match verified {
                Ok(v) => {
                    if json {
                        println!("{}", serde_json::json!({ "ok": true, "kid": v.kid, "seal": v.seal }));
                    } else {
                        println!(
                            "report verified: monthly report {} generated {}, signed by key {}; HTML and JSON intact",
                            v.seal.month, v.seal.generated_at, v.kid
                        );
                    }
                    Ok(())
                }
                Err(e) => {
                    if json {
                        println!("{}", serde_json::json!({ "ok": false, "error": e.to_string() }));
                    }
                    Err(anyhow::anyhow!("report verification failed: {e}").into())
                }
            }
        }
    }
}
