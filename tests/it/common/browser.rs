//! A browser-like client for the portal: a cookie jar, the Origin header browsers send, CSRF tokens read from the
//! page, forms posted like a browser posts them, and TOTP codes computed like an authenticator app.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use super::Platform;

pub struct Browser {
    pub client: reqwest::Client,
    pub base: String,
    jar: Arc<reqwest::cookie::Jar>,
    /// The TOTP secret of the signed-in user, once enrolled (base32 text as the enrolment page shows it).
    pub totp_secret: Option<Vec<u8>>,
    /// The last TOTP code this browser sent (a replay of it must be refused whatever step the clock is in now).
    pub last_code: Option<String>,
    pub username: String,
    /// The platform's clock: codes are computed for its time, and the next step is reached by moving it on.
    clock: kopir::clock::Clock,
}

/// A page as the browser received it.
pub struct Page {
    pub status: u16,
    pub url: String,
    pub body: String,
    pub headers: reqwest::header::HeaderMap,
}

impl Page {
    /// The CSRF token of the (first) form on the page.
    pub fn csrf(&self) -> String {
        extract_attr(&self.body, "name=\"csrf\" value=\"").unwrap_or_else(|| panic!("no CSRF token on {}", self.url))
    }

    pub fn assert_contains(&self, text: &str) -> &Page {
        assert!(self.body.contains(text), "page {} ({}) lacks {text:?}:\n{}", self.url, self.status, self.body);
        self
    }
}

pub fn extract_attr(body: &str, prefix: &str) -> Option<String> {
    let start = body.find(prefix)? + prefix.len();
    let end = body[start..].find('"')? + start;
    Some(html_unescape(&body[start..end]))
}

fn html_unescape(s: &str) -> String {
    s.replace("&amp;", "&").replace("&quot;", "\"").replace("&#x27;", "'").replace("&lt;", "<").replace("&gt;", ">")
}

impl Browser {
    pub fn new(platform: &Platform) -> Browser {
        Browser::with_redirects(platform, reqwest::redirect::Policy::limited(5))
    }

    /// A customer's browser: follows redirects within the platform and stops at the first one that leaves it
    /// (back to the API user's application), so the test can read where it was sent.
    pub fn customer(platform: &Platform) -> Browser {
        Browser::with_redirects(
            platform,
            reqwest::redirect::Policy::custom(|attempt| {
                if attempt.url().host_str() != Some("localhost") {
                    attempt.stop()
                } else if attempt.previous().len() > 5 {
                    attempt.error("too many redirects")
                } else {
                    attempt.follow()
                }
            }),
        )
    }

    /// A customer's browser for an application whose redirect URI is on the platform itself (the demo's sample
    /// application): it stops there too, so the code is left for the test.
    pub fn customer_stopping_at(platform: &Platform, path: &'static str) -> Browser {
        Browser::with_redirects(
            platform,
            reqwest::redirect::Policy::custom(move |attempt| {
                if attempt.url().host_str() != Some("localhost") || attempt.url().path() == path {
                    attempt.stop()
                } else if attempt.previous().len() > 5 {
                    attempt.error("too many redirects")
                } else {
                    attempt.follow()
                }
            }),
        )
    }

