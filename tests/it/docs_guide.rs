//! Every command of the developer guide, run as a developer runs it: the guide's titled `sh` blocks, in order, in one
//! bash session against `kopir demo` (over loopback), with the demo's address, data directory and first bank given
//! as the variables the guide names. The one step that is not a command — the customer deciding in a browser — is
//! walked by the test's browser, and the code it brings back is given to the session as the guide says; the webhook
//! event the guide verifies is one the platform's signer signs as the webhook worker does.

use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::common;
use crate::common::browser::Browser;
use kopir::demo::{DemoOptions, start};
use kopir::i18n::Lang;

/// One bash process the blocks are typed into; what each block prints is read up to a marker echoed after it.
struct Shell {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    stdout: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    stderr_path: std::path::PathBuf,
    run: usize,
}

impl Shell {
    fn start(dir: &std::path::Path, env: &[(&str, String)]) -> Shell {
        let stderr_path = dir.join("stderr.txt");
        let stderr = std::fs::File::create(&stderr_path).unwrap();
        let mut command = tokio::process::Command::new("bash");
        command
            .args(["--noprofile", "--norc"])
            .current_dir(dir)
            .env_clear()
            .env("HOME", dir)
            .env("LANG", "C.UTF-8")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .kill_on_drop(true);
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        Shell { child, stdin, stdout, stderr_path, run: 0 }
    }

