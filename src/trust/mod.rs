//! Trust infrastructure: verifying the customer before any consent — one-time codes by SMS (stored hashed, 5
//! minutes, 5 attempts, throttled resends), biometric verification (liveness + photo match), and the adapters that
//! reach the vendors.

pub mod biometric;
pub mod command;
pub mod otp;
pub mod sms;
