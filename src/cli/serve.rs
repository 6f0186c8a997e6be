//! `kopir serve` and the init report.

use crate::bootstrap::{self, InitReport};
use crate::config::{Config, Mode};

use super::{Failure, GlobalArgs, cli_actor, load_config};

pub fn print_init_report(config: &Config, report: &InitReport) {
    for item in &report.items {
        let state = if item.created { "created" } else { "exists, unchanged" };
        println!("  {:<30} {:<18} {}", item.what, state, item.location);
    }
    if !report.changed_anything() {
        println!("kopir is already initialised in {}; nothing was changed.", config.data_dir.display());
    }
    if let Some(admin) = &report.admin {
        println!();
        println!("First operator administrator (shown once; change it at first sign-in):");
        println!("  username:           {}", admin.username);
        println!("  one-time password:  {}", admin.one_time_password);
    }
}

pub async fn run(
    global: &GlobalArgs,
    listen: Option<std::net::SocketAddr>,
    admin_listen: Option<std::net::SocketAddr>,
) -> Result<(), Failure> {
    // Installed first, so a SIGTERM that arrives during start-up is not fatal but a request to stop.
    let stop = shutdown_signal()?;
    let mut config = load_config(global)?;
    if let Some(listen) = listen {
        config.server.listen = listen;
    }
    if let Some(admin) = admin_listen {
        if !admin.ip().is_loopback() {
            return Err(Failure::Config(crate::config::ConfigError::Key {
                source_name: "command line --admin-listen".into(),
                key: "admin.listen".into(),
                message: "must be a loopback address".into(),
            }));
        }
        config.admin.listen = admin;
    }
    if !bootstrap::is_initialised(&config) {
        if config.mode == Mode::Production {
            return Err(anyhow::anyhow!(
                "{} is not initialised; run `kopir init` first (production mode does not initialise itself)",
                config.data_dir.display()
            )
            .into());
        }
        println!("Initialising {} …", config.data_dir.display());
        let report = bootstrap::init(&config, &cli_actor().name, crate::clock::now()).await?;
        print_init_report(&config, &report);
        println!();
    }
    if let Some(problem) = config.production_problems().into_iter().next() {
        return Err(Failure::Config(problem));
    }
    let _log_guard = crate::logging::init_server(&config)?;
    let running = crate::web::start(config.clone(), None).await?;
    let base = public_base(&config, running.addr);
    println!("kopir is serving on https://{}", running.addr);
    println!("  health:            {base}/healthz");
    println!("  trust anchor (CA): {base}/pki/ca.pem");
    println!("  revocation list:   {base}/pki/crl.pem");
    if let Some(admin) = running.admin_addr {
        println!("  metrics (local):   http://{admin}/metrics");
    }
    println!("  logs:              {}", config.log_dir().display());
    println!("Stop with Ctrl-C or SIGTERM; in-flight requests are allowed to finish. SIGHUP reloads the certificate.");

    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = hangup.recv() => match running.reload_certificate() {
                Ok(()) => tracing::info!("server certificate reloaded"),
                Err(error) => tracing::error!(%error, "server certificate not reloaded; keeping the current one"),
            },
        }
    }
    tracing::info!("shutdown requested; draining");
    running.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

/// The URL to print: the configured public URL, unless the listener was moved to another port.
fn public_base(config: &Config, addr: std::net::SocketAddr) -> String {
    let public = config.server.public_url.trim_end_matches('/');
    let authority = public.trim_start_matches("https://").split('/').next().unwrap_or_default();
    let port = match authority.rsplit_once(':') {
        Some((_, port)) if !port.ends_with(']') => port.parse().unwrap_or(443),
        _ => 443,
    };
    if port == addr.port() {
        public.to_string()
    } else {
        let host = config.server.hostnames.first().map(String::as_str).unwrap_or("localhost");
        format!("https://{host}:{}", addr.port())
    }
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>, Failure> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = interrupt.recv() => {}
        }
    })
}
