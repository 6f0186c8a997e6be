//! Backup and restore: encrypted, taken while serving, restored only onto a fresh directory, and the restored
//! platform serves the same participants and accepts the same client certificate.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::Platform;
use common::browser::bin;
use common::participant::{accredit, admin_of_new_organisation, app_id, client_id, download, register_app, serials};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restored_platform_accepts_the_same_certificate_and_knows_the_same_participants() {
    let mut platform = Platform::start().await;
    let bank_bin = bin("99014000044");
    let bank = admin_of_new_organisation(&platform, &bank_bin, "Backup Bank JSC", "backup.admin").await;
    accredit(&platform, &bank_bin);
    let csr = common::Csr::new("backup-gateway");
    let page = register_app(&bank, "Backup app", "api_user", "https://app.backup.kz/cb", &csr.csr_pem).await;
    let client_id_text = client_id(&page);
    let identity = download(&bank, app_id(&page), &serials(&page)[0], &csr.key_pem).await;
    let accepted = platform.client(Some(&identity)).get(platform.url("/pki/client-certificate")).send().await.unwrap();
    assert_eq!(accepted.status(), 200);

    let work = tempfile::tempdir().unwrap();
    let passphrase = work.path().join("passphrase");
    std::fs::write(&passphrase, "a long backup passphrase\n").unwrap();
    let out = work.path().join("backup-1");
    let made = tokio::task::spawn_blocking({
        let mut cmd = platform.kopir();
        cmd.arg("backup").arg("--out").arg(&out).arg("--passphrase-file").arg(&passphrase);
        move || cmd.output().unwrap()
    })
    .await
    .unwrap();
    common::assert_success(&made);
    // Nothing readable about keys or data in the encrypted files.
    for name in ["kopir.db.enc", "pki.enc"] {
        let bytes = std::fs::read(out.join(name)).unwrap();
        for needle in [&b"PRIVATE KEY"[..], b"Backup Bank JSC", b"SQLite format 3", b"argon2id"] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "{name} holds {}",
                String::from_utf8_lossy(needle)
            );
        }
    }

    // Refusals: weak passphrase, existing data directory, wrong passphrase — each writing nothing.
    std::fs::write(work.path().join("short"), "short\n").unwrap();
    let weak = platform
        .kopir()
        .args(["backup", "--out"])
        .arg(work.path().join("b2"))
        .arg("--passphrase-file")
        .arg(work.path().join("short"))
        .output()
        .unwrap();
    assert_eq!(weak.status.code(), Some(1));
    let onto_live = platform
        .kopir()
        .args(["restore", "--from"])
        .arg(&out)
        .arg("--passphrase-file")
        .arg(&passphrase)
        .output()
        .unwrap();
    assert_eq!(onto_live.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&onto_live.stderr).contains("fresh data directory"));
    let target = work.path().join("restored");
    std::fs::write(work.path().join("wrong"), "not the passphrase at all\n").unwrap();
    let wrong = std::process::Command::new(env!("CARGO_BIN_EXE_kopir"))
        .arg("--data-dir")
        .arg(&target)
        .args(["restore", "--from"])
        .arg(&out)
        .arg("--passphrase-file")
        .arg(work.path().join("wrong"))
        .output()
        .unwrap();
    assert_eq!(wrong.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("wrong passphrase"));
    assert!(!target.join("kopir.db").exists());

    let restored = std::process::Command::new(env!("CARGO_BIN_EXE_kopir"))
        .arg("--data-dir")
        .arg(&target)
        .args(["restore", "--from"])
        .arg(&out)
        .arg("--passphrase-file")
        .arg(&passphrase)
        .output()
        .unwrap();
    common::assert_success(&restored);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(target.join("pki/issuing-ca.key")).unwrap().permissions().mode() & 0o777, 0o600);

    // The original stops; the restored one serves the same participant and certificate.
    platform.shutdown_keep_dir().await;
    let mut config = common::test_config(work.path());
    config.data_dir = target.clone();
    let running = kopir::web::start(config.clone(), None).await.unwrap();
    let addr = running.addr;
    let root = std::fs::read_to_string(target.join("pki/root-ca.pem")).unwrap();
    let client = common::client_for(addr, &root, Some(&identity), None);
    let response =
        client.get(format!("https://localhost:{}/pki/client-certificate", addr.port())).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["Data"]["ClientId"], client_id_text.as_str());
    let show = std::process::Command::new(env!("CARGO_BIN_EXE_kopir"))
        .arg("--data-dir")
        .arg(&target)
        .args(["participant", "show", &bank_bin, "--json"])
        .output()
        .unwrap();
    common::assert_success(&show);
    assert!(String::from_utf8_lossy(&show.stdout).contains("Backup Bank JSC"));
    let verify = std::process::Command::new(env!("CARGO_BIN_EXE_kopir"))
        .arg("--data-dir")
        .arg(&target)
        .args(["audit", "verify"])
        .output()
        .unwrap();
    common::assert_success(&verify);
    running.shutdown().await;
}
