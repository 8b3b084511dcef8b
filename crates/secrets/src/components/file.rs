//! `local.file`: secrets from a JSON file, as Dapr's
//! `secretstores.local.file` (which Layotto uses). Metadata: `secretsFile`
//! (the path, required), `nestedSeparator` (default `:`), `multiValued`
//! (default false).
//!
//! Single-valued (the default), nested objects and arrays are flattened:
//! `{"db": {"user": "u", "password": "p"}}` holds the secrets `db:user` and
//! `db:password`, each with one value under its own name. Multi-valued, each
//! top-level key is a secret whose values are its flattened members:
//! secret `db` is `{user: u, password: p}`. Numbers and booleans become
//! their JSON text. The file is read once, when the component starts; a
//! relative path is relative to the config file's directory, as in Layotto.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use layotto_core::{ComponentContext, Error, Result};
use serde::Deserialize;
use serde_json::Value;

use crate::{Secret, SecretStore, not_found};

#[derive(Deserialize)]
struct FileSettings {
    #[serde(rename = "secretsFile")]
    secrets_file: Option<PathBuf>,
    #[serde(rename = "nestedSeparator", default)]
    nested_separator: Option<String>,
    #[serde(rename = "multiValued", default)]
    multi_valued: bool,
}

pub struct FileSecrets {
    name: String,
    secrets: BTreeMap<String, Secret>,
}

impl FileSecrets {
    pub const TYPE: &'static str = "local.file";

    pub async fn build(ctx: ComponentContext) -> Result<Arc<dyn SecretStore>> {
        let settings: FileSettings = ctx.settings()?;
        let path = settings.secrets_file.ok_or_else(|| {
            Error::config(format!("{}: metadata 'secretsFile' is required", ctx.describe()))
        })?;
        // Relative to the config file, as Layotto resolves it.
        let path = ctx.path(&path);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            Error::config(format!("{}: cannot read secretsFile {}: {e}", ctx.describe(), path.display()))
        })?;
        let separator = settings.nested_separator.filter(|s| !s.is_empty()).unwrap_or_else(|| ":".to_owned());
        let secrets = Self::parse(&text, &separator, settings.multi_valued)
            .map_err(|e| Error::config(format!("{}: secretsFile {}: {e}", ctx.describe(), path.display())))?;
        Ok(Arc::new(Self { name: ctx.name, secrets }))
    }

    /// The secrets a file's text holds.
    pub fn parse(
        text: &str,
        separator: &str,
        multi_valued: bool,
    ) -> std::result::Result<BTreeMap<String, Secret>, String> {
        let root: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        let Value::Object(top) = root else {
            return Err("must hold a JSON object".to_owned());
        };
        let mut secrets = BTreeMap::new();
        if multi_valued {
            for (name, value) in top {
                let mut values = Secret::new();
                match value {
                    Value::Object(_) | Value::Array(_) => flatten("", &value, separator, &mut values),
                    scalar => {
                        values.insert(name.clone(), text_of(&scalar));
                    }
                }
                secrets.insert(name, values);
            }
        } else {
            let mut flat = Secret::new();
            flatten("", &Value::Object(top), separator, &mut flat);
            for (name, value) in flat {
                secrets.insert(name.clone(), Secret::from([(name, value)]));
            }
        }
        Ok(secrets)
    }
}

fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn flatten(prefix: &str, value: &Value, separator: &str, out: &mut Secret) {
    let join =
        |key: &str| if prefix.is_empty() { key.to_owned() } else { format!("{prefix}{separator}{key}") };
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                flatten(&join(key), value, separator, out);
            }
        }
        Value::Array(items) => {
            for (i, value) in items.iter().enumerate() {
                flatten(&join(&i.to_string()), value, separator, out);
            }
        }
        scalar => {
            out.insert(prefix.to_owned(), text_of(scalar));
        }
    }
}

#[async_trait]
impl SecretStore for FileSecrets {
    async fn get(&self, key: &str) -> Result<Secret> {
        self.secrets.get(key).cloned().ok_or_else(|| not_found(&self.name, key))
    }

    async fn bulk_get(&self) -> Result<BTreeMap<String, Secret>> {
        Ok(self.secrets.clone())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const FILE: &str = r#"{"redis": {"password": "p1", "port": 6379}, "plain": "x", "list": ["a", true]}"#;

    #[test]
    fn single_valued_flattens_with_the_separator() {
        let secrets = FileSecrets::parse(FILE, ":", false).unwrap();
        assert_eq!(secrets["redis:password"], Secret::from([("redis:password".into(), "p1".into())]));
        assert_eq!(secrets["redis:port"]["redis:port"], "6379");
        assert_eq!(secrets["plain"]["plain"], "x");
        assert_eq!(secrets["list:1"]["list:1"], "true");
        let dotted = FileSecrets::parse(FILE, ".", false).unwrap();
        assert!(dotted.contains_key("redis.password"));
    }

    #[test]
    fn multi_valued_groups_by_top_level_key() {
        let secrets = FileSecrets::parse(FILE, ":", true).unwrap();
        assert_eq!(
            secrets["redis"],
            Secret::from([("password".into(), "p1".into()), ("port".into(), "6379".into())])
        );
        assert_eq!(secrets["plain"], Secret::from([("plain".into(), "x".into())]));
    }

    #[test]
    fn bad_files_say_why() {
        assert!(FileSecrets::parse("[1]", ":", false).unwrap_err().contains("object"));
        assert!(FileSecrets::parse("{", ":", false).unwrap_err().contains("not JSON"));
    }
}
