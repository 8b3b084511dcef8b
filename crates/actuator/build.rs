//! Records when this crate was compiled, for `/actuator/info`'s `compiled`
//! field (Layotto's build time). `SOURCE_DATE_EPOCH` makes it reproducible.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    let at = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .map_or_else(SystemTime::now, |secs| UNIX_EPOCH + Duration::from_secs(secs));
    println!("cargo:rustc-env=LAYOTTO_COMPILED={}", humantime::format_rfc3339_seconds(at));
}
