//! The organisation's public profile (`/org/profile`): description, website, contacts and logo. Members see it;
//! administrators change it. The same page holds the organisation's webhook URL (administrators set it) and its
//! latest webhook deliveries (every member sees them), see `crate::notify`. The logo is PNG or JPEG (recognised by its first bytes, not by what the browser
//! claims), at most 256 KiB, and is served publicly at `/organisations/{id}/logo`.

use askama::Template;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::{Organisation, Profile, email_acceptable, phone_acceptable};
use crate::audit::{self, Event, Outcome};
use crate::digest::sha256_hex;
use crate::notify::{self, Delivery};
use crate::store::StoreError;
use crate::web::AppState;
use crate::web::pages::{PageError, Texts, render_status};
use crate::web::session::{CsrfForm, Member, ParticipantAdmin, ParticipantMember};

/// The largest logo accepted.
pub const LOGO_MAX_BYTES: usize = 256 * 1024;
/// The body limit of the upload route: the logo plus room for the form's other fields and multipart framing.
const LOGO_BODY_LIMIT: usize = LOGO_MAX_BYTES + 16 * 1024;
const DESCRIPTION_MAX: usize = 2000;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/org/profile", get(show).post(update))
        .route("/org/profile/logo", post(upload_logo).layer(DefaultBodyLimit::max(LOGO_BODY_LIMIT)))
        .route("/org/profile/webhook", post(set_webhook))
        .route("/organisations/{id}/logo", get(logo))
}

/// The image type of `bytes` by its signature, if it is one the platform serves.
pub fn image_type(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        Some("image/jpeg")
    } else {
        None
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct ProfileForm {
    #[serde(default)]
    description: String,
    #[serde(default)]
    website: String,
    #[serde(default)]
    contact_email: String,
    #[serde(default)]
    contact_phone: String,
}

#[derive(Template)]
#[template(path = "profile.html")]
struct ProfilePage<'a> {
    t: Texts,
    csrf: &'a str,
    org: &'a Organisation,
    can_edit: bool,
    form: ProfileForm,
    errors: Vec<&'static str>,
    saved: bool,
    max_kib: usize,
    /// The webhook URL as stored ("" when none).
    webhook_url: String,
    /// What the webhook form shows: the stored URL, or what was just refused.
    webhook_form: String,
    deliveries: Vec<Delivery>,
    jwks_url: String,
    event_types: &'static [&'static str],
}

#[derive(Debug, Default, Deserialize)]
pub struct WebhookForm {
    #[serde(default)]
    webhook_url: String,
}

async fn page(
    state: &AppState,
    who: &Member,
    form: Option<ProfileForm>,
    webhook_form: Option<String>,
    errors: Vec<&'static str>,
    saved: bool,
    status: StatusCode,
) -> Result<Response, PageError> {
    let org = &who.org;
    let org_id = org.id;
    let found = state
        .db
        .read(move |c| -> Result<_, StoreError> {
            let url = notify::webhook_url(c, org_id)?.unwrap_or_default();
            Ok((url, notify::recent(c, org_id, notify::RECENT_DELIVERIES)?))
        })
        .await?;
    let (webhook_url, deliveries) = found;
    let form = form.unwrap_or_else(|| ProfileForm {
        description: org.description.clone(),
        website: org.website.clone(),
        contact_email: org.contact_email.clone(),
        contact_phone: org.contact_phone.clone(),
    });
    let can_edit = who.user.role == crate::identity::Role::ParticipantAdmin;
    Ok(render_status(
        status,
        &ProfilePage {
            t: Texts::current(),
            csrf: who.csrf(),
            org,
            can_edit,
            form,
            errors,
            saved,
            max_kib: LOGO_MAX_BYTES / 1024,
            webhook_form: webhook_form.unwrap_or_else(|| webhook_url.clone()),
            webhook_url,
            deliveries,
            jwks_url: state.url("/.well-known/jwks.json"),
            event_types: notify::EVENT_TYPES,
        },
    ))
}

#[derive(Debug, Deserialize)]
pub struct ShowQuery {
    #[serde(default)]
    saved: Option<String>,
}

/// Members: the profile as the registries show it; administrators also get the forms.
async fn show(
    State(state): State<AppState>,
    ParticipantMember(who): ParticipantMember,
    axum::extract::Query(query): axum::extract::Query<ShowQuery>,
) -> Result<Response, PageError> {
    page(&state, &who, None, None, vec![], query.saved.is_some(), StatusCode::OK).await
}

