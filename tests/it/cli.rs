//! The `kopir` binary as an administrator uses it: configuration errors, init, the audit journal, serve and SIGTERM.

use crate::common;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::assert_success;

fn kopir(data_dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kopir"));
    cmd.arg("--data-dir").arg(data_dir);
    for (key, _) in std::env::vars() {
        if key.starts_with("KOPIR_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Runs `kopir config check` with `text` as the configuration file.
fn check_config(text: &str) -> (std::process::Output, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("appliance.toml");
    std::fs::write(&file, text).unwrap();
    let output = kopir(&dir.path().join("data")).arg("--config").arg(&file).args(["config", "check"]).output().unwrap();
    (output, file.display().to_string())
}

#[test]
fn bad_configuration_files_each_give_a_named_error_and_exit_code_2() {
    let cases = [
        ("[server]\nlisten_address = \"127.0.0.1:1\"\n", "listen_address"),
        ("[store]\nreaders = \"many\"\n", "store.readers"),
        ("[server]\nlisten = \"127.0.0.1:70000\"\n", "server.listen"),
        ("[server]\nhostnames = []\n", "server.hostnames"),
        ("[admin]\nlisten = \"0.0.0.0:9464\"\n", "admin.listen"),
        ("mode = \"chaos\"\n", "mode"),
        ("[pki]\nclient_validity_days = 0\n", "pki.client_validity_days"),
        ("[server\nlisten = 1\n", "not valid TOML"),
    ];
    for (text, named) in cases {
        let (output, file) = check_config(text);
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "config {text:?} gave {err}");
        assert!(err.contains(named), "error for {text:?} does not name {named}: {err}");
        assert!(err.contains(&file), "error for {text:?} does not name the file: {err}");
    }
    let (ok, _) = check_config("[store]\nreaders = 2\n");
    assert_success(&ok);
}

#[test]
fn environment_variables_override_and_bad_ones_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let output =
        kopir(&dir.path().join("d")).env("KOPIR_STORE_READERS", "0").args(["config", "check"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("KOPIR_STORE_READERS"), "{}", stderr(&output));
    let output =
        kopir(&dir.path().join("d")).env("KOPIR_STORE_READERS", "7").args(["config", "check"]).output().unwrap();
    assert_success(&output);
    assert!(stdout(&output).contains("readers: 7"));
    let missing = kopir(&dir.path().join("d"))
        .arg("--config")
        .arg(dir.path().join("absent.toml"))
        .args(["config", "check"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(stderr(&missing).contains("absent.toml"));
}

#[test]
fn config_example_is_the_documented_file() {
    let output = kopir(Path::new("/nonexistent")).args(["config", "example"]).output().unwrap();
    assert_success(&output);
    let shipped = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/appliance.toml")).unwrap();
    assert_eq!(stdout(&output), shipped);
}

fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>, u32)> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir.join("pki")).unwrap() {
        let entry = entry.unwrap();
        let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
        files.push((entry.file_name().to_string_lossy().into_owned(), std::fs::read(entry.path()).unwrap(), mode));
    }
    files.sort();
    files
}

#[test]
fn init_creates_everything_once_and_a_second_run_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let first = kopir(&data).arg("init").output().unwrap();
    assert_success(&first);
    let out = stdout(&first);
    assert!(out.contains("one-time password"), "{out}");
    assert_eq!(std::fs::metadata(&data).unwrap().permissions().mode() & 0o777, 0o700);
    assert_eq!(std::fs::metadata(data.join("kopir.db")).unwrap().permissions().mode() & 0o777, 0o600);
    let before = snapshot(&data);
    let names: Vec<&str> = before.iter().map(|(n, _, _)| n.as_str()).collect();
    for key in ["root-ca.key", "issuing-ca.key", "server.key", "platform-client.key"] {
        let (_, contents, mode) =
            before.iter().find(|(n, _, _)| n == key).unwrap_or_else(|| panic!("{key} in {names:?}"));
        assert_eq!(*mode, 0o600, "{key} mode");
        assert!(String::from_utf8_lossy(contents).contains("PRIVATE KEY"));
    }

    let second = kopir(&data).arg("init").output().unwrap();
    assert_success(&second);
    let out2 = stdout(&second);
    assert!(out2.contains("nothing was changed"), "{out2}");
    assert!(!out2.contains("one-time password"), "{out2}");
    assert_eq!(snapshot(&data), before, "second init changed the CA files");

    let conn = rusqlite::Connection::open(data.join("kopir.db")).unwrap();
    let admins: i64 =
        conn.query_row("SELECT count(*) FROM users WHERE role = 'operator_admin'", [], |r| r.get(0)).unwrap();
    assert_eq!(admins, 1);
    let certificates: i64 = conn.query_row("SELECT count(*) FROM certificates", [], |r| r.get(0)).unwrap();
    assert_eq!(certificates, 4);
    let must_change: i64 =
        conn.query_row("SELECT must_change_password FROM users WHERE username = 'admin'", [], |r| r.get(0)).unwrap();
    assert_eq!(must_change, 1);

    // The one-time password works against the stored hash, and appears nowhere in the database or the journal.
    let password =
        out.lines().find(|l| l.contains("one-time password")).unwrap().rsplit(' ').next().unwrap().to_string();
    let hash: String =
        conn.query_row("SELECT password_hash FROM users WHERE username = 'admin'", [], |r| r.get(0)).unwrap();
    assert!(kopir::identity::verify_password(&password, &hash));
    drop(conn);
    let raw = std::fs::read(data.join("kopir.db")).unwrap();
    let wal = std::fs::read(data.join("kopir.db-wal")).unwrap_or_default();
    for bytes in [raw, wal] {
        assert!(!bytes.windows(password.len()).any(|w| w == password.as_bytes()), "password stored in clear");
    }
}

