//! The consents that concern a participant, in its personal account (`/org/consents`): for an API user, those
//! given to its applications; for a provider, those naming its bank. No customer identity is shown: the portal
//! needs none.
//!
//! Who may call: any member of the organisation (administrators, developers, analysts).

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;

use super::{Concerning, Consent};
use crate::participants::Organisation;
use crate::store::StoreError;
use crate::web::AppState;
use crate::web::pages::{PageError, Texts, render};
use crate::web::session::ParticipantMember;

pub fn router() -> Router<AppState> {
    Router::new().route("/org/consents", get(list))
}

#[derive(Template)]
#[template(path = "org_consents.html")]
struct ConsentsPage<'a> {
    t: Texts,
    org: &'a Organisation,
    given: Vec<Consent>,
    given_more: bool,
    received: Vec<Consent>,
    received_more: bool,
    page: u32,
    now: String,
}

#[derive(Deserialize)]
struct PageQuery {
    page: Option<u32>,
}

async fn list(
    State(state): State<AppState>,
    ParticipantMember(who): ParticipantMember,
    Query(query): Query<PageQuery>,
) -> Result<Response, PageError> {
    let org = &who.org;
    let (org_id, is_provider) = (org.id, org.is_provider);
    let page = query.page.unwrap_or(1).max(1);
    let found = state
        .db
        .read(move |c| -> Result<_, StoreError> {
            // Every organisation's own applications: an organisation not yet accredited has sandbox ones.
            let given = super::list(c, Concerning::UserOrganisation(org_id), page)?;
            let received =
                if is_provider { super::list(c, Concerning::Provider(org_id), page)? } else { (vec![], false) };
            Ok((given, received))
        })
        .await?;
    let ((given, given_more), (received, received_more)) = found;
    Ok(render(&ConsentsPage {
        t: Texts::current(),
        org,
        given,
        given_more,
        received,
        received_more,
        page,
        now: state.clock.now_rfc3339(),
    }))
}
