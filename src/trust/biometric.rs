//! Biometric verification (liveness + photo match against the state register) through an adapter:
//! - `simulated`: the demo's customer chooses the outcome on the page (demo mode only);
//! - `command`: a program on the server (the vendor's client) gets `{"kind":"biometric","iin","session"}` on stdin —
//!   `session` is the vendor's reference of the capture the customer just made — and answers
//!   `{"ok":true,"liveness":bool,"match":bool}` or `{"ok":false,"error":"…"}`.
//!
//! Only a passed liveness check *and* a passed match is a pass; an error or time-out is never a pass.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::command::{self, CommandError};
use crate::config::{BiometricAdapter, Config};
use crate::kz::Iin;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Passed,
    /// Not a live person in front of the camera.
    LivenessFailed,
    /// A live person, but not the holder of this IIN.
    NoMatch,
    /// The vendor's answer is for a capture made with another nonce: a capture replayed from another journey.
    Unbound,
}

#[derive(Debug, thiserror::Error)]
pub enum BiometricError {
    #[error("the biometric service did not answer within {0} seconds")]
    Timeout(u64),
    #[error("the biometric service could not check the customer: {0}")]
    Unavailable(String),
}

impl From<CommandError> for BiometricError {
    fn from(e: CommandError) -> Self {
        match e {
            CommandError::Timeout(s) => BiometricError::Timeout(s),
            CommandError::Failed(why) => BiometricError::Unavailable(why),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct BiometricRequest {
    pub kind: String,
    pub iin: String,
    pub session: String,
    pub nonce: String,
}

#[derive(Debug, Deserialize)]
struct BiometricAnswer {
    ok: bool,
    #[serde(default)]
    liveness: bool,
    #[serde(default, rename = "match")]
    matched: bool,
    #[serde(default)]
    nonce: String,
    #[serde(default)]
    error: String,
}

#[derive(Clone)]
pub enum BiometricVerifier {
    /// Demo only: `session` is the outcome the customer picked: `pass`, `fail-liveness` or `fail-match`.
    Simulated,
    Command {
        program: PathBuf,
        timeout: Duration,
    },
    Http(super::webhook::Webhook),
}

impl BiometricVerifier {
    /// The configured adapter; fails (naming the file) when an `http` adapter's key or CA cannot be read.
    pub fn from_config(config: &Config) -> Result<BiometricVerifier, super::AdapterError> {
        Ok(match config.trust.biometric_adapter {
            BiometricAdapter::Simulated => BiometricVerifier::Simulated,
            BiometricAdapter::Command => BiometricVerifier::Command {
                program: PathBuf::from(&config.trust.biometric_command),
                timeout: Duration::from_secs(config.trust.adapter_timeout_secs),
            },
            BiometricAdapter::Http => BiometricVerifier::Http(super::webhook(config, &config.trust.biometric_url)?),
        })
    }

    /// Checks the capture `session` made for the journey whose nonce is `nonce`.
    pub async fn verify(&self, iin: &Iin, session: &str, nonce: &str) -> Result<Verdict, BiometricError> {
        match self {
            BiometricVerifier::Simulated => match session {
                "pass" => Ok(Verdict::Passed),
                "fail-liveness" => Ok(Verdict::LivenessFailed),
                "fail-match" => Ok(Verdict::NoMatch),
                _ => Err(BiometricError::Unavailable("unknown simulated outcome".into())),
            },
            BiometricVerifier::Command { .. } | BiometricVerifier::Http(_) => {
                let request = BiometricRequest {
                    kind: "biometric".into(),
                    iin: iin.as_str().to_string(),
                    session: session.to_string(),
                    nonce: nonce.to_string(),
                };
                let answer: Result<BiometricAnswer, CommandError> = match self {
                    BiometricVerifier::Command { program, timeout } => command::call(program, &request, *timeout).await,
                    BiometricVerifier::Http(webhook) => webhook.call(&request).await,
                    BiometricVerifier::Simulated => Err(CommandError::Failed("not an adapter".into())),
                };
                let answer = answer?;
                let bound = crate::digest::constant_time_eq(answer.nonce.as_bytes(), nonce.as_bytes());
                match (answer.ok, answer.liveness, answer.matched) {
                    (false, ..) => Err(BiometricError::Unavailable(answer.error)),
                    (true, ..) if !bound => Ok(Verdict::Unbound),
                    (true, false, _) => Ok(Verdict::LivenessFailed),
                    (true, true, false) => Ok(Verdict::NoMatch),
                    (true, true, true) => Ok(Verdict::Passed),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::trust::command::test_script as script;

    fn iin() -> Iin {
        Iin::parse(
            &crate::kz::with_control_digit("90010130001")
                .or_else(|| crate::kz::with_control_digit("90010130002"))
                .unwrap(),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn command_verdicts_need_liveness_and_match() {
        let dir = tempfile::tempdir().unwrap();
        let seen = dir.path().join("seen.json");
        let t = Duration::from_secs(5);
        let verify = |body: &str, name: &str| {
            let program = script(dir.path(), name, body);
            async move {
                BiometricVerifier::Command { program, timeout: t }.verify(&iin(), "vendor-session-1", "nonce-1").await
            }
        };
        let pass = format!(
            "cat > {}; echo '{{\"ok\":true,\"liveness\":true,\"match\":true,\"nonce\":\"nonce-1\"}}'",
            seen.display()
        );
        assert_eq!(verify(&pass, "pass.sh").await.unwrap(), Verdict::Passed);
        let request: BiometricRequest = serde_json::from_slice(&std::fs::read(&seen).unwrap()).unwrap();
        assert_eq!((request.kind.as_str(), request.session.as_str()), ("biometric", "vendor-session-1"));
        assert_eq!((request.iin.as_str(), request.nonce.as_str()), (iin().as_str(), "nonce-1"));
        let spoof = "cat >/dev/null; echo '{\"ok\":true,\"liveness\":false,\"match\":true,\"nonce\":\"nonce-1\"}'";
        assert_eq!(verify(spoof, "spoof.sh").await.unwrap(), Verdict::LivenessFailed);
        let other = "cat >/dev/null; echo '{\"ok\":true,\"liveness\":true,\"match\":false,\"nonce\":\"nonce-1\"}'";
        assert_eq!(verify(other, "other.sh").await.unwrap(), Verdict::NoMatch);
        // A pass for a capture made with another journey's nonce (or with none) is not a pass.
        let replayed = "cat >/dev/null; echo '{\"ok\":true,\"liveness\":true,\"match\":true,\"nonce\":\"nonce-2\"}'";
        assert_eq!(verify(replayed, "replayed.sh").await.unwrap(), Verdict::Unbound);
        let unbound = "cat >/dev/null; echo '{\"ok\":true,\"liveness\":true,\"match\":true}'";
        assert_eq!(verify(unbound, "unbound.sh").await.unwrap(), Verdict::Unbound);
        let down = "cat >/dev/null; echo '{\"ok\":false,\"error\":\"register offline\"}'";
        assert!(
            matches!(verify(down, "down.sh").await, Err(BiometricError::Unavailable(e)) if e == "register offline")
        );
        let slow = BiometricVerifier::Command {
            program: script(dir.path(), "slow.sh", "sleep 5"),
            timeout: Duration::from_millis(300),
        };
        assert!(matches!(slow.verify(&iin(), "s", "n").await, Err(BiometricError::Timeout(_))));
    }

    #[tokio::test]
    async fn simulated_outcomes() {
        let v = BiometricVerifier::Simulated;
        assert_eq!(v.verify(&iin(), "pass", "n").await.unwrap(), Verdict::Passed);
        assert_eq!(v.verify(&iin(), "fail-liveness", "n").await.unwrap(), Verdict::LivenessFailed);
        assert_eq!(v.verify(&iin(), "fail-match", "n").await.unwrap(), Verdict::NoMatch);
        assert!(v.verify(&iin(), "anything", "n").await.is_err());
    }
}
