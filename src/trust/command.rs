//! The `command` adapter kind, shared by SMS and biometrics: a program on the server gets one JSON request on stdin
//! and answers one JSON object on stdout; it is killed after the time-out.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("no answer within {0} seconds")]
    Timeout(u64),
    #[error("{0}")]
    Failed(String),
}

/// Runs `program` with `request` on stdin and parses its answer (at most 64 KiB).
pub async fn call<Req: Serialize, Ans: DeserializeOwned>(
    program: &Path,
    request: &Req,
    timeout: Duration,
) -> Result<Ans, CommandError> {
    tokio::time::timeout(timeout, run(program, request)).await.map_err(|_| CommandError::Timeout(timeout.as_secs()))?
}

async fn run<Req: Serialize, Ans: DeserializeOwned>(program: &Path, request: &Req) -> Result<Ans, CommandError> {
    let failed = |e: std::io::Error| CommandError::Failed(format!("{}: {e}", program.display()));
    let mut child = tokio::process::Command::new(program)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(failed)?;
    let body = serde_json::to_vec(request).map_err(|e| CommandError::Failed(e.to_string()))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(&body).await.map_err(failed)?;
    }
    let mut out = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        stdout.take(64 * 1024).read_to_end(&mut out).await.map_err(failed)?;
    }
    let status = child.wait().await.map_err(failed)?;
    if !status.success() {
        return Err(CommandError::Failed(format!("{} exited with {status}", program.display())));
    }
    serde_json::from_slice(&out).map_err(|_| CommandError::Failed(format!("{} did not answer JSON", program.display())))
}

/// Writes an executable shell script for adapter tests.
#[cfg(test)]
pub(crate) fn test_script(dir: &Path, name: &str, body: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    let _ = std::fs::write(&path, format!("#!/bin/sh\n{body}\n"));
    let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755));
    path
}
