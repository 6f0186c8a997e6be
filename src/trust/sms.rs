//! SMS adapters: how one-time codes reach the customer's phone.
//! - `outbox`: kept in the `sms_outbox` table and shown on the demo outbox page (demo mode only);
//! - `command`: a program on the server (the operator's SMS gateway client), run with a JSON request on stdin,
//!   answering JSON on stdout, killed after the time-out.
//!
//! A failure or time-out is an error the caller shows the customer; nothing is authorised on it.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock;
use crate::config::{Config, SmsAdapter};
use crate::store::{Db, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum SmsError {
    #[error("the SMS service did not answer within {0} seconds")]
    Timeout(u64),
    #[error("the SMS service refused the message: {0}")]
    Refused(String),
    #[error("the SMS service could not be reached: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The request a `command` adapter reads on stdin.
#[derive(Debug, Serialize, Deserialize)]
pub struct SmsRequest {
    pub kind: String,
    pub to: String,
    pub text: String,
}

/// The answer a `command` adapter writes on stdout.
#[derive(Debug, Deserialize)]
struct SmsAnswer {
    ok: bool,
    #[serde(default)]
    error: String,
}

#[derive(Clone)]
pub enum SmsSender {
    Outbox(Db),
    Command { program: PathBuf, timeout: Duration },
    Http(super::webhook::Webhook),
}

impl SmsSender {
    /// The configured adapter; fails (naming the file) when an `http` adapter's key or CA cannot be read.
    pub fn from_config(config: &Config, db: &Db) -> Result<SmsSender, super::AdapterError> {
        let timeout = Duration::from_secs(config.trust.adapter_timeout_secs);
        Ok(match config.trust.sms_adapter {
            SmsAdapter::Outbox => SmsSender::Outbox(db.clone()),
            SmsAdapter::Command => SmsSender::Command { program: PathBuf::from(&config.trust.sms_command), timeout },
            SmsAdapter::Http => SmsSender::Http(super::webhook(config, &config.trust.sms_url)?),
        })
    }

    /// Sends `text` to `phone`. The text may hold a one-time code: it is never logged here.
    pub async fn send(&self, phone: &str, text: &str) -> Result<(), SmsError> {
        match self {
            SmsSender::Outbox(db) => {
                let (phone, text) = (phone.to_string(), text.to_string());
                db.write(move |tx| {
                    tx.execute(
                        "INSERT INTO sms_outbox (phone, message, sent_at) VALUES (?1, ?2, ?3)",
                        rusqlite::params![phone, text, clock::now_rfc3339()],
                    )
                    .map_err(StoreError::from)
                })
                .await?;
                Ok(())
            }
            SmsSender::Command { .. } | SmsSender::Http(_) => {
                let request = SmsRequest { kind: "sms".into(), to: phone.to_string(), text: text.to_string() };
                let answer: SmsAnswer = match self {
                    SmsSender::Command { program, timeout } => {
                        super::command::call(program, &request, *timeout).await?
                    }
                    SmsSender::Http(webhook) => webhook.call(&request).await?,
                    SmsSender::Outbox(_) => return Ok(()),
                };
                if answer.ok { Ok(()) } else { Err(SmsError::Refused(answer.error)) }
            }
        }
    }
}

/// The demo outbox's newest `limit` messages, newest first: (sent at, phone, text).
pub fn outbox(conn: &rusqlite::Connection, limit: u32) -> rusqlite::Result<Vec<(String, String, String)>> {
    let mut stmt = conn.prepare("SELECT sent_at, phone, message FROM sms_outbox ORDER BY id DESC LIMIT ?1")?;
    let rows = stmt.query_map([limit], |r| Ok((r.get("sent_at")?, r.get("phone")?, r.get("message")?)))?;
    rows.collect()
}

impl From<super::command::CommandError> for SmsError {
    fn from(e: super::command::CommandError) -> Self {
        match e {
            super::command::CommandError::Timeout(s) => SmsError::Timeout(s),
            super::command::CommandError::Failed(why) => SmsError::Unavailable(why),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::trust::command::test_script as script;

    #[tokio::test]
    async fn command_adapter_passes_json_and_reads_the_answer() {
        let dir = tempfile::tempdir().unwrap();
        let seen = dir.path().join("seen.json");
        let ok = script(dir.path(), "ok.sh", &format!("cat > {}; echo '{{\"ok\": true}}'", seen.display()));
        let sender = SmsSender::Command { program: ok, timeout: Duration::from_secs(5) };
        sender.send("+77010000000", "Your kopir code: 123456").await.unwrap();
        let request: SmsRequest = serde_json::from_slice(&std::fs::read(&seen).unwrap()).unwrap();
        assert_eq!((request.kind.as_str(), request.to.as_str()), ("sms", "+77010000000"));
        assert!(request.text.contains("123456"));
    }

    #[tokio::test]
    async fn command_adapter_failures_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let refused =
            script(dir.path(), "no.sh", "cat >/dev/null; echo '{\"ok\": false, \"error\": \"unknown number\"}'");
        let slow = script(dir.path(), "slow.sh", "sleep 5; echo '{\"ok\": true}'");
        let broken = script(dir.path(), "broken.sh", "cat >/dev/null; echo 'not json'");
        let crashed = script(dir.path(), "crash.sh", "cat >/dev/null; exit 3");
        let t = Duration::from_millis(500);
        let send =
            |p: PathBuf| async move { SmsSender::Command { program: p, timeout: t }.send("+77010000000", "x").await };
        assert!(matches!(send(refused).await, Err(SmsError::Refused(e)) if e == "unknown number"));
        assert!(matches!(send(slow).await, Err(SmsError::Timeout(_))));
        assert!(matches!(send(broken).await, Err(SmsError::Unavailable(_))));
        assert!(matches!(send(crashed).await, Err(SmsError::Unavailable(_))));
        assert!(matches!(send(dir.path().join("missing")).await, Err(SmsError::Unavailable(_))));
    }
}
