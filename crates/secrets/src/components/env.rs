//! `local.env`: each environment variable is a secret with one value under
//! its own name (Dapr's `secretstores.local.env`). With metadata `prefix`,
//! only variables starting with it are secrets, and their names are given
//! without it: with `prefix = "APP_"`, secret `DB` is variable `APP_DB`.
//! The runtime's own variables are never secrets: `APP_API_TOKEN`,
//! `LAYOTTO_*` (config overrides can hold passwords) and `DAPR_*`, as Dapr.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use layotto_core::{ComponentContext, Result};
use serde::Deserialize;

use crate::{Secret, SecretStore, not_found};

#[derive(Deserialize)]
struct EnvSettings {
    #[serde(default)]
    prefix: Option<String>,
}

pub struct EnvSecrets {
    name: String,
    prefix: String,
}

/// Variables an app must never read through the API.
fn forbidden(variable: &str) -> bool {
    let upper = variable.to_ascii_uppercase();
    upper == "APP_API_TOKEN" || upper.starts_with("LAYOTTO_") || upper.starts_with("DAPR_")
}

impl EnvSecrets {
    pub const TYPE: &'static str = "local.env";

    pub fn new(name: &str, prefix: &str) -> Self {
        Self { name: name.to_owned(), prefix: prefix.to_owned() }
    }

    pub async fn build(ctx: ComponentContext) -> Result<Arc<dyn SecretStore>> {
        let settings: EnvSettings = ctx.settings()?;
        Ok(Arc::new(Self::new(&ctx.name, settings.prefix.as_deref().unwrap_or(""))))
    }
}

#[async_trait]
impl SecretStore for EnvSecrets {
    async fn get(&self, key: &str) -> Result<Secret> {
        let variable = format!("{}{key}", self.prefix);
        let value = std::env::var_os(&variable)
            .filter(|_| !key.is_empty() && !forbidden(&variable))
            .ok_or_else(|| not_found(&self.name, key))?;
        Ok(Secret::from([(key.to_owned(), value.to_string_lossy().into_owned())]))
    }

    async fn bulk_get(&self) -> Result<BTreeMap<String, Secret>> {
        Ok(std::env::vars_os()
            .filter_map(|(variable, value)| {
                let variable = variable.to_str()?;
                if forbidden(variable) {
                    return None;
                }
                let name = variable.strip_prefix(&self.prefix)?.to_owned();
                let value = value.to_string_lossy().into_owned();
                (!name.is_empty()).then(|| (name.clone(), Secret::from([(name, value)])))
            })
            .collect())
    }
}
