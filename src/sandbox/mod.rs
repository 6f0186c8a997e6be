//! The technological sandbox: the conformance suite a provider's API passes before publication and then on a
//! schedule (`suite`, its cases in `cases`).

pub mod cases;
pub mod health;
pub mod pages;
pub mod schedule;
pub mod suite;
