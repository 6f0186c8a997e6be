//! The auditor's snapshot: exported while the platform serves, free of secrets, verified against the signed
//! manifest and the published key set; any altered row is caught and named.

use crate::common;

use std::path::Path;
use std::process::Command;

use crate::common::Platform;
use crate::common::browser::{Browser, bin, register_organisation};

/// Runs `kopir snapshot export` into `name` in the platform's directory, off the runtime's threads (the platform
/// keeps serving meanwhile), and returns the file's path.
async fn export_snapshot(platform: &Platform, name: &str) -> std::path::PathBuf {
    let out = platform.dir.path().join(name);
    let exported = tokio::task::spawn_blocking({
        let mut cmd = platform.kopir();
        cmd.args(["snapshot", "export", "--out"]).arg(&out);
        move || cmd.output().unwrap()
    })
    .await
    .unwrap();
    common::assert_success(&exported);
    out
}

fn copy_snapshot(from: &Path, to_dir: &Path) -> std::path::PathBuf {
    let to = to_dir.join("copy.db");
    std::fs::copy(from, &to).unwrap();
    for suffix in ["manifest.jws", "manifest.json"] {
        let name = from.file_name().unwrap().to_string_lossy();
        std::fs::copy(from.with_file_name(format!("{name}.{suffix}")), to_dir.join(format!("copy.db.{suffix}")))
            .unwrap();
    }
    to
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_taken_while_serving_holds_no_secret_and_verifies_until_a_row_is_altered() {
    let platform = Platform::start().await;
    let (admin, password) =
        register_organisation(&platform, &bin("99014000066"), "Audit Bank JSC", "audit.admin").await;
    let mut browser = Browser::new(&platform);
    let page = browser.sign_in(&admin, &password).await;
    assert!(page.url.ends_with("/org"));
    let live = rusqlite::Connection::open(platform.config.db_path()).unwrap();
    let (hash, secret): (String, Vec<u8>) = live
        .query_row("SELECT password_hash, totp_secret FROM users WHERE username = ?1", [&admin], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    let session: String = live.query_row("SELECT id_hash FROM sessions LIMIT 1", [], |r| r.get(0)).unwrap();

    // Requests keep arriving while the snapshot is taken.
    let load = tokio::spawn({
        let client = platform.client(None);
        let url = platform.url("/registry");
        async move {
            let mut served = 0;
            for _ in 0..200 {
                if client.get(&url).send().await.map(|r| r.status().is_success()).unwrap_or(false) {
                    served += 1;
                }
            }
            served
        }
    });
    let out = export_snapshot(&platform, "audit.db").await;
    assert_eq!(load.await.unwrap(), 200, "requests failed while the snapshot was taken");

    // Opened with the sqlite3 tool, the whole dump holds none of the secrets.
    let dump = Command::new("sqlite3").arg(&out).arg(".dump").output().expect("sqlite3 is installed");
    assert!(dump.status.success());
    let dump = String::from_utf8_lossy(&dump.stdout).into_owned();
    assert!(dump.contains("Audit Bank JSC"), "the snapshot lacks the data");
    for (what, needle) in [
        ("password hash", hash.clone()),
        ("password", password.clone()),
        ("TOTP secret", hex::encode(&secret).to_uppercase()),
        ("session", session.clone()),
        ("argon2", "$argon2id$".to_string()),
        ("private key", "PRIVATE KEY".to_string()),
    ] {
        assert!(!dump.contains(&needle), "the snapshot holds the {what}");
    }
    let raw = std::fs::read(&out).unwrap();
    assert!(!raw.windows(hash.len()).any(|w| w == hash.as_bytes()), "password hash left in free pages");
    assert!(!raw.windows(secret.len()).any(|w| w == secret.as_slice()), "TOTP secret left in free pages");

    // Verified against the key set the platform publishes.
    let jwks =
        platform.client(None).get(platform.url("/.well-known/jwks.json")).send().await.unwrap().text().await.unwrap();
    let jwks_file = platform.dir.path().join("jwks.json");
    std::fs::write(&jwks_file, &jwks).unwrap();
    let verified =
        platform.kopir().args(["snapshot", "verify", "--json", "--jwks"]).arg(&jwks_file).arg(&out).output().unwrap();
    common::assert_success(&verified);
    let report: serde_json::Value = serde_json::from_slice(&verified.stdout).unwrap();
    assert_eq!(report["ok"], true);
    assert!(
        report["manifest"]["tables"].as_array().unwrap().iter().any(|t| t["name"] == "organisations" && t["rows"] == 1)
    );

    // One altered row, anywhere, fails verification and is named.
    let altered_dir = tempfile::tempdir().unwrap();
    let altered = copy_snapshot(&out, altered_dir.path());
    let conn = rusqlite::Connection::open(&altered).unwrap();
    conn.execute("UPDATE organisations SET name = 'Someone Else LLP'", []).unwrap();
    drop(conn);
    let failed =
        platform.kopir().args(["snapshot", "verify", "--jwks"]).arg(&jwks_file).arg(&altered).output().unwrap();
    assert_eq!(failed.status.code(), Some(1));
    let err = String::from_utf8_lossy(&failed.stderr);
    assert!(err.contains("table organisations"), "{err}");

    let journal_dir = tempfile::tempdir().unwrap();
    let journal = copy_snapshot(&out, journal_dir.path());
    let conn = rusqlite::Connection::open(&journal).unwrap();
    conn.execute_batch("DROP TRIGGER audit_log_no_update").unwrap();
    conn.execute("UPDATE audit_log SET outcome = 'failure' WHERE seq = 2", []).unwrap();
    drop(conn);
    let failed =
        platform.kopir().args(["snapshot", "verify", "--jwks"]).arg(&jwks_file).arg(&journal).output().unwrap();
    assert_eq!(failed.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&failed.stderr).contains("row 2"), "{}", String::from_utf8_lossy(&failed.stderr));

    // A manifest signed by another key is refused.
    let foreign = serde_json::json!({ "keys": [] });
    std::fs::write(&jwks_file, foreign.to_string()).unwrap();
    let unsigned = platform.kopir().args(["snapshot", "verify", "--jwks"]).arg(&jwks_file).arg(&out).output().unwrap();
    assert_eq!(unsigned.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unsigned.stderr).contains("signature"));

    // Exporting over an existing file is refused.
    let again = platform.kopir().args(["snapshot", "export", "--out"]).arg(&out).output().unwrap();
    assert_eq!(again.status.code(), Some(1));
    platform.shutdown().await;
}

