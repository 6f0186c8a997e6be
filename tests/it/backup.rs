//! Backup and restore: encrypted, taken while serving, restored only onto a fresh directory, and the restored
//! platform serves the same participants and consents and accepts the same client certificate and tokens.

use crate::common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restored_platform_accepts_the_same_certificate_and_knows_the_same_participants_and_consents() {
    let s = common::consent::scenario(1).await;
    // A customer's consent, authorised, with a refresh token: all of it must come back.
    let consent_id = s.create_consent().await;
    let verifier = "backup-verifier-backup-verifier-backup-verifier";
    let challenge = {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes()))
    };
    let request_uri = s.push(&consent_id, &challenge, "b").await;
    let params = common::consent::authorise(&s, &request_uri, &common::consent::iin(95), "+77015550095", "allow").await;
    let tokens: serde_json::Value = s
        .api()
        .post(s.platform.url("/oauth/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", common::consent::param(&params, "code").unwrap()),
            ("code_verifier", verifier),
            ("redirect_uri", common::consent::REDIRECT_URI),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let refresh_token = tokens["refresh_token"].as_str().expect("a refresh token").to_string();
    let (identity, client_id_text, bank_bin) = (s.identity.clone(), s.client_id.clone(), s.user_bin.clone());
    let mut platform = s.platform;
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
        for needle in [&b"PRIVATE KEY"[..], b"Fintech One", b"SQLite format 3", b"argon2id"] {
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
    assert!(String::from_utf8_lossy(&show.stdout).contains("Fintech One"));
    // The same consent, and the refresh token still works (same signing keys, same records).
    let consent: serde_json::Value = client
        .get(format!("https://localhost:{}/open-banking/v1/aisp/account-access-consents/{consent_id}", addr.port()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(consent["Data"]["Status"], "Authorised");
    let refreshed = client
        .post(format!("https://localhost:{}/oauth/token", addr.port()))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", refresh_token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(refreshed.status(), 200);
    let verify = std::process::Command::new(env!("CARGO_BIN_EXE_kopir"))
        .arg("--data-dir")
        .arg(&target)
        .args(["audit", "verify"])
        .output()
        .unwrap();
    common::assert_success(&verify);
    running.shutdown().await;
}
