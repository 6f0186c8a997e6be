//! The operating documents' pages: `/docs` (public: the index, each document with its contents, search), the
//! participant's accession agreements (`/org/agreements`: members read, administrators accept) and the console's
//! view of who has and has not accepted (`/console/agreements`, console readers).

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;

use super::agreements::{self, AcceptOutcome, Kind, ParticipantRow, Standing, Version};
use super::{Document, Hit};
use crate::participants::OrgStatus;
use crate::store::StoreError;
use crate::web::AppState;
use crate::web::pages::{PageError, Texts, render, render_status};
use crate::web::session::{ConsoleReader, CsrfForm, Member, ParticipantAdmin, ParticipantMember};

/// Longest query read; more is cut.
const MAX_QUERY_CHARS: usize = 200;
/// Most results shown.
const MAX_HITS: usize = 50;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/docs", get(index))
        .route("/docs/search", get(search))
        .route("/docs/{slug}", get(document))
        .route("/org/agreements", get(org_page).post(accept))
        .route("/console/agreements", get(console_page))
}

#[derive(Template)]
#[template(path = "docs_index.html")]
struct IndexPage {
    t: Texts,
    documents: Vec<&'static Document>,
}

/// Public: the documents, with their versions, and the search form.
async fn index(t: Texts) -> Response {
    render(&IndexPage { t, documents: super::documents(t.lang).collect() })
}

#[derive(Template)]
#[template(path = "docs_document.html")]
struct DocumentPage {
    t: Texts,
    doc: &'static Document,
    /// The SHA-256 of this version (all three languages): an agreement's acceptance names it.
    hash: String,
}

/// Public: one document in the visitor's language, with its table of contents; printable.
async fn document(t: Texts, Path(slug): Path<String>) -> Result<Response, PageError> {
    let doc = super::document(&slug, t.lang).ok_or_else(PageError::not_found)?;
    let hash = super::version_hash(doc.slug).unwrap_or_default();
    Ok(render(&DocumentPage { t, doc, hash }))
}

#[derive(Deserialize)]
struct SearchQuery {
    #[serde(default)]
    q: String,
}

#[derive(Template)]
#[template(path = "docs_search.html")]
struct SearchPage {
    t: Texts,
    query: String,
    hits: Vec<Hit>,
}

/// Public: the sections of every document (in the visitor's language) holding every word asked for.
async fn search(t: Texts, Query(query): Query<SearchQuery>) -> Response {
    let query: String = query.q.chars().take(MAX_QUERY_CHARS).collect();
    let hits = super::search(t.lang, &query, MAX_HITS);
    render(&SearchPage { t, query, hits })
}

#[derive(Template)]
#[template(path = "org_agreements.html")]
struct OrgPage<'a> {
    t: Texts,
    csrf: &'a str,
    is_admin: bool,
    agreements: Vec<Standing>,
    notice: Option<&'static str>,
    error: Option<&'static str>,
}

/// The roles whose agreements bind an organisation: those it is accredited in, else those of its latest application.
fn roles(c: &rusqlite::Connection, org: &crate::participants::Organisation) -> rusqlite::Result<Vec<Kind>> {
    if org.status != OrgStatus::Registered {
        return Ok(Kind::for_roles(org.is_provider, org.is_user));
    }
    let app = crate::participants::accreditation::latest_application(c, org.id)?;
    Ok(app.map(|a| Kind::for_roles(a.wants_provider, a.wants_user)).unwrap_or_default())
}

async fn org_response(
    state: &AppState,
    who: &Member,
    notice: Option<&'static str>,
    error: Option<&'static str>,
    status: StatusCode,
) -> Result<Response, PageError> {
    let org = who.org.clone();
    let agreements = state
        .db
        .read(move |c| -> Result<_, StoreError> {
            let roles = roles(c, &org)?;
            Ok(agreements::standing(c, org.id, &roles)?)
        })
        .await?;
    let is_admin = matches!(who.user.role, crate::identity::Role::ParticipantAdmin);
    Ok(render_status(
        status,
        &OrgPage { t: Texts::current(), csrf: who.csrf(), is_admin, agreements, notice, error },
    ))
}

/// Participant members: the accession agreements' current versions, what the organisation accepted, by when a new
/// version is to be accepted; the acceptance form for administrators.
async fn org_page(State(state): State<AppState>, ParticipantMember(who): ParticipantMember) -> Result<Response, PageError> {
    org_response(&state, &who, None, None, StatusCode::OK).await
}

#[derive(Deserialize)]
struct AcceptForm {
    version_id: i64,
    /// The tick box "I have read and accept".
    #[serde(default)]
    confirm: String,
}

/// Participant administrators: accept the current version of an agreement (stored and journalled).
async fn accept(
    State(state): State<AppState>,
    ParticipantAdmin(who): ParticipantAdmin,
    CsrfForm(form): CsrfForm<AcceptForm>,
) -> Result<Response, PageError> {
    if form.confirm != "yes" {
        return org_response(&state, &who, None, Some("agreements.error_confirm"), StatusCode::UNPROCESSABLE_ENTITY)
            .await;
    }
    let org = who.org.clone();
    let actor = who.audit_actor();
    let lang = who.lang();
    let now = state.clock.now();
    let outcome = state
        .db
        .write(move |tx| agreements::accept(tx, &org, &actor, form.version_id, lang, now).map_err(StoreError::from))
        .await?;
    match outcome {
        AcceptOutcome::Accepted | AcceptOutcome::AlreadyAccepted => {
            org_response(&state, &who, Some("agreements.notice_accepted"), None, StatusCode::OK).await
        }
        AcceptOutcome::NotCurrent => {
            org_response(&state, &who, None, Some("agreements.error_not_current"), StatusCode::CONFLICT).await
        }
        AcceptOutcome::NotAdministrator => Err(PageError::forbidden()),
    }
}

/// One agreement as the console shows it.
struct ConsoleAgreement {
    kind: Kind,
    current: Version,
    earlier: Vec<Version>,
    participants: Vec<ParticipantRow>,
    accepted: usize,
}

#[derive(Template)]
#[template(path = "console_agreements.html")]
struct ConsolePage<'a> {
    t: Texts,
    csrf: &'a str,
    agreements: Vec<ConsoleAgreement>,
    /// Now, RFC 3339: a deadline before it has passed.
    now: String,
}

/// Console readers (operator staff, the regulator): each agreement's versions, and for the current one which
/// participants have accepted it (who, when) and which have not.
async fn console_page(State(state): State<AppState>, ConsoleReader(who): ConsoleReader) -> Result<Response, PageError> {
    let agreements = state
        .db
        .read(move |c| -> Result<_, StoreError> {
            let mut out = Vec::new();
            for kind in Kind::ALL.iter().copied() {
                let mut versions = agreements::versions(c, kind)?;
                if versions.is_empty() {
                    continue;
                }
                let current = versions.remove(0);
                let participants = agreements::participants(c, &current)?;
                let accepted = participants.iter().filter(|p| p.accepted.is_some()).count();
                out.push(ConsoleAgreement { kind, current, earlier: versions, participants, accepted });
            }
            Ok(out)
        })
        .await?;
    let now = crate::clock::rfc3339(state.clock.now());
    Ok(render(&ConsolePage { t: Texts::current(), csrf: who.csrf(), agreements, now }))
}