/// A website: empty, or an absolute https:// URL.
fn website_acceptable(url: &str) -> bool {
    url.is_empty() || (url.len() <= 200 && crate::egress::https_url_acceptable(url))
}

/// Administrators: saves description, website and contacts.
async fn update(
    State(state): State<AppState>,
    ParticipantAdmin(who): ParticipantAdmin,
    CsrfForm(form): CsrfForm<ProfileForm>,
) -> Result<Response, PageError> {
    let org = who.org.clone();
    let description = form.description.trim().to_string();
    let website = form.website.trim().to_string();
    let email = form.contact_email.trim().to_string();
    let phone = form.contact_phone.trim().to_string();
    let mut errors = Vec::new();
    if description.chars().count() > DESCRIPTION_MAX {
        errors.push("profile.error.description");
    }
    if !website_acceptable(&website) {
        errors.push("profile.error.website");
    }
    if !email_acceptable(&email) {
        errors.push("register.error.email");
    }
    if !phone_acceptable(&phone) {
        errors.push("register.error.phone");
    }
    if !errors.is_empty() {
        return page(&state, &who, Some(form), None, errors, false, StatusCode::UNPROCESSABLE_ENTITY).await;
    }
    let (actor, source, now) = (who.actor(), who.visitor.source.clone(), state.clock.now());
    state
        .db
        .write(move |tx| -> Result<(), StoreError> {
            let mut changed = Vec::new();
            for (field, old, new) in [
                ("description", &org.description, &description),
                ("website", &org.website, &website),
                ("contact_email", &org.contact_email, &email),
                ("contact_phone", &org.contact_phone, &phone),
            ] {
                if old != new {
                    changed.push(field);
                }
            }
            let profile =
                Profile { description: &description, website: &website, contact_email: &email, contact_phone: &phone };
            super::update_profile(tx, org.id, &profile, now)?;
            audit::append(
                tx,
                &Event::new(actor, "participants.profile.updated", Outcome::Success)
                    .at(now)
                    .organisation(org.bin.as_str())
                    .object(format!("organisation:{}", org.bin))
                    .source(&source)
                    .detail(serde_json::json!({ "changed": changed, "website": website })),
            )?;
            Ok(())
        })
        .await?;
    Ok(Redirect::to("/org/profile?saved=1").into_response())
}

/// Why an upload was refused.
enum Upload {
    TooLarge,
    Missing,
}

/// Reads the upload's fields: the CSRF token and the logo (refused as soon as it grows past the limit).
async fn read_upload(multipart: &mut Multipart) -> Result<(String, Vec<u8>), Upload> {
    let mut csrf = String::new();
    let mut logo: Option<Vec<u8>> = None;
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => return Err(Upload::TooLarge),
            Err(_) => return Err(Upload::Missing),
        };
        match field.name() {
            Some("csrf") => csrf = field.text().await.map_err(|_| Upload::Missing)?,
            Some("logo") => {
                let mut field = field;
                let mut bytes = Vec::new();
                loop {
                    match field.chunk().await {
                        Ok(Some(chunk)) => {
                            if bytes.len() + chunk.len() > LOGO_MAX_BYTES {
                                return Err(Upload::TooLarge);
                            }
                            bytes.extend_from_slice(&chunk);
                        }
                        Ok(None) => break,
                        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => return Err(Upload::TooLarge),
                        Err(_) => return Err(Upload::Missing),
                    }
                }
                logo = Some(bytes);
            }
            _ => {}
        }
    }
    match logo {
        Some(bytes) if !bytes.is_empty() => Ok((csrf, bytes)),
        _ => Err(Upload::Missing),
    }
}

