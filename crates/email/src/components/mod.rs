//! The email components.

pub mod outbox;
#[cfg(feature = "smtp")]
pub mod smtp;