/// A snapshot after customers consented: no IIN, phone, OTP, code or token in it; with `--pseudonymise` each IIN
/// becomes the same keyed pseudonym in every snapshot, and the verification still holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customer_data_is_pseudonymised_stably_and_consent_secrets_never_leave() {
    let s = common::consent::scenario(1).await;
    let iin = common::consent::iin(91);
    let consent_id = s.create_consent().await;
    let request_uri = s.push(&consent_id, "R13_TdhCNqHHszZgSNvkIhuNsrzzWuiVodgRbuFDdA4", "s").await;
    let params = common::consent::authorise(&s, &request_uri, &iin, "+77015550091", "allow").await;
    let code = common::consent::param(&params, "code").unwrap().to_string();
    // A second customer, mid-journey: their IIN and phone are in a customer session.
    let open = s.create_consent().await;
    let request_uri = s.push(&open, "R13_TdhCNqHHszZgSNvkIhuNsrzzWuiVodgRbuFDdA4", "s").await;
    let customer = Browser::customer(&s.platform);
    let page = customer.get(&s.authorize_path(&request_uri)).await;
    let other_iin = common::consent::iin(92);
    let page = customer.post("/verify", &page.csrf(), &[("iin", &other_iin), ("phone", "+77015550092")]).await;
    customer.post("/verify/biometric", &page.csrf(), &[("session", "pass")]).await;
    let otp = common::consent::sms_code(&s.platform, "+77015550092").await;

    let dir = tempfile::tempdir().unwrap();
    let export = |name: &str| {
        let out = dir.path().join(name);
        let output =
            s.platform.kopir().args(["snapshot", "export", "--pseudonymise", "--out"]).arg(&out).output().unwrap();
        common::assert_success(&output);
        assert!(String::from_utf8_lossy(&output.stdout).contains("pseudonyms"));
        out
    };
    let first = export("first.db");
    let second = export("second.db");
    let dump = |file: &Path| {
        let output = Command::new("sqlite3").arg(file).arg(".dump").output().expect("sqlite3 is installed");
        String::from_utf8(output.stdout).unwrap()
    };
    let text = dump(&first);
    // (The six digits of the code alone could occur by chance in a hash; the message that carried it cannot.)
    let message = format!("your code is {otp}");
    for secret in [iin.as_str(), other_iin.as_str(), "7015550091", "7015550092", message.as_str(), code.as_str()] {
        assert!(!text.contains(secret), "{secret} is in the snapshot");
    }
    let pseudonyms = |file: &Path| -> Vec<String> {
        let conn = rusqlite::Connection::open(file).unwrap();
        let mut stmt = conn.prepare("SELECT iin FROM customers ORDER BY id").unwrap();
        stmt.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
    };
    let (a, b) = (pseudonyms(&first), pseudonyms(&second));
    assert_eq!(a.len(), 1);
    assert!(a[0].starts_with("pseudo:") && a[0].len() > 20, "{a:?}");
    assert_eq!(a, b, "the same customer has the same pseudonym in every snapshot");
    // The consent is still the customer's in the snapshot: an auditor can follow it.
    let conn = rusqlite::Connection::open(&first).unwrap();
    let owner: String = conn
        .query_row(
            "SELECT cu.iin FROM consents c JOIN customers cu ON cu.id = c.customer_id WHERE c.id = ?1",
            [&consent_id],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(owner, a[0]);
    let verified = s.platform.kopir().args(["snapshot", "verify"]).arg(&first).output().unwrap();
    common::assert_success(&verified);
    // Without the flag, the IIN is there (for auditors entitled to it), and nothing else secret is.
    let plain = dir.path().join("plain.db");
    common::assert_success(&s.platform.kopir().args(["snapshot", "export", "--out"]).arg(&plain).output().unwrap());
    let text = dump(&plain);
    assert!(text.contains(&iin));
    assert!(!text.contains(&message) && !text.contains("7015550092") && !text.contains(&code));
    s.platform.shutdown().await;
}

