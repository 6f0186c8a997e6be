//! kopir's integration tests, one binary: every module starts real servers on 127.0.0.1:0 with their own temporary
//! data directories, so tests share nothing but the process and run in parallel. Nothing here may change
//! process-wide state (environment, current directory, global subscribers or crypto providers): a child process
//! gets its configuration through its own command line and environment.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

mod accreditation;
mod apps;
mod availability;
mod backup;
mod billing;
mod billing_disputes;
mod catalog;
mod cli;
mod conformance;
mod connections;
mod consent;
mod console_pages;

mod consent_narrowing;
mod console_registers;
mod docs;
mod docs_guide;
mod e2e_apps;
mod e2e_browser;
mod e2e_consent;
mod e2e_demo;
mod egress;
mod fuzz_standard;
mod gateway;
mod gateway_standard;
mod journey_binding;
mod jwks;
mod limits;
mod monitoring;
mod mtls;
mod oauth;
mod portal;
mod refbank;
mod registration;
mod reports;
mod reports_dashboard;
mod reports_monthly;
mod reports_participant;
mod requests;
mod robustness;
mod sandbox_apps;
mod sandbox_schedule;
mod shutdown;
mod snapshot;
mod threat_model;
mod trust_adapters;
mod webhooks;
