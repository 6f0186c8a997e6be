//! The technological sandbox: the conformance suite a provider's API passes before publication and then on a
//! schedule (`suite`, its cases in `cases`, what a case found in `evidence`).
//!
//! Direction: the sandbox depends on the catalogue, never the other way. The catalogue owns the publication step
//! (`catalog::PublicationCheck`) and its report; `check` implements it with the `suite` (→ `cases`, `evidence`);
//! `health`, `schedule` and `pages` use the catalogue's entities.

pub mod cases;
pub mod check;
pub mod evidence;
pub mod health;
pub mod pages;
pub mod schedule;
pub mod suite;

/// Every route of the sandbox (the health pages), mounted by the web server.
pub fn router() -> axum::Router<crate::web::AppState> {
    pages::router()
}