/// A webhook URL whose path carries the receiver's secret: the journal keeps only its origin, so the secret is in no
/// byte of the snapshot file (the organisation's row keeps only the origin there too).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_in_a_webhook_url_is_in_no_byte_of_the_snapshot() {
    let platform = Platform::start().await;
    let admin =
        common::participant::admin_of_new_organisation(&platform, &bin("99014000067"), "Hook Audit JSC", "hook.audit")
            .await;
    let page = admin.get("/org/profile").await;
    let csrf = common::participant::csrf_of(&page);
    let secret = "tok-5ecret-9f3a7c21d4e8";
    for url in [format!("https://hooks.bank.kz/kopir/{secret}"), format!("https://hooks.bank.kz:8443/{secret}/v2")] {
        let saved = admin.post("/org/profile/webhook", &csrf, &[("webhook_url", &url)]).await;
        assert_eq!(saved.status, 200, "{}", saved.body);
    }
    let live = common::participant::db(&platform);
    let journal: Vec<String> = {
        let mut stmt = live
            .prepare("SELECT detail FROM audit_log WHERE action = 'participants.profile.webhook_updated' ORDER BY seq")
            .unwrap();
        stmt.query_map([], |r| r.get(0)).unwrap().map(|r| r.unwrap()).collect()
    };
    assert_eq!(journal.len(), 2);
    assert!(journal[1].contains("https://hooks.bank.kz:8443") && journal[1].contains("https://hooks.bank.kz\""));
    assert!(journal.iter().all(|d| !d.contains(secret)), "{journal:?}");

    let out = export_snapshot(&platform, "hooks.db").await;
    let raw = std::fs::read(&out).unwrap();
    assert!(!raw.windows(secret.len()).any(|w| w == secret.as_bytes()), "the webhook URL's secret is in the snapshot");
    for suffix in ["manifest.jws", "manifest.json"] {
        let manifest = std::fs::read(platform.dir.path().join(format!("hooks.db.{suffix}"))).unwrap();
        assert!(!manifest.windows(secret.len()).any(|w| w == secret.as_bytes()));
    }
    platform.shutdown().await;
}

