//! Layotto's MOSN-wrapped JSON config: any text either loads or is a
//! `ConfigError`, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use layotto_runtime::Config;

fuzz_target!(|text: &str| {
    let _ = Config::from_text("fuzz.json", text);
});
