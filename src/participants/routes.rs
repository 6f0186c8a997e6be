//! Participant pages: the home page, self-registration of an organisation with its first administrator, and the
//! organisation's dashboard.

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;

use super::{NewOrganisation, Organisation, email_acceptable, phone_acceptable};
use crate::audit::{self, Event, Outcome};
use crate::identity::{self, Role};
use crate::kz::Bin;
use crate::store::StoreError;
use crate::web::AppState;
use crate::web::pages::{PageError, Texts, redisplay, render, render_status};
use crate::web::session::{CsrfForm, ParticipantMember, SignedIn, Visitor};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/register", get(register_page).post(register))
        .route("/org", get(dashboard))
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    t: Texts,
    signed_in_home: Option<&'static str>,
    /// The demo's sample application runs here (`kopir demo`).
    demo_app: bool,
}

/// Public: what kopir is, and the way in for each kind of visitor — customers to their consents, organisations to
/// sign in or register, developers to the standard and the guides, and, in the demo, the sample application.
async fn home(State(state): State<AppState>, visitor: Visitor, who: Option<SignedIn>) -> Response {
    let t = Texts::current();
    let signed_in_home = who.map(|w| identity::routes::home_of(w.user.role));
    visitor.respond(render(&HomePage { t, signed_in_home, demo_app: state.demo_app }))
}

/// The registration form, as typed (so a refused form comes back filled in, passwords excepted).
#[derive(Debug, Default, Deserialize)]
pub struct RegisterForm {
    #[serde(default)]
    bin: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    licence_number: String,
    #[serde(default)]
    contact_email: String,
    #[serde(default)]
    contact_phone: String,
    #[serde(default)]
    admin_username: String,
    #[serde(default)]
    admin_full_name: String,
    #[serde(default)]
    admin_email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    confirm: String,
}

#[derive(Template)]
#[template(path = "register.html")]
struct RegisterPage<'a> {
    t: Texts,
    csrf: &'a str,
    form: &'a RegisterForm,
    errors: Vec<(&'static str, &'static str)>,
}

#[derive(Template)]
#[template(path = "registered.html")]
struct RegisteredPage<'a> {
    t: Texts,
    name: &'a str,
    username: &'a str,
}

/// Public: the registration form.
async fn register_page(visitor: Visitor) -> Response {
    let t = Texts::current();
    let form = RegisterForm::default();
    visitor.respond(render(&RegisterPage { t, csrf: &visitor.session.csrf_token, form: &form, errors: vec![] }))
}

/// Field-by-field checks; each error is (field, text key).
fn validate(form: &RegisterForm, config: &crate::config::Config) -> Vec<(&'static str, &'static str)> {
    let mut errors = Vec::new();
    if Bin::parse(&form.bin).is_err() {
        errors.push(("bin", "register.error.bin"));
    }
    if form.name.trim().is_empty() || form.name.len() > 200 {
        errors.push(("name", "register.error.name"));
    } else if super::name_reserved(&form.name, config) {
        errors.push(("name", "register.error.name_reserved"));
    }
    if form.licence_number.trim().is_empty() || form.licence_number.len() > 64 {
        errors.push(("licence_number", "register.error.licence"));
    }
    if !email_acceptable(&form.contact_email) {
        errors.push(("contact_email", "register.error.email"));
    }
    if !phone_acceptable(&form.contact_phone) {
        errors.push(("contact_phone", "register.error.phone"));
    }
    if !identity::username_acceptable(form.admin_username.trim()) {
        errors.push(("admin_username", "register.error.username"));
    }
    if form.admin_full_name.trim().is_empty() || form.admin_full_name.len() > 200 {
        errors.push(("admin_full_name", "register.error.full_name"));
    }
    if !email_acceptable(&form.admin_email) {
        errors.push(("admin_email", "register.error.email"));
    }
    if form.password != form.confirm {
        errors.push(("confirm", "password.mismatch"));
    } else if !identity::password_acceptable(form.admin_username.trim(), &form.password) {
        errors.push(("password", "password.too_weak"));
    }
    errors
}

enum Registration {
    Done,
    Taken(&'static str, &'static str),
}

