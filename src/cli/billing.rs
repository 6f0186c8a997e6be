//! `kopir billing caps | tariffs | close | statements | credit-notes | export | verify`: the regulator's caps, the
//! tariffs and the platform fee as the database holds them, the month close (idempotent; safe while the platform
//! serves), the statements of a month (one as issued, or its printable document), the credit notes issued on statement
//! lines, the export of a closed month for accountants and its verification. Every subcommand takes `--json`.

use std::path::PathBuf;

use clap::Subcommand;
use serde_json::json;

use super::{Failure, cli_actor};
use crate::billing::close::{self, Closed};
use crate::billing::credit;
use crate::billing::{self as billing_domain, tenge};
use crate::billing::{export, print};
use crate::config::Config;
use crate::i18n::Lang;
use crate::store::{Db, StoreError};

#[derive(Debug, Subcommand)]
pub enum BillingCommand {
    /// Every cap the regulator set, latest effective day first.
    Caps {
        #[arg(long)]
        json: bool,
    },
    /// Every tariff of every API and the platform fee, latest effective day first.
    Tariffs {
        #[arg(long)]
        json: bool,
    },
    /// Close a month of the operator's days that has ended: issue its statements. Running it again changes nothing.
    Close {
        #[arg(long, value_name = "YYYY-MM")]
        month: String,
        #[arg(long)]
        json: bool,
    },
    /// The statements of a closed month; with `--number`, one statement's document as issued (JSON), or with
    /// `--print` its printable document (HTML, the page `/org/billing/statements/N/print` serves).
    Statements {
        #[arg(long, value_name = "YYYY-MM")]
        month: String,
        #[arg(long)]
        number: Option<String>,
        /// With `--number`: the printable document instead of the JSON.
        #[arg(long, requires = "number")]
        print: bool,
        /// With `--print`: the file to write (otherwise standard output).
        #[arg(long, value_name = "FILE", requires = "print")]
        out: Option<PathBuf>,
        /// The printable document's language: en, ru or kk.
        #[arg(long, default_value = "en", value_parser = parse_lang)]
        lang: Lang,
        #[arg(long)]
        json: bool,
    },
    /// The credit notes issued on statement lines, latest first; with `--month`, those correcting that month.
    CreditNotes {
        #[arg(long, value_name = "YYYY-MM")]
        month: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Every statement of a closed month — JSON as issued, JWS, CSV line items, printable HTML — and every credit
    /// note correcting it (JSON as issued, JWS), with a manifest of their SHA-256s signed with the platform's key,
    /// into an empty directory.
    Export {
        #[arg(long, value_name = "YYYY-MM")]
        month: String,
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// The printable documents' language: en, ru or kk.
        #[arg(long, default_value = "en", value_parser = parse_lang)]
        lang: Lang,
        #[arg(long)]
        json: bool,
    },
    /// Check an export: the manifest's signature, every file's SHA-256, each JSON against its statement's hash.
    Verify {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        /// The platform's key set (GET /.well-known/jwks.json). Without it, the keys of this data directory.
        #[arg(long, value_name = "FILE")]
        jwks: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

fn parse_lang(text: &str) -> Result<Lang, String> {
    Lang::parse(text).filter(|l| l.code() == text).ok_or_else(|| "the language must be en, ru or kk".to_string())
}

pub async fn run(config: &Config, command: BillingCommand) -> Result<(), Failure> {
    let (db, _) = Db::open(&config.db_path(), crate::bootstrap::store_options(config), false)?;
    match command {
        BillingCommand::Caps { json } => {
            let caps = db.read(|c| billing_domain::caps(c).map_err(StoreError::from)).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&caps)?);
            } else {
                for cap in caps {
                    println!(
                        "{:<10} {:<18} from {}  max {} ₸  (set by {})",
                        cap.payee.as_str(),
                        cap.service.as_str(),
                        cap.effective_from,
                        tenge(cap.max_tiyn),
                        cap.set_by
                    );
                }
            }
            Ok(())
        }
        BillingCommand::Tariffs { json } => {
            let tariffs = db
                .read(|c| {
                    c.prepare("SELECT DISTINCT api_id FROM billing_tariffs ORDER BY api_id")?
                        .query_map([], |r| r.get::<_, Option<i64>>(0))?
                        .collect::<rusqlite::Result<Vec<_>>>()?
                        .into_iter()
                        .map(|api| billing_domain::tariffs(c, api))
                        .collect::<rusqlite::Result<Vec<_>>>()
                        .map_err(StoreError::from)
                })
                .await?;
            let tariffs: Vec<_> = tariffs.into_iter().flatten().collect();
            if json {
                println!("{}", serde_json::to_string_pretty(&tariffs)?);
            } else {
                for t in tariffs {
                    let subject = t.api_id.map(|a| format!("api {a}")).unwrap_or_else(|| "platform fee".into());
                    println!(
                        "{subject:<14} {:<18} from {}  {} ₸  free {}{}",
                        t.service.as_str(),
                        t.effective_from,
                        tenge(t.price_tiyn),
                        t.free_units,
                        if t.clamped_by_cap.is_some() { "  (clamped by a cap)" } else { "" }
                    );
                }
            }
            Ok(())
        }
        BillingCommand::Close { month, json } => {
            let closed =
                close::close_at(&db, config.time_zone.zone(), &month, cli_actor(), crate::clock::now()).await?;
            let (already, issued) = match closed {
                Closed::Invalid => return Err(anyhow::anyhow!("--month must be YYYY-MM").into()),
                Closed::NotEnded => {
                    return Err(anyhow::anyhow!("{month} has not ended in the operator's days: nothing closed").into());
                }
                Closed::Issued(s) => (false, s),
                Closed::Already(s) => (true, s),
            };
            if json {
                println!("{}", json!({ "month": month, "already_closed": already, "statements": issued }));
            } else {
                let how = if already { "was already closed" } else { "closed" };
                println!("{month} {how}: {} statements", issued.len());
                for s in issued {
                    println!("  {}  {:<8} {} ₸", s.number, s.kind, tenge(s.total_tiyn));
                }
            }
            Ok(())
        }
        BillingCommand::Statements { month, number, print: true, out, lang, json } => {
            let number = number.ok_or_else(|| anyhow::anyhow!("--print needs --number"))?;
            let printable = db.read(move |c| print::load(c, &number).map_err(StoreError::from)).await?;
            let printable = printable
                .filter(|p| p.statement.month == month)
                .ok_or_else(|| anyhow::anyhow!("no such statement in {month}"))?;
            let issuer = print::Issuer::of(config, &config.server.public_url);
            let html = print::render(&printable, &issuer, lang).map_err(|e| anyhow::anyhow!("rendering: {e}"))?;
            match out {
                Some(path) => {
                    crate::pki::files::write_atomic(&path, html.as_bytes(), 0o644)
                        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                    let sha256 = crate::digest::sha256_hex(html.as_bytes());
                    if json {
                        println!(
                            "{}",
                            json!({ "statement": printable.statement.number, "file": path, "sha256": sha256 })
                        );
                    } else {
                        println!("{} written to {} (sha256 {sha256})", printable.statement.number, path.display());
                    }
                }
                None => print!("{html}"),
            }
            Ok(())
        }
        BillingCommand::Statements { month, number, json, .. } => {
            if let Some(number) = number {
                let document = db.read(move |c| close::document(c, &number).map_err(StoreError::from)).await?;
                let document = document.ok_or_else(|| anyhow::anyhow!("no such statement"))?;
                println!("{document}");
                return Ok(());
            }
            let list = db.read(move |c| close::statements(c, &month).map_err(StoreError::from)).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                for s in list {
                    println!(
                        "{}  {:<8} {:>14} ₸  {}  sha256 {}",
                        s.number,
                        s.kind,
                        tenge(s.total_tiyn),
                        s.status,
                        s.sha256
                    );
                }
            }
            Ok(())
        }
        BillingCommand::CreditNotes { month, json } => {
            if let Some(month) = &month
                && close::month_days(month).is_none()
            {
                return Err(anyhow::anyhow!("--month must be YYYY-MM").into());
            }
            let notes = db
                .read(move |c| {
                    credit::listed(c, credit::Concerning::All, month.as_deref(), u32::MAX).map_err(StoreError::from)
                })
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&notes)?);
            } else {
                for n in notes {
                    println!(
                        "{}  {:<26} {:<6} {:>14} ₸  {}  sha256 {}",
                        n.number,
                        n.line_reference,
                        n.part.as_str(),
                        tenge(n.amount_tiyn),
                        n.issued_at,
                        n.sha256
                    );
                }
            }
            Ok(())
        }
        BillingCommand::Export { month, out, lang, json } => {
            let manifest = export::export(config, &db, &month, &out, lang, crate::clock::now()).await?;
            if json {
                println!(
                    "{}",
                    json!({
                        "month": manifest.month,
                        "out": out,
                        "statements": manifest.statements,
                        "credit_notes": manifest.credit_notes,
                        "files": manifest.files.len(),
                        "manifest": out.join(export::MANIFEST_JWS),
                    })
                );
            } else {
                println!("{month}: {} statements exported to {}", manifest.statements.len(), out.display());
                for s in &manifest.statements {
                    println!("  {}  {:<8} {:>14} ₸  sha256 {}", s.number, s.kind, tenge(s.total_tiyn), s.sha256);
                }
                for n in &manifest.credit_notes {
                    println!("  {}  credits {}  {} ₸  sha256 {}", n.number, n.line, tenge(n.amount_tiyn), n.sha256);
                }
                println!("  signed manifest: {}", out.join(export::MANIFEST_JWS).display());
            }
            Ok(())
        }
        BillingCommand::Verify { dir, jwks, json } => {
            let set = super::snapshot::key_set(config, jwks).await?;
            let verified = tokio::task::spawn_blocking(move || export::verify(&dir, &set))
                .await
                .map_err(|e| anyhow::anyhow!("verification stopped: {e}"))?;
            match verified {
                Ok(v) => {
                    if json {
                        println!("{}", json!({ "ok": true, "kid": v.kid, "manifest": v.manifest }));
                    } else {
                        println!(
                            "export of {} verified: signed by key {}, {} statements, {} files intact",
                            v.manifest.month,
                            v.kid,
                            v.manifest.statements.len(),
                            v.manifest.files.len()
                        );
                    }
                    Ok(())
                }
                Err(e) => {
                    if json {
                        println!("{}", json!({ "ok": false, "error": e.to_string() }));
                    }
                    Err(anyhow::anyhow!("export verification failed: {e}").into())
                }
            }
        }
    }
}
