//! The operator console's view of the certificate authority: every certificate, its owner and its state.

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;

use super::certs::{self, OwnedCert};
use crate::store::StoreError;
use crate::web::AppState;
use crate::web::pages::{PageError, Texts, render};
use crate::web::session::ConsoleReader;

pub fn router() -> Router<AppState> {
    Router::new().route("/console/certificates", get(certificates))
}

#[derive(Debug, Default, Deserialize)]
struct Search {
    #[serde(default)]
    q: String,
}

/// One row as shown: the state in words, decided at the time of the request.
struct Row {
    cert: OwnedCert,
    state: &'static str,
}

impl Row {
    fn state_key(&self) -> &'static str {
        match self.state {
            "revoked" => "apps.cert_revoked",
            "expired" => "apps.cert_expired",
            "retired" => "apps.cert_retired",
            "retiring" => "apps.cert_retiring",
            _ => "apps.cert_active",
        }
    }
}

#[derive(Template)]
#[template(path = "console_certificates.html")]
struct CertificatesPage<'a> {
    t: Texts,
    query: &'a str,
    rows: Vec<Row>,
}

fn state_of(cert: &OwnedCert, now: &str) -> &'static str {
    if cert.record.revoked_at.is_some() {
        "revoked"
    } else if cert.record.not_after.as_str() <= now {
        "expired"
    } else if cert.retire_at.as_deref().is_some_and(|r| r <= now) {
        "retired"
    } else if cert.retire_at.is_some() {
        "retiring"
    } else {
        "active"
    }
}

/// Console readers (operator staff and the regulator): every certificate the CA made, searchable.
async fn certificates(
    State(state): State<AppState>,
    ConsoleReader(_): ConsoleReader,
    Query(search): Query<Search>,
) -> Result<Response, PageError> {
    let query = search.q.trim().chars().take(100).collect::<String>();
    let q = query.clone();
    let list = state.db.read(move |c| certs::list_with_owners(c, &q).map_err(StoreError::from)).await?;
    let now = state.clock.now_rfc3339();
    let rows = list.into_iter().map(|cert| Row { state: state_of(&cert, &now), cert }).collect();
    Ok(render(&CertificatesPage { t: Texts::current(), query: &query, rows }))
}