/// Public (with CSRF): registers an organisation and its first administrator, in one transaction.
async fn register(
    State(state): State<AppState>,
    visitor: Visitor,
    CsrfForm(mut form): CsrfForm<RegisterForm>,
) -> Result<Response, PageError> {
    let t = Texts::current();
    let refuse = |form: &RegisterForm, errors| {
        let blank = RegisterForm {
            password: String::new(),
            confirm: String::new(),
            bin: redisplay(&form.bin),
            name: redisplay(&form.name),
            licence_number: redisplay(&form.licence_number),
            contact_email: redisplay(&form.contact_email),
            contact_phone: redisplay(&form.contact_phone),
            admin_username: redisplay(&form.admin_username),
            admin_full_name: redisplay(&form.admin_full_name),
            admin_email: redisplay(&form.admin_email),
        };
        render_status(
            StatusCode::UNPROCESSABLE_ENTITY,
            &RegisterPage { t, csrf: &visitor.session.csrf_token, form: &blank, errors },
        )
    };
    let errors = validate(&form, &state.config);
    if !errors.is_empty() {
        return Ok(refuse(&form, errors));
    }
    // (Checked by `validate`.)
    let Ok(bin) = Bin::parse(&form.bin) else { return Ok(refuse(&form, vec![("bin", "register.error.bin")])) };
    let password = std::mem::take(&mut form.password);
    let hash = state.passwords.hash(password).await?;
    let now = state.clock.now();
    let org = NewOrganisation {
        bin,
        name: form.name.trim().to_string(),
        licence_number: form.licence_number.trim().to_string(),
        contact_email: form.contact_email.trim().to_string(),
        contact_phone: form.contact_phone.trim().to_string(),
    };
    let username = form.admin_username.trim().to_string();
    let full_name = form.admin_full_name.trim().to_string();
    let admin_email = form.admin_email.trim().to_string();
    let source = visitor.source.clone();
    let result = state
        .db
        .write(move |tx| -> Result<Registration, StoreError> {
            // No "BIN taken": registering claims no BIN (it becomes exclusive at accreditation), and the answer must
            // not tell who else has registered.
            if identity::user_by_username(tx, &username)?.is_some() {
                return Ok(Registration::Taken("admin_username", "register.error.username_taken"));
            }
            let org_id = super::insert(tx, &org, now)?;
            identity::create_member(
                tx,
                &username,
                &full_name,
                &admin_email,
                Role::ParticipantAdmin,
                Some(org_id),
                &hash,
                false,
                now,
            )?;
            audit::append(
                tx,
                &Event::new(format!("user:{username}"), "participants.organisation.registered", Outcome::Success)
                    .at(now)
                    .organisation(org.bin.as_str())
                    .object(format!("organisation:{}", org.bin))
                    .source(&source)
                    .detail(serde_json::json!({ "name": org.name, "administrator": username })),
            )?;
            Ok(Registration::Done)
        })
        .await?;
    Ok(match result {
        Registration::Done => {
            render(&RegisteredPage { t, name: form.name.trim(), username: form.admin_username.trim() })
        }
        Registration::Taken(field, key) => refuse(&form, vec![(field, key)]),
    })
}

#[derive(Template)]
#[template(path = "org_dashboard.html")]
struct DashboardPage<'a> {
    t: Texts,
    user: &'a identity::User,
    org: &'a Organisation,
    /// Accession agreements of its roles whose current version waits for its acceptance.
    pending_agreements: Vec<crate::docs::agreements::Standing>,
}

/// Participant members: their organisation at a glance and what to do next.
async fn dashboard(
    State(state): State<AppState>,
    ParticipantMember(who): ParticipantMember,
) -> Result<Response, PageError> {
    let (org_id, kinds) = (who.org.id, who.org.agreement_kinds());
    let standing =
        state.db.read(move |c| crate::docs::agreements::standing(c, org_id, &kinds).map_err(StoreError::from)).await?;
    let pending_agreements = standing.into_iter().filter(|s| s.required && s.accepted.is_none()).collect();
    Ok(render(&DashboardPage { t: Texts::current(), user: &who.user, org: &who.org, pending_agreements }))
}
