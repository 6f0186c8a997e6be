//! `kopir demo`: the platform with reference banks, a sample API-user application and test customers.

use crate::demo::{DemoOptions, RunningDemo};

use super::serve::shutdown_signal;
use super::{Failure, GlobalArgs, load_config};

pub async fn run(
    global: &GlobalArgs,
    listen: Option<std::net::SocketAddr>,
    bank_ports: Vec<u16>,
) -> Result<(), Failure> {
    let stop = shutdown_signal()?;
    let mut config = load_config(global)?;
    if let Some(listen) = listen {
        config.server.listen = listen;
        // The banks fetch the platform's keys from its public URL: on this machine, that is the port listened on.
        if let Some(rest) = config.server.public_url.strip_prefix("https://localhost:")
            && rest.trim_end_matches('/').parse::<u16>().is_ok()
        {
            config.server.public_url = format!("https://localhost:{}", listen.port());
        }
    }
    let mut options = DemoOptions::default();
    for (slot, port) in options.bank_ports.iter_mut().zip(bank_ports) {
        *slot = port;
    }
    let _log_guard = crate::logging::init_server(&config)?;
    println!("Starting the kopir demo in {} …", config.data_dir.display());
    let demo = crate::demo::start(config.clone(), options).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    print(&config, &demo);
    stop.await;
    println!("Stopping …");
    demo.shutdown().await;
    Ok(())
}

fn print(config: &crate::config::Config, demo: &RunningDemo) {
    let base = demo.platform.state.public_url.to_string();
    println!();
    println!("kopir demo is running. Open the sample application and follow it:");
    println!();
    println!("  Sample app (start here)   {base}/demo/app");
    println!("  SMS codes (demo outbox)   {base}/demo/sms");
    println!("  Your consents             {base}/my");
    println!("  Platform home             {base}/");
    println!("  Operator console          {base}/console");
    println!("  Marketplace (public)      {base}/marketplace");
    println!("  Standard, registries      {base}/standard   {base}/registry");
    for bank in &demo.banks {
        println!("  Reference bank            {}", bank.base_url);
    }
    println!();
    println!("The browser will warn about the certificate: it comes from the platform's own CA. Accept it, or trust");
    println!("  {}", config.pki_dir().join("root-ca.pem").display());
    println!();
    println!(
        "Test customers (every demo bank holds them; any Kazakh mobile number works, the face check is simulated):"
    );
    for customer in crate::standard::SANDBOX_CUSTOMERS {
        println!("  IIN {}  {}", customer.iin, customer.name);
    }
    println!();
    println!(
        "Demo accounts, one-time passwords: each account sets its own password and enrols a TOTP app at its first \
         sign-in (kept in {}):",
        config.data_dir.join("demo/credentials.txt").display()
    );
    for (who, user, password) in &demo.credentials {
        println!("  {who:<34} {user:<18} {password}");
    }
    println!();
    println!("Stop with Ctrl-C.");
}
