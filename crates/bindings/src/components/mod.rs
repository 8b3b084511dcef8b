//! The binding components: output (`http`, `redis`) and input (`cron`).

pub mod cron;
#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "redis")]
pub mod redis;
