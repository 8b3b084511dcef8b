//! The secret store components.

pub mod env;
pub mod file;
