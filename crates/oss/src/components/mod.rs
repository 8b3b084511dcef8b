//! The object store components.

pub mod local;
#[cfg(feature = "s3")]
pub mod s3;
