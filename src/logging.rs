//! Logging: daily rolling files in the log directory plus standard error, filtered by `log.level` (or KOPIR_LOG).
//! Request spans carry the request id, so every line of a request names it. Secrets are never passed to a log
//! macro: handlers log identifiers (serials, ids), never keys, passwords, tokens or OTPs.

use tracing_appender::non_blocking::WorkerGuard;
use tracing_appender::rolling::{Builder, Rotation};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::Config;

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The id of the request being handled, if any: what log lines, error bodies and error pages quote. (Set by the web
/// server's outermost layer; here so that every error shape can read it without depending on the server.)
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// Runs `f` with `id` as the current request id.
pub async fn request_id_scope<F: std::future::Future>(id: String, f: F) -> F::Output {
    REQUEST_ID.scope(id, f).await
}

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("log directory {0}: {1}")]
    Dir(std::path::PathBuf, String),
}

fn filter(default: &str) -> EnvFilter {
    std::env::var("KOPIR_LOG")
        .ok()
        .and_then(|v| EnvFilter::try_new(v).ok())
        .unwrap_or_else(|| EnvFilter::try_new(default).unwrap_or_else(|_| EnvFilter::new("info")))
}

/// Full logging for the server. Keep the returned guard alive until exit: it flushes the file writer.
pub fn init_server(config: &Config) -> Result<WorkerGuard, LogError> {
    let dir = config.log_dir();
    std::fs::create_dir_all(&dir).map_err(|e| LogError::Dir(dir.clone(), e.to_string()))?;
    let appender = Builder::new()
        .rotation(Rotation::DAILY)
        .filename_prefix("kopir")
        .filename_suffix("log")
        .max_log_files(config.log.max_files)
        .build(&dir)
        .map_err(|e| LogError::Dir(dir.clone(), e.to_string()))?;
    let (writer, guard) = tracing_appender::non_blocking(appender);
    let file_layer = tracing_subscriber::fmt::layer().with_writer(writer).with_ansi(false);
    let stderr_layer = config.log.stderr.then(|| {
        tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_target(false).with_ansi(stderr_is_terminal())
    });
    // try_init: a second server in the same process (tests) keeps the first subscriber.
    let _ =
        tracing_subscriber::registry().with(filter(&config.log.level)).with(file_layer).with(stderr_layer).try_init();
    Ok(guard)
}

/// Quiet logging for one-shot commands: warnings and errors on standard error.
pub fn init_cli() {
    let _ = tracing_subscriber::registry()
        .with(filter("warn"))
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_target(false)
                .with_ansi(stderr_is_terminal()),
        )
        .try_init();
}

/// Colour only for a person at a terminal; journald and files get plain text.
fn stderr_is_terminal() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal()
}
