//! Phone ownership: whether the number a customer gave is registered to their IIN (Kazakhstan keeps a registry of
//! mobile numbers by IIN that government services use for exactly this), asked once the face check has proven who
//! the customer is and before any code is sent, so a code only ever goes to the person's own phone. Adapters:
//! - `simulated`: every number belongs to whoever gives it (demo mode only; production refuses it);
//! - `command`: a program on the server gets `{"kind":"phone","iin","phone"}` on stdin and answers
//!   `{"ok":true,"owner":bool}` or `{"ok":false,"error":"…"}`;
//! - `http`: the same JSON POSTed to the registry's endpoint, signed like the other `http` adapters.
//!
//! An error or time-out is never a yes.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::command::{self, CommandError};
use crate::config::{Config, PhoneAdapter};
use crate::kz::Iin;

#[derive(Debug, thiserror::Error)]
pub enum PhoneError {
    #[error("the mobile-number registry did not answer within {0} seconds")]
    Timeout(u64),
    #[error("the mobile-number registry could not be asked: {0}")]
    Unavailable(String),
}

impl From<CommandError> for PhoneError {
    fn from(e: CommandError) -> Self {
        match e {
            CommandError::Timeout(s) => PhoneError::Timeout(s),
            CommandError::Failed(why) => PhoneError::Unavailable(why),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct PhoneRequest {
    pub kind: String,
    pub iin: String,
    pub phone: String,
}

#[derive(Debug, Deserialize)]
struct PhoneAnswer {
    ok: bool,
    #[serde(default)]
    owner: bool,
    #[serde(default)]
    error: String,
}

#[derive(Clone)]
pub enum PhoneRegistry {
    Simulated,
    Command { program: PathBuf, timeout: Duration },
    Http(super::webhook::Webhook),
}

impl PhoneRegistry {
    /// The configured adapter; fails (naming the file) when an `http` adapter's key or CA cannot be read.
    pub fn from_config(config: &Config) -> Result<PhoneRegistry, super::AdapterError> {
        Ok(match config.trust.phone_adapter {
            PhoneAdapter::Simulated => PhoneRegistry::Simulated,
            PhoneAdapter::Command => PhoneRegistry::Command {
                program: PathBuf::from(&config.trust.phone_command),
                timeout: Duration::from_secs(config.trust.adapter_timeout_secs),
            },
            PhoneAdapter::Http => PhoneRegistry::Http(super::webhook(config, &config.trust.phone_url)?),
        })
    }

    /// Whether `phone` (`+7…`) is registered to `iin`.
    pub async fn owns(&self, iin: &Iin, phone: &str) -> Result<bool, PhoneError> {
        let request = PhoneRequest { kind: "phone".into(), iin: iin.as_str().to_string(), phone: phone.to_string() };
        let answer: PhoneAnswer = match self {
            PhoneRegistry::Simulated => return Ok(true),
            PhoneRegistry::Command { program, timeout } => command::call(program, &request, *timeout).await?,
            PhoneRegistry::Http(webhook) => webhook.call(&request).await?,
        };
        if answer.ok { Ok(answer.owner) } else { Err(PhoneError::Unavailable(answer.error)) }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::trust::command::test_script as script;

    #[tokio::test]
    async fn the_registry_answers_ownership_and_an_error_is_never_a_yes() {
        let dir = tempfile::tempdir().unwrap();
        let iin = Iin::parse(&crate::kz::with_control_digit("90010130001").unwrap()).unwrap();
        let seen = dir.path().join("seen.json");
        let registry = |body: &str, name: &str| PhoneRegistry::Command {
            program: script(dir.path(), name, body),
            timeout: Duration::from_secs(5),
        };
        let yes = registry(&format!("cat > {}; echo '{{\"ok\":true,\"owner\":true}}'", seen.display()), "yes.sh");
        assert!(yes.owns(&iin, "+77011234567").await.unwrap());
        let request: PhoneRequest = serde_json::from_slice(&std::fs::read(&seen).unwrap()).unwrap();
        assert_eq!((request.kind.as_str(), request.phone.as_str()), ("phone", "+77011234567"));
        assert_eq!(request.iin, iin.as_str());
        let no = registry("cat >/dev/null; echo '{\"ok\":true,\"owner\":false}'", "no.sh");
        assert!(!no.owns(&iin, "+77011234567").await.unwrap());
        let down = registry("cat >/dev/null; echo '{\"ok\":false,\"error\":\"registry offline\"}'", "down.sh");
        assert!(
            matches!(down.owns(&iin, "+77011234567").await, Err(PhoneError::Unavailable(e)) if e == "registry offline")
        );
        let silent = registry("cat >/dev/null; echo '{\"ok\":true}'", "silent.sh");
        assert!(!silent.owns(&iin, "+77011234567").await.unwrap(), "no answer about the owner is a no");
    }
}
