//! The technological sandbox: the conformance suite a provider's API passes before publication and then on a
//! schedule (`suite`, its cases in `cases`, what a case found in `evidence`).
//!
//! Direction: `catalog::check` (the publication step) → `suite` → `cases`, `evidence`. The suite and its cases know
//! nothing of the catalogue; `health`, `schedule` and `pages` sit above both and use the catalogue's entities.

pub mod cases;
pub mod evidence;
pub mod health;
pub mod pages;
pub mod schedule;
pub mod suite;
