//! `kopir backup` and `kopir restore`.

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::{Failure, GlobalArgs, load_config};

/// The passphrase: from a file (first line) or the KOPIR_BACKUP_PASSPHRASE variable; never from the command line,
/// where other users could read it in the process list.
fn passphrase(file: Option<&Path>) -> Result<String, Failure> {
    let text = match file {
        Some(path) => std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
        None => std::env::var("KOPIR_BACKUP_PASSPHRASE").map_err(|_| {
            anyhow::anyhow!("give the passphrase with --passphrase-file FILE or KOPIR_BACKUP_PASSPHRASE")
        })?,
    };
    Ok(text.lines().next().unwrap_or_default().to_string())
}

pub async fn backup(global: &GlobalArgs, out: PathBuf, passphrase_file: Option<PathBuf>) -> Result<(), Failure> {
    let config = load_config(global)?;
    crate::logging::init_cli();
    if !config.db_path().exists() {
        return Err(anyhow::anyhow!("{} is not initialised", config.data_dir.display()).into());
    }
    let secret = passphrase(passphrase_file.as_deref())?;
    let manifest = crate::backup::backup(&config, global.config.as_deref(), &out, &secret).await?;
    println!("backup written to {} (schema version {})", out.display(), manifest.schema_version);
    for file in &manifest.files {
        println!("  {:<16} {:>12} bytes  sha256 {}", file.name, file.bytes, file.sha256);
    }
    println!("the database and the keys are encrypted with the passphrase; keep it apart from the backup");
    Ok(())
}

pub async fn restore(global: &GlobalArgs, from: PathBuf, passphrase_file: Option<PathBuf>) -> Result<(), Failure> {
    let config = load_config(global)?;
    crate::logging::init_cli();
    let secret = passphrase(passphrase_file.as_deref())?;
    let manifest = crate::backup::restore(&from, &config.data_dir, &secret).await?;
    println!(
        "restored the backup of {} (schema version {}) into {}",
        manifest.created_at,
        manifest.schema_version,
        config.data_dir.display()
    );
    println!("the backed-up configuration is in {}", config.data_dir.join("appliance.restored.toml").display());
    println!("start the platform with `kopir serve` (a newer kopir migrates the database on start)");
    Ok(())
}
