//! kopir — a national Open API & Open Banking platform in one binary. See README.md for the architecture.

pub mod apps;
pub mod audit;
pub mod backup;
pub mod bench;
pub mod bootstrap;
pub mod catalog;
pub mod cli;
pub mod clock;
pub mod config;
pub mod consent;
pub mod demo;
pub mod digest;
pub mod gateway;
pub mod identity;
pub mod kz;
pub mod logging;
pub mod notify;
pub mod oauth;
pub mod participants;
pub mod pki;
pub mod refbank;
pub mod snapshot;
pub mod standard;
pub mod store;
pub mod trust;
pub mod web;