/// What customers typed into a complaint from `/my` and the bytes of requests' attachments are in no byte of the
/// auditor's snapshot; the requests themselves, the attachment's name, type, size and SHA-256 are, and the snapshot
/// still verifies against the published key set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complaint_texts_and_attachment_bytes_are_in_no_byte_of_the_snapshot() {
    use base64::Engine;
    let s = common::consent::scenario(1).await;
    let platform = &s.platform;
    // A customer complains about their consent from /my.
    let iin = common::consent::iin(93);
    let consent_id = s.create_consent().await;
    let request_uri = s.push(&consent_id, "R13_TdhCNqHHszZgSNvkIhuNsrzzWuiVodgRbuFDdA4", "s").await;
    common::consent::authorise(&s, &request_uri, &iin, "+77015550093", "allow").await;
    let customer = Browser::customer(platform);
    common::consent::identify(platform, &customer, "/my/start", &iin, "+77015550093").await;
    let page = customer.get(&format!("/my/consents/{consent_id}")).await;
    let complaint = "Complaint-7c1e: the app kept reading my card account after I said stop";
    let sent =
        customer.post(&format!("/my/consents/{consent_id}/complaint"), &page.csrf(), &[("text", complaint)]).await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    // The API user raises a request with a screenshot (a PNG by its bytes, with a marker no other row holds).
    let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89".to_vec();
    let marker = b"attachment-bytes-5d2e9a41-only-in-the-file";
    png.extend_from_slice(marker);
    let body = serde_json::json!({
        "category": "integration", "subject": "Screenshot of the error", "description": "See the attached screenshot.",
        "attachments": [{"filename": "error.png", "content": base64::engine::general_purpose::STANDARD.encode(&png)}],
    });
    let raised = s.api().post(platform.url("/participant/v1/requests")).json(&body).send().await.unwrap();
    assert_eq!(raised.status(), 201);
    let live = common::participant::db(platform);
    assert_eq!(
        live.query_row("SELECT count(*) FROM requests WHERE description = ?1", [complaint], |r| r.get::<_, i64>(0))
            .unwrap(),
        1,
        "the complaint is stored on the platform"
    );

    let out = export_snapshot(platform, "requests.db").await;
    let raw = std::fs::read(&out).unwrap();
    assert!(!raw.windows(complaint.len()).any(|w| w == complaint.as_bytes()), "the complaint's text is in the file");
    assert!(!raw.windows(marker.len()).any(|w| w == marker.as_slice()), "the attachment's bytes are in the file");
    for suffix in ["manifest.jws", "manifest.json"] {
        let manifest = std::fs::read(platform.dir.path().join(format!("requests.db.{suffix}"))).unwrap();
        assert!(!manifest.windows(marker.len()).any(|w| w == marker.as_slice()));
    }
    // What an auditor needs is kept: both requests, the attachment's name, type, size and digest.
    let snapshot = rusqlite::Connection::open(&out).unwrap();
    let (filename, content_type, size, sha256, left): (String, String, i64, String, i64) = snapshot
        .query_row("SELECT filename, content_type, size, sha256, length(content) FROM request_attachments", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap();
    assert_eq!((filename.as_str(), content_type.as_str(), size, left), ("error.png", "image/png", png.len() as i64, 0));
    assert_eq!(sha256, kopir::digest::sha256_hex(&png));
    let complaints: i64 = snapshot
        .query_row(
            "SELECT count(*) FROM requests WHERE requester_customer_id IS NOT NULL AND object_ref = ?1",
            [&consent_id],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(complaints, 1, "the complaint itself (its dates, course, consent) stays");
    let kept: String = snapshot
        .query_row("SELECT description FROM requests WHERE requester_customer_id IS NULL", [], |r| r.get(0))
        .unwrap();
    assert_eq!(kept, "See the attached screenshot.", "participants' own requests keep their text");
    drop(snapshot);

    let jwks =
        platform.client(None).get(platform.url("/.well-known/jwks.json")).send().await.unwrap().text().await.unwrap();
    let jwks_file = platform.dir.path().join("jwks-requests.json");
    std::fs::write(&jwks_file, &jwks).unwrap();
    let verified = platform.kopir().args(["snapshot", "verify", "--jwks"]).arg(&jwks_file).arg(&out).output().unwrap();
    common::assert_success(&verified);
    s.platform.shutdown().await;
}