    fn with_redirects(platform: &Platform, policy: reqwest::redirect::Policy) -> Browser {
        let jar = Arc::new(reqwest::cookie::Jar::default());
        let origin = format!("https://localhost:{}", platform.addr.port());
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("origin", origin.parse().unwrap());
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(super::tls_config(&platform.root_pem(), None, None))
            .resolve("localhost", platform.addr)
            .cookie_provider(jar.clone())
            .default_headers(headers)
            .redirect(policy)
            .build()
            .unwrap();
        Browser {
            client,
            base: origin,
            jar,
            totp_secret: None,
            last_code: None,
            username: String::new(),
            clock: platform.clock().clone(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// The `Cookie` header this browser sends to the platform.
    pub fn cookie_header(&self) -> String {
        use reqwest::cookie::CookieStore;
        let url: reqwest::Url = self.base.parse().unwrap();
        self.jar.cookies(&url).map(|v| v.to_str().unwrap().to_string()).unwrap_or_default()
    }

    async fn page(response: reqwest::Response) -> Page {
        let status = response.status().as_u16();
        let url = response.url().to_string();
        let headers = response.headers().clone();
        let body = response.text().await.unwrap();
        Page { status, url, body, headers }
    }

    pub async fn get(&self, path: &str) -> Page {
        Self::page(self.client.get(self.url(path)).send().await.unwrap()).await
    }

    /// Posts a form with the CSRF token of `form_page` (as a browser would, from the page it shows).
    pub async fn post(&self, path: &str, csrf: &str, fields: &[(&str, &str)]) -> Page {
        let mut all: Vec<(&str, &str)> = vec![("csrf", csrf)];
        all.extend_from_slice(fields);
        Self::page(self.client.post(self.url(path)).form(&all).send().await.unwrap()).await
    }

    /// Opens `page_path`, reads its CSRF token, and posts `fields` to `action`.
    pub async fn submit(&self, page_path: &str, action: &str, fields: &[(&str, &str)]) -> Page {
        let page = self.get(page_path).await;
        assert_eq!(page.status, 200, "{page_path} gave {}: {}", page.status, page.body);
        self.post(action, &page.csrf(), fields).await
    }

    pub fn current_code(&self) -> String {
        let secret = self.totp_secret.as_ref().expect("enrolled");
        let now = self.clock.now().unix_timestamp() as u64;
        kopir::identity::totp::code_at(secret, &self.username, now).unwrap()
    }

    /// The code of the next TOTP step (a code is accepted once per step), reached by moving the platform's clock on
    /// by one step rather than waiting for it.
    pub async fn next_code(&self) -> String {
        self.clock.advance(time::Duration::seconds(30));
        self.current_code()
    }

    /// Signs in with a password; enrols TOTP if the platform asks for it (remembering the secret) or answers the
    /// second-factor page. Returns the page after the last step.
    pub async fn sign_in(&mut self, username: &str, password: &str) -> Page {
        self.username = username.to_string();
        let page = self.submit("/login", "/login", &[("username", username), ("password", password)]).await;
        if page.url.ends_with("/account/enrol") {
            return self.enrol(&page).await;
        }
        if page.url.ends_with("/login/code") {
            let code = self.current_code();
            let answered = self.post("/login/code", &page.csrf(), &[("code", &code)]).await;
            self.last_code = Some(code);
            if answered.status == 401 {
                // The current step's code was used already (e.g. at enrolment): the next step's code works.
                let code = self.next_code().await;
                let page = self.get("/login/code").await;
                let answered = self.post("/login/code", &page.csrf(), &[("code", &code)]).await;
                self.last_code = Some(code);
                return answered;
            }
            return answered;
        }
        page
    }

    /// Reads the secret from the enrolment page and confirms it with a code.
    pub async fn enrol(&mut self, page: &Page) -> Page {
        let marker = "id=\"totp-secret\">";
        let text = page.body.find(marker).and_then(|i| {
            let start = i + marker.len();
            let end = page.body[start..].find('<')? + start;
            Some(page.body[start..end].to_string())
        });
        let text = text.unwrap_or_else(|| panic!("no secret on enrolment page:\n{}", page.body));
        let secret = kopir::identity::totp::parse_secret_text(&text).expect("base32 secret");
        self.totp_secret = Some(secret);
        let code = self.current_code();
        let answered = self.post("/account/enrol", &page.csrf(), &[("code", &code)]).await;
        self.last_code = Some(code);
        answered
    }

    pub async fn sign_out(&self) {
        let page = self.get("/account/password").await;
        if let Some(csrf) = extract_attr(&page.body, "name=\"csrf\" value=\"") {
            self.post("/logout", &csrf, &[]).await;
        }
    }
}

/// The registration form's fields for an organisation and its first administrator.
pub fn registration_form<'a>(
    bin: &'a str,
    name: &'a str,
    admin: &'a str,
    password: &'a str,
) -> [(&'a str, &'a str); 10] {
    [
        ("bin", bin),
        ("name", name),
        ("licence_number", "1.2.34/56"),
        ("contact_email", "ops@bank.kz"),
        ("contact_phone", "+7 727 250 00 00"),
        ("admin_username", admin),
        ("admin_full_name", "Aigerim Sadykova"),
        ("admin_email", "aigerim@bank.kz"),
        ("password", password),
        ("confirm", password),
    ]
}

/// The password [`register_organisation`] gives the administrator `admin`.
pub fn registration_password(admin: &str) -> String {
    format!("{admin}-Passw0rd-long")
}

/// Registers an organisation through the public form and returns the administrator's credentials.
pub async fn register_organisation(platform: &Platform, bin: &str, name: &str, admin: &str) -> (String, String) {
    let browser = Browser::new(platform);
    let password = registration_password(admin);
    let page = browser.submit("/register", "/register", &registration_form(bin, name, admin, &password)).await;
    assert_eq!(page.status, 200, "registration failed:\n{}", page.body);
    page.assert_contains(admin);
    (admin.to_string(), password)
}

/// A valid BIN made from 11 digits.
pub fn bin(first_11: &str) -> String {
    kopir::kz::with_control_digit(first_11).expect("a control digit exists for these digits")
}

/// Creates an operator user directly (as `kopir user add` will) and returns the password.
pub async fn operator_user(platform: &Platform, username: &str, role: kopir::identity::Role) -> String {
    let (db, _) = kopir::store::Db::open(&platform.config.db_path(), Default::default(), false).unwrap();
    let password = format!("{username}-Operator-Passw0rd");
    let hash = kopir::identity::hash_password(&password).unwrap();
    let name = username.to_string();
    db.write(move |tx| {
        kopir::identity::create_user(tx, &name, role, &hash, false, kopir::clock::now())
            .map_err(kopir::store::StoreError::from)
    })
    .await
    .unwrap();
    password
}

impl Browser {
    /// Posts a multipart form (file uploads) as a browser would.
    pub async fn post_multipart(&self, path: &str, form: reqwest::multipart::Form) -> Page {
        Self::page(self.client.post(self.url(path)).multipart(form).send().await.unwrap()).await
    }
}

/// Adds a person to the organisation with `bin` directly in the database (as its administrator's staff page will)
/// and returns the password.
pub async fn participant_user(platform: &Platform, bin: &str, username: &str, role: kopir::identity::Role) -> String {
    let (db, _) = kopir::store::Db::open(&platform.config.db_path(), Default::default(), false).unwrap();
    let password = format!("{username}-Member-Passw0rd");
    let hash = kopir::identity::hash_password(&password).unwrap();
    let (name, bin) = (username.to_string(), bin.to_string());
    db.write(move |tx| {
        let org = kopir::participants::organisation_by_bin(tx, &kopir::kz::Bin::parse(&bin).unwrap())?
            .expect("organisation exists");
        kopir::identity::create_member(
            tx,
            &name,
            "Test Member",
            "member@bank.kz",
            role,
            Some(org.id),
            &hash,
            false,
            kopir::clock::now(),
        )
        .map_err(kopir::store::StoreError::from)
    })
    .await
    .unwrap();
    password
}
