//! The operating documents' pages: `/docs` (public: the index, each document with its contents, search) and the
//! console's view of who has and has not accepted the accession agreements (`/console/agreements`, console
//! readers). The participant's own page of its agreements is `participants::agreements`.

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;

use super::agreements::{self, Kind, ParticipantRow, Version};
use super::{Document, Hit};
use crate::store::StoreError;
use crate::web::AppState;
use crate::web::pages::{PageError, Texts, render};
use crate::web::session::{ConsoleReader, SignedIn};

/// Longest query read; more is cut.
const MAX_QUERY_CHARS: usize = 200;
/// Most results shown.
const MAX_HITS: usize = 50;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/docs", get(index))
        .route("/docs/search", get(search))
        .route("/docs/{slug}", get(document))
        .route("/console/agreements", get(console_page))
}

#[derive(Template)]
#[template(path = "docs_index.html")]
struct IndexPage {
    t: Texts,
    documents: Vec<&'static Document>,
}

/// Public: the documents, with their versions, and the search form.
/// Open to everyone; the signed-in keep their header and menu (`Option<SignedIn>`), as on the other public pages.
async fn index(t: Texts, _who: Option<SignedIn>) -> Response {
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
async fn document(t: Texts, _who: Option<SignedIn>, Path(slug): Path<String>) -> Result<Response, PageError> {
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
async fn search(t: Texts, _who: Option<SignedIn>, Query(query): Query<SearchQuery>) -> Response {
    let query: String = query.q.chars().take(MAX_QUERY_CHARS).collect();
    let hits = super::search(t.lang, &query, MAX_HITS);
    render(&SearchPage { t, query, hits })
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
struct ConsolePage {
    t: Texts,
    agreements: Vec<ConsoleAgreement>,
    /// Now, RFC 3339: a deadline before it has passed.
    now: String,
}

/// Console readers (operator staff, the regulator): each agreement's versions, and for the current one which
/// participants have accepted it (who, when) and which have not.
async fn console_page(
    State(state): State<AppState>,
    ConsoleReader(_who): ConsoleReader,
) -> Result<Response, PageError> {
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
    Ok(render(&ConsolePage { t: Texts::current(), agreements, now }))
}