#[test]
fn a_database_newer_than_the_binary_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    assert_success(&kopir(&data).arg("init").output().unwrap());
    let conn = rusqlite::Connection::open(data.join("kopir.db")).unwrap();
    conn.execute_batch("PRAGMA user_version = 999").unwrap();
    drop(conn);
    for args in [&["ca", "list"][..], &["init"][..]] {
        let output = kopir(&data).args(args).output().unwrap();
        assert_eq!(output.status.code(), Some(1));
        let err = stderr(&output);
        assert!(err.contains("999") && err.contains("newer"), "{err}");
    }
}

#[test]
fn audit_verify_passes_and_names_the_first_altered_row_in_a_tampered_copy() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    assert_success(&kopir(&data).arg("init").output().unwrap());
    let csr = common::Csr::new("audited-app");
    std::fs::write(dir.path().join("a.csr"), &csr.csr_pem).unwrap();
    let issue = kopir(&data)
        .args(["ca", "issue", "--csr"])
        .arg(dir.path().join("a.csr"))
        .arg("--out")
        .arg(dir.path().join("a.pem"))
        .output()
        .unwrap();
    assert_success(&issue);
    let ok = kopir(&data).args(["audit", "verify", "--json"]).output().unwrap();
    assert_success(&ok);
    let report: serde_json::Value = serde_json::from_str(&stdout(&ok)).unwrap();
    assert_eq!(report["ok"], true);
    let rows = report["rows"].as_i64().unwrap();
    assert!(rows >= 7, "{report}");

    // A copy with one row altered, the way an intruder with file access would (dropping the guard trigger).
    let copy = dir.path().join("copy");
    std::fs::create_dir(&copy).unwrap();
    let conn = rusqlite::Connection::open(data.join("kopir.db")).unwrap();
    conn.execute("VACUUM INTO ?1", [copy.join("kopir.db").to_str().unwrap()]).unwrap();
    drop(conn);
    let tampered = rusqlite::Connection::open(copy.join("kopir.db")).unwrap();
    tampered.execute_batch("DROP TRIGGER audit_log_no_update").unwrap();
    tampered.execute("UPDATE audit_log SET actor = 'cli:nobody' WHERE seq = 3", []).unwrap();
    drop(tampered);
    let bad = kopir(&copy).args(["audit", "verify"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert!(stderr(&bad).contains("row 3"), "{}", stderr(&bad));

    // The journal never holds key material.
    let conn = rusqlite::Connection::open(data.join("kopir.db")).unwrap();
    let journal: Vec<String> = conn
        .prepare("SELECT coalesce(detail, '') || coalesce(object, '') || actor FROM audit_log")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(journal.iter().all(|row| !row.contains("PRIVATE KEY") && !row.contains("BEGIN CERTIFICATE REQUEST")));
}

#[test]
fn csr_with_a_weak_key_or_garbage_is_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    assert_success(&kopir(&data).arg("init").output().unwrap());
    std::fs::write(dir.path().join("junk.csr"), "not a csr").unwrap();
    let out = kopir(&data)
        .args(["ca", "issue", "--csr"])
        .arg(dir.path().join("junk.csr"))
        .arg("--out")
        .arg(dir.path().join("junk.pem"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not acceptable"), "{}", stderr(&out));
    assert!(!dir.path().join("junk.pem").exists());
}

/// Starts `kopir serve` and returns it with the address it printed.
fn spawn_serve(data: &Path, extra_env: &[(&str, &str)]) -> (Served, String, Vec<String>) {
    let mut cmd = kopir(data);
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .env("KOPIR_LOG_STDERR", "false")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let mut child = Served(cmd.spawn().unwrap());
    let stdout = child.0.stdout.take().unwrap();
    let mut lines = Vec::new();
    let mut addr = None;
    let mut reader = BufReader::new(stdout).lines();
    for line in reader.by_ref() {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("kopir is serving on https://") {
            addr = Some(rest.trim().to_string());
            lines.push(line);
            break;
        }
        lines.push(line);
    }
    let addr = addr.unwrap_or_else(|| panic!("serve did not start: {lines:?}"));
    // Keep draining its output so the server never writes into a closed pipe.
    std::thread::spawn(move || for _ in reader {});
    (child, addr, lines)
}

fn sigterm(child: &Served) {
    let status = Command::new("kill").args(["-TERM", &child.0.id().to_string()]).status().unwrap();
    assert!(status.success());
}

async fn wait_exit(child: &mut Served, within: Duration) -> std::process::ExitStatus {
    common::eventually("kopir to exit", within, async || child.0.try_wait().unwrap().ok_or("still running")).await
}

/// A `kopir serve` child process, killed if the test fails before it has stopped it (a panicking test must not leave
/// a server behind in the test process's place).
struct Served(std::process::Child);

impl Drop for Served {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[tokio::test]
async fn serve_on_a_fresh_directory_initialises_itself_serves_and_exits_0_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("fresh");
    let (mut child, addr, lines) = spawn_serve(&data, &[]);
    let text = lines.join("\n");
    assert!(text.contains("one-time password"), "{text}");
    let password =
        lines.iter().find(|l| l.contains("one-time password")).unwrap().rsplit(' ').next().unwrap().to_string();

    let root = std::fs::read_to_string(data.join("pki/root-ca.pem")).unwrap();
    let client = common::client_for(addr.parse().unwrap(), &root, None, None);
    let port = addr.rsplit(':').next().unwrap();
    let health = client.get(format!("https://localhost:{port}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let request_id = health.headers()["x-request-id"].to_str().unwrap().to_string();

    sigterm(&child);
    let status = wait_exit(&mut child, Duration::from_secs(20)).await;
    assert_eq!(status.code(), Some(0));

    // The log file has the request, by id, and not the administrator's password.
    let logs: String = std::fs::read_dir(data.join("logs"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert!(logs.contains(&request_id), "request id not in logs:\n{logs}");
    assert!(logs.contains("route=/healthz"), "{logs}");
    assert!(!logs.contains(&password), "password in logs");
    assert!(!logs.contains("PRIVATE KEY"));
}

#[test]
fn production_mode_does_not_initialise_itself() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("prod");
    let output =
        kopir(&data).env("KOPIR_MODE", "production").args(["serve", "--listen", "127.0.0.1:0"]).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("kopir init"), "{}", stderr(&output));
    assert!(!data.join("kopir.db").exists());
}

#[test]
fn renew_server_reissues_for_the_configured_names_and_supersedes_the_old_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    assert_success(&kopir(&data).arg("init").output().unwrap());
    let old_pem = std::fs::read_to_string(data.join("pki/server.pem")).unwrap();
    let output = kopir(&data)
        .env("KOPIR_SERVER_HOSTNAMES", r#"["localhost", "api.kopir.test"]"#)
        .args(["ca", "renew-server"])
        .output()
        .unwrap();
    assert_success(&output);
    let new_pem = std::fs::read_to_string(data.join("pki/server.pem")).unwrap();
    assert_ne!(old_pem, new_pem);
    let (_, pem) = x509_parser::pem::parse_x509_pem(new_pem.as_bytes()).unwrap();
    let cert = pem.parse_x509().unwrap();
    let san = cert.subject_alternative_name().unwrap().unwrap();
    let names: Vec<String> = san.value.general_names.iter().map(|n| n.to_string()).collect();
    assert!(names.iter().any(|n| n.contains("api.kopir.test")), "{names:?}");
    let list = kopir(&data).args(["ca", "list", "--json"]).output().unwrap();
    let records: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let servers: Vec<&serde_json::Value> =
        records.as_array().unwrap().iter().filter(|r| r["kind"] == "server").collect();
    assert_eq!(servers.len(), 2);
    assert_eq!(servers.iter().filter(|r| r["revocation_reason"] == "superseded").count(), 1);
    assert_eq!(std::fs::metadata(data.join("pki/server.key")).unwrap().permissions().mode() & 0o777, 0o600);
}

/// The serial of the certificate the server presents on a new connection.
async fn presented_serial(addr: &str, root_pem: &str) -> String {
    let config = common::tls_config(root_pem, None, None);
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = connector.connect(name, tcp).await.unwrap();
    let leaf = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref()).unwrap();
    hex::encode(cert.raw_serial())
}

#[tokio::test]
async fn sighup_makes_a_running_server_present_a_renewed_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let (mut child, addr, _) = spawn_serve(&data, &[]);
    let root = std::fs::read_to_string(data.join("pki/root-ca.pem")).unwrap();
    let before = presented_serial(&addr, &root).await;

    let renew = kopir(&data).args(["ca", "renew-server"]).output().unwrap();
    assert_success(&renew);
    assert_eq!(presented_serial(&addr, &root).await, before, "changed before SIGHUP");

    let status = Command::new("kill").args(["-HUP", &child.0.id().to_string()]).status().unwrap();
    assert!(status.success());
    common::eventually("the renewed certificate served after SIGHUP", Duration::from_secs(10), async || {
        assert!(child.0.try_wait().unwrap().is_none(), "SIGHUP stopped the server");
        let presented = presented_serial(&addr, &root).await;
        if presented != before { Ok(()) } else { Err(presented) }
    })
    .await;
    sigterm(&child);
    assert_eq!(wait_exit(&mut child, Duration::from_secs(20)).await.code(), Some(0));
}

#[test]
fn operator_accounts_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    assert_success(&kopir(&data).arg("init").output().unwrap());
    let added = kopir(&data)
        .args(["user", "add", "dana.ops", "--role", "operator-staff", "--full-name", "Dana"])
        .output()
        .unwrap();
    assert_success(&added);
    let out = stdout(&added);
    let password =
        out.lines().find(|l| l.contains("one-time password")).unwrap().rsplit(' ').next().unwrap().to_string();
    assert_eq!(password.len(), 20);

    let list = kopir(&data).args(["user", "list", "--json"]).output().unwrap();
    let users: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let dana = users.as_array().unwrap().iter().find(|u| u["username"] == "dana.ops").unwrap().clone();
    assert_eq!(dana["role"], "operator_staff");
    assert_eq!(dana["must_change_password"], true);
    assert!(!String::from_utf8_lossy(&list.stdout).contains("password_hash"));

    assert_success(&kopir(&data).args(["user", "disable", "dana.ops"]).output().unwrap());
    assert_success(&kopir(&data).args(["user", "reset-second-factor", "dana.ops"]).output().unwrap());
    assert_success(&kopir(&data).args(["user", "enable", "dana.ops"]).output().unwrap());
    // The only administrator cannot lock everyone out.
    let last = kopir(&data).args(["user", "disable", "admin"]).output().unwrap();
    assert_eq!(last.status.code(), Some(1));
    assert!(stderr(&last).contains("last active operator administrator"), "{}", stderr(&last));
    let taken = kopir(&data).args(["user", "add", "dana.ops", "--role", "regulator"]).output().unwrap();
    assert_eq!(taken.status.code(), Some(1));
    let bad_role = kopir(&data).args(["user", "add", "x.y", "--role", "participant-admin"]).output().unwrap();
    assert_eq!(bad_role.status.code(), Some(2));

    let conn = rusqlite::Connection::open(data.join("kopir.db")).unwrap();
    let actions: Vec<String> = conn
        .prepare("SELECT action FROM audit_log WHERE object = 'user:dana.ops' ORDER BY seq")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        actions,
        ["identity.user.created", "identity.user.disabled", "identity.totp.reset", "identity.user.enabled"]
    );
    let journal: String =
        conn.query_row("SELECT group_concat(coalesce(detail,'')) FROM audit_log", [], |r| r.get(0)).unwrap();
    assert!(!journal.contains(&password));
}

