//! Our TOML config: any text either loads or is a `ConfigError`, and every
//! component type of a loaded config is checked without a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use layotto_runtime::{Config, Registries};

fuzz_target!(|text: &str| {
    if let Ok(config) = Config::from_text("fuzz.toml", text) {
        let registries = Registries::builtin();
        for api in &registries.apis {
            for (name, component) in config.section(api.section()) {
                let _ = api.check_type(name, &component.kind);
            }
        }
    }
});
