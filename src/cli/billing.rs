//! `kopir billing caps | tariffs | close | statements | credit-notes`: the regulator's caps, the tariffs and the
//! platform fee as the database holds them, the month close (idempotent; safe while the platform serves), the
//! statements of a month, and the credit notes issued on statement lines.

use clap::Subcommand;
use serde_json::json;

use super::{Failure, cli_actor};
use crate::billing::close::{self, Closed};
use crate::billing::credit;
use crate::billing::{self as billing_domain, tenge};
use crate::config::Config;
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
    /// The statements of a closed month; with `--number`, one statement's document as issued (JSON).
    Statements {
        #[arg(long, value_name = "YYYY-MM")]
        month: String,
        #[arg(long)]
        number: Option<String>,
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
            let now = crate::clock::now();
            let today = billing_domain::today(config.time_zone.zone(), now)
                .ok_or_else(|| anyhow::anyhow!("the operator's day could not be read"))?;
            let actor = cli_actor();
            let month_for_close = month.clone();
            let closed = db.write(move |tx| close::close(tx, &month_for_close, today, &actor, now)).await?;
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
        BillingCommand::Statements { month, number, json } => {
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
    }
}