    /// Types `code` and returns what it printed; a failing command ends the session (`set -e`) and the test.
    async fn run(&mut self, title: &str, code: &str) -> Vec<String> {
        self.run += 1;
        let marker = format!("__kopir_guide_block_{}_done__", self.run);
        let script = format!("{code}\necho {marker}\n");
        self.stdin.write_all(script.as_bytes()).await.unwrap();
        self.stdin.flush().await.unwrap();
        let mut printed = Vec::new();
        loop {
            match self.stdout.next_line().await.unwrap() {
                // A command's last line may lack its newline: the marker then ends that line.
                Some(line) if line.ends_with(&marker) => {
                    let rest = &line[..line.len() - marker.len()];
                    if !rest.is_empty() {
                        printed.push(rest.to_string());
                    }
                    return printed;
                }
                Some(line) => printed.push(line),
                None => {
                    let status = self.child.wait().await.unwrap();
                    let stderr = std::fs::read_to_string(&self.stderr_path).unwrap_or_default();
                    // What the session wrote to its text files (the conformance report) says why.
                    let mut files = String::new();
                    if let Some(dir) = self.stderr_path.parent() {
                        for entry in std::fs::read_dir(dir).unwrap().flatten() {
                            let path = entry.path();
                            if path.extension().is_some_and(|e| e == "txt") && path != self.stderr_path {
                                files.push_str(&format!(
                                    "{}:\n{}\n",
                                    path.display(),
                                    std::fs::read_to_string(&path).unwrap_or_default()
                                ));
                            }
                        }
                    }
                    panic!(
                        "the guide's block {title:?} failed ({status}):\n{}\nstderr:\n{stderr}\n{files}",
                        printed.join("\n")
                    );
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_developer_guide_s_commands_run_against_the_demo() {
    let dir = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let config = common::test_config(dir.path());
    let demo = start(config.clone(), DemoOptions { bank_ports: [0, 0, 0] }).await.unwrap();
    let banks = demo.banks;
    let platform = common::Platform::attach(dir, config.clone(), demo.platform);
    let kopir_bin = std::path::Path::new(env!("CARGO_BIN_EXE_kopir"));
    let path = format!("{}:/usr/local/bin:/usr/bin:/bin", kopir_bin.parent().unwrap().display());
    let env = [
        ("PATH", path),
        ("KOPIR", platform.url("")),
        ("DEMO_DATA", config.data_dir.display().to_string()),
        ("BANK_URL", banks[0].base_url.clone()),
    ];
    let mut shell = Shell::start(work.path(), &env);
    shell.run("strict mode", "set -eu -o pipefail").await;

    let guide = kopir::docs::document(kopir::docs::DEVELOPER_GUIDE, Lang::En).unwrap();
    let blocks: Vec<_> = guide.code_blocks.iter().filter(|b| b.language == "sh").collect();
    assert!(blocks.len() >= 12, "{} blocks", blocks.len());
    let mut outputs = Vec::new();
    for block in blocks {
        if block.code.contains("$CODE") && !outputs.iter().any(|(t, _): &(String, Vec<String>)| t == "customer") {
            // The customer decides in a browser at the address the previous block printed.
            let printed = &outputs.last().map(|(_, p): &(String, Vec<String>)| p.clone()).unwrap_or_default();
            let authorize = printed.iter().rev().find(|l| l.starts_with("https://")).expect("an address to open");
            let path = authorize.strip_prefix(&platform.url("")).expect("the platform's own address").to_string();
            let customer = Browser::customer_stopping_at(&platform, "/demo/app/callback");
            let iin = kopir::standard::SANDBOX_CUSTOMERS[0].iin;
            let page = common::consent::identify(&platform, &customer, &path, iin, "+77015550199").await;
            assert!(page.url.ends_with("/oauth/authorize/consent"), "{}: {}", page.url, page.body);
            let answered = customer.post("/oauth/authorize/consent", &page.csrf(), &[("decision", "allow")]).await;
            assert_eq!(answered.status, 303, "{}", answered.body);
            let location = answered.headers["location"].to_str().unwrap().to_string();
            assert!(location.starts_with(&platform.url("/demo/app/callback?")), "{location}");
            let query = location.split_once('?').unwrap().1;
            let params: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes()).into_owned().collect();
            let code = &params.iter().find(|(n, _)| n == "code").expect("a code").1;
            assert!(code.chars().all(|c| c.is_ascii_alphanumeric() || "-_.~".contains(c)), "{code}");
            shell.run("customer", &format!("CODE='{code}'")).await;
            outputs.push(("customer".to_string(), Vec::new()));
        }
        if block.code.contains("event.jws") {
            // A delivery's body as the webhook worker signs it: the platform's signer, the event's claims.
            let state = &platform.running().state;
            let now = platform.clock().now().unix_timestamp();
            let claims = serde_json::json!({
                "iss": platform.url(""),
                "aud": "990541000440",
                "iat": now,
                "exp": now + 300,
                "jti": "7f0f5a2e-8d43-4c1b-9d55-0a6b2d1c3e4f",
                "event": "consent.revoked",
                "occurred_at": kopir::clock::rfc3339(platform.clock().now()),
                "data": {"ConsentId": "guide-test"},
            });
            let jws = state.signer.sign(&state.db, kopir::notify::JWT_TYPE, &claims).await.unwrap();
            std::fs::write(work.path().join("event.jws"), jws).unwrap();
        }
        let printed = shell.run(&block.title, &block.code).await;
        outputs.push((block.title.clone(), printed));
    }

    // What the commands printed is what the guide promises.
    let printed = |title: &str| -> String {
        outputs.iter().find(|(t, _)| t == title).map(|(_, p)| p.join("\n")).unwrap_or_default()
    };
    assert!(printed("Point your shell at the demo").contains("\"status\":\"ok\""));
    assert!(printed("Show the client certificate and find the client id").contains("client id: "));
    assert!(!printed("Show the client certificate and find the client id").ends_with("client id: "));
    assert!(printed("Read the discovery document").contains("pushed_authorization_request_endpoint"));
    assert!(printed("Create an account-access consent").starts_with("consent: "));
    assert!(printed("Exchange the code for tokens").contains("token type: Bearer"));
    let first_account = printed("List the customer's accounts");
    assert!(first_account.starts_with("first account: ") && first_account.len() > "first account: ".len());
    let balances = printed("Read the balances and the transactions of an account");
    assert!(balances.contains("\"MinorUnits\""), "{balances}");
    let transactions: usize = balances.lines().last().unwrap().trim().parse().unwrap();
    assert!(transactions > 0);
    assert!(printed("Refresh the access token").starts_with("refreshed: "));
    let refusal = printed("See a refusal: no token");
    assert!(refusal.starts_with("401") && refusal.contains("UK.OBIE.Header.Missing"), "{refusal}");
    let ended = printed("Delete the consent");
    let codes: Vec<&str> = ended.lines().collect();
    assert_eq!(codes[0], "204", "{ended}");
    assert_ne!(codes[1], "200", "{ended}");
    assert!(printed("Run the conformance suite against a demo bank").contains(" passed, 0 failed"));
    assert!(printed("Fetch the platform's key set").contains("\"kid\":\""));
    let verified = printed("Verify a webhook event with openssl");
    assert!(verified.starts_with("Verified OK"), "{verified}");
    assert!(
        verified.contains("\"event\":\"consent.revoked\"") && verified.contains("\"ConsentId\":\"guide-test\""),
        "{verified}"
    );
    // The key and request made with openssl are a valid pair.
    assert!(work.path().join("my-app.key").exists() && work.path().join("my-app.csr").exists());
    drop(shell);
    for bank in banks {
        bank.shutdown().await;
    }
    platform.shutdown().await;
}
