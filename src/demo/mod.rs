//! `kopir demo`: the platform on embedded defaults with reference banks, a sample API-user application and test
//! customers.

pub mod app;
