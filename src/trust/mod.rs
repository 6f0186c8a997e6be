//! Trust infrastructure: verifying the customer before any consent — one-time codes by SMS (stored hashed, 5
//! minutes, 5 attempts, throttled resends) and the adapters that reach the SMS vendor.

pub mod otp;
pub mod sms;