/// Administrators: replaces the logo. PNG or JPEG by signature, at most 256 KiB; otherwise a refusal page (415 or
/// 413) and nothing stored.
async fn upload_logo(
    State(state): State<AppState>,
    ParticipantAdmin(who): ParticipantAdmin,
    mut multipart: Multipart,
) -> Result<Response, PageError> {
    let refuse = |status, key| page(&state, &who, None, None, vec![key], false, status);
    let (csrf, bytes) = match read_upload(&mut multipart).await {
        Ok(upload) => upload,
        Err(Upload::TooLarge) => return refuse(StatusCode::PAYLOAD_TOO_LARGE, "profile.error.logo_size").await,
        Err(Upload::Missing) => return refuse(StatusCode::UNPROCESSABLE_ENTITY, "profile.error.logo_missing").await,
    };
    // A multipart form: its token is one of the parts, so it is checked here rather than by `CsrfForm`.
    who.check_form(&csrf)?;
    let Some(content_type) = image_type(&bytes) else {
        return refuse(StatusCode::UNSUPPORTED_MEDIA_TYPE, "profile.error.logo_type").await;
    };
    let org = who.org.clone();
    let (actor, source, now) = (who.actor(), who.visitor.source.clone(), state.clock.now());
    state
        .db
        .write(move |tx| -> Result<(), StoreError> {
            super::set_logo(tx, org.id, &bytes, content_type, now)?;
            audit::append(
                tx,
                &Event::new(actor, "participants.profile.logo_updated", Outcome::Success)
                    .at(now)
                    .organisation(org.bin.as_str())
                    .object(format!("organisation:{}", org.bin))
                    .source(&source)
                    .detail(serde_json::json!({
                        "content_type": content_type,
                        "size": bytes.len(),
                        "sha256": sha256_hex(&bytes),
                    })),
            )?;
            Ok(())
        })
        .await?;
    Ok(Redirect::to("/org/profile?saved=1").into_response())
}

/// Administrators: sets the webhook URL (https only; empty switches webhooks off). Pending events become due at
/// once, so a fixed endpoint gets the backlog without waiting out the back-off.
async fn set_webhook(
    State(state): State<AppState>,
    ParticipantAdmin(who): ParticipantAdmin,
    CsrfForm(form): CsrfForm<WebhookForm>,
) -> Result<Response, PageError> {
    let url = form.webhook_url.trim().to_string();
    if !url.is_empty() && !notify::url_acceptable(&url) {
        let errors = vec!["webhooks.error.url"];
        return page(&state, &who, None, Some(url), errors, false, StatusCode::UNPROCESSABLE_ENTITY).await;
    }
    let org = who.org.clone();
    let (actor, source) = (who.actor(), who.visitor.source.clone());
    let now = state.clock.now();
    state
        .db
        .write(move |tx| -> Result<(), StoreError> {
            let previous = notify::webhook_url(tx, org.id)?.unwrap_or_default();
            let rescheduled = notify::set_webhook_url(tx, org.id, &url, now)?;
            audit::append(
                tx,
                &Event::new(actor, "participants.profile.webhook_updated", Outcome::Success)
                    .at(now)
                    .organisation(org.bin.as_str())
                    .object(format!("organisation:{}", org.bin))
                    .source(&source)
                    .detail(serde_json::json!({
                        // Origins only: a URL's path may hold the receiver's secret, and the journal is in every
                        // snapshot.
                        "webhook_url": notify::origin(&url),
                        "previous": notify::origin(&previous),
                        "pending_rescheduled": rescheduled,
                    })),
            )?;
            Ok(())
        })
        .await?;
    Ok(Redirect::to("/org/profile?saved=1").into_response())
}

/// Public: an organisation's logo, with its own content type, no sniffing, a policy that runs nothing, and an ETag.
async fn logo(State(state): State<AppState>, Path(id): Path<i64>, headers: HeaderMap) -> Response {
    let found = state.db.read(move |c| super::logo(c, id).map_err(StoreError::from)).await;
    let (bytes, content_type) = match found {
        Ok(Some(found)) => found,
        Ok(None) => return crate::standard::error::ApiError::not_found().into_response(),
        Err(e) => return crate::standard::error::ApiError::internal(&e).into_response(),
    };
    let etag = format!("\"{}\"", &sha256_hex(&bytes)[..32]);
    let fresh = headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()).is_some_and(|v| v == etag);
    let mut response = if fresh { StatusCode::NOT_MODIFIED.into_response() } else { bytes.into_response() };
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("default-src 'none'; sandbox"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
    h.insert(header::CONTENT_DISPOSITION, HeaderValue::from_static("inline"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_are_recognised_by_their_first_bytes() {
        assert_eq!(image_type(b"\x89PNG\r\n\x1a\n...."), Some("image/png"));
        assert_eq!(image_type(&[0xff, 0xd8, 0xff, 0xe0]), Some("image/jpeg"));
        assert_eq!(image_type(b"GIF89a"), None);
        assert_eq!(image_type(b"<svg xmlns="), None);
        assert!(website_acceptable("https://bank.kz"));
        assert!(website_acceptable(""));
        assert!(!website_acceptable("http://bank.kz"));
        assert!(!website_acceptable("javascript:alert(1)"));
    }
}