#[tokio::test]
async fn status_reports_listener_certificates_counts_and_the_audit_chain() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (mut child, addr, _) = spawn_serve(&data, &[]);
    let status = tokio::task::spawn_blocking({
        let mut cmd = kopir(&data);
        cmd.env("KOPIR_SERVER_LISTEN", &addr).args(["status", "--json"]);
        move || cmd.output().unwrap()
    })
    .await
    .unwrap();
    assert_success(&status);
    let report: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(report["listener"]["answers"], true, "{report}");
    assert_eq!(report["facts"]["audit_chain"]["intact"], true);
    assert_eq!(report["facts"]["schema_version"], report["binary_schema_version"]);
    let certs = report["facts"]["platform_certificates"].as_array().unwrap();
    let kinds: Vec<&str> = certs.iter().map(|c| c["kind"].as_str().unwrap()).collect();
    for kind in ["root_ca", "issuing_ca", "server", "platform_client"] {
        assert!(kinds.contains(&kind), "{kinds:?}");
    }
    assert!(certs.iter().all(|c| c["days_left"].as_i64().unwrap() > 300));
    assert!(report["warnings"].as_array().unwrap().is_empty(), "{report}");
    sigterm(&child);
    assert_eq!(wait_exit(&mut child, Duration::from_secs(20)).await.code(), Some(0));

    // Stopped: the status says so.
    let stopped = kopir(&data).env("KOPIR_SERVER_LISTEN", &addr).args(["status"]).output().unwrap();
    assert_success(&stopped);
    assert!(stdout(&stopped).contains("does not answer"));
    assert!(stdout(&stopped).contains("warning: nothing answers"));
}

#[test]
fn production_mode_refuses_to_start_with_simulated_adapters() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    assert_success(&kopir(&data).arg("init").output().unwrap());
    let refused =
        kopir(&data).env("KOPIR_MODE", "production").args(["serve", "--listen", "127.0.0.1:0"]).output().unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert!(stderr(&refused).contains("trust.sms_adapter"), "{}", stderr(&refused));
}
