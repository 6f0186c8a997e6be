//! Headless Chromium driven over WebDriver (chromedriver from Debian's packages, installed by `.ci/run`), for the
//! end-to-end walks through the pages. Screenshots go to `<target>/tmp/screenshots/` as test artefacts.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};

pub struct Chrome {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
    pub base: String,
    pub shots: PathBuf,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Where screenshots of a walk are kept.
pub fn screenshot_dir(walk: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots").join(walk);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

impl Chrome {
    /// Starts chromedriver and a headless Chromium session pointed at `base` (https://localhost:PORT).
    pub async fn start(base: &str, walk: &str) -> Chrome {
        for tool in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
            assert!(
                std::path::Path::new(tool).exists(),
                "{tool} is missing: install Debian's chromium and chromium-driver (.ci/run does)"
            );
        }
        let port = free_port();
        let driver = Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let profile = tempfile::tempdir().unwrap();
        let mut caps = serde_json::Map::new();
        caps.insert("acceptInsecureCerts".into(), serde_json::json!(true));
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1280,1000",
                    format!("--user-data-dir={}", profile.path().display()),
                    "--lang=en-US"
                ]
            }),
        );
        let client = super::eventually("a Chromium session from chromedriver", Duration::from_secs(20), async || {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            ClientBuilder::new(connector).capabilities(caps.clone()).connect(&format!("http://127.0.0.1:{port}")).await
        })
        .await;
        Chrome { client, driver, _profile: profile, base: base.to_string(), shots: screenshot_dir(walk) }
    }

    pub async fn goto(&self, path: &str) {
        self.client.goto(&format!("{}{}", self.base, path)).await.unwrap();
    }

    pub async fn fill(&self, id: &str, value: &str) {
        let field = self.client.find(Locator::Id(id)).await.unwrap_or_else(|e| panic!("no field #{id}: {e}"));
        field.clear().await.unwrap();
        field.send_keys(value).await.unwrap();
    }

    pub async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("nothing matches {css}: {e}"))
            .click()
            .await
            .unwrap();
    }

    pub async fn text(&self, css: &str) -> String {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("nothing matches {css}: {e}"))
            .text()
            .await
            .unwrap()
    }

    /// The text of the first element matching `css`, or `None` while there is none (or a navigation replaced it
    /// between finding and reading: a stale element just means "look again").
    pub async fn try_text(&self, css: &str) -> Option<String> {
        self.client.find(Locator::Css(css)).await.ok()?.text().await.ok()
    }

    /// The page's text, read again if a navigation was replacing the page at that moment.
    pub async fn body(&self) -> String {
        super::eventually("a readable page body", Duration::from_secs(5), async || {
            self.try_text("body").await.ok_or("a navigation replacing the page")
        })
        .await
    }

    /// Waits (up to 10 s) until the browser is on `path`, e.g. after a form post and its redirect.
    pub async fn wait_path(&self, path: &str) {
        super::eventually(&format!("the browser to reach {path}"), Duration::from_secs(10), async || {
            let now = self.path().await;
            if now == path { Ok(()) } else { Err((now, self.try_text("body").await)) }
        })
        .await
    }

    /// Waits (up to 10 s) until the page shows `text`.
    pub async fn wait_text(&self, text: &str) {
        super::eventually(&format!("the page to show {text:?}"), Duration::from_secs(10), async || {
            let body = self.try_text("body").await.unwrap_or_default();
            if body.contains(text) { Ok(()) } else { Err(body) }
        })
        .await
    }

    pub async fn path(&self) -> String {
        self.client.current_url().await.unwrap().path().to_string()
    }

    /// Saves a PNG screenshot named `name` and checks it is a real image.
    pub async fn shot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        assert!(png.starts_with(b"\x89PNG") && png.len() > 2000, "screenshot {name} is empty");
        std::fs::write(self.shots.join(format!("{name}.png")), png).unwrap();
    }

    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Signs in through the pages; enrols the second factor when asked. Returns the TOTP secret and the step used.
pub async fn sign_in(
    chrome: &Chrome,
    clock: &kopir::clock::Clock,
    username: &str,
    password: &str,
    secret: Option<&[u8]>,
    last_step: u64,
) -> (Vec<u8>, u64) {
    chrome.goto("/login").await;
    chrome.fill("username", username).await;
    chrome.fill("password", password).await;
    chrome.click("form[action='/login'] button[type=submit]").await;
    let (secret, form) = match secret {
        None => {
            chrome.wait_path("/account/enrol").await;
            let text = chrome.text("#totp-secret").await;
            (kopir::identity::totp::parse_secret_text(&text).unwrap(), "/account/enrol")
        }
        Some(secret) => {
            chrome.wait_path("/login/code").await;
            (secret.to_vec(), "/login/code")
        }
    };
    // A code is accepted once per 30-second step: move the platform's clock to a step later than the last one used.
    let mut now = clock.now().unix_timestamp() as u64;
    if now / 30 <= last_step {
        clock.advance(time::Duration::seconds(30));
        now = clock.now().unix_timestamp() as u64;
    }
    chrome.fill("code", &kopir::identity::totp::code_at(&secret, username, now).unwrap()).await;
    chrome.click(&format!("form[action='{form}'] button[type=submit]")).await;
    (secret, now / 30)
}
