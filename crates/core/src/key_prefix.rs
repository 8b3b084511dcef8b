use serde::Deserialize;

use crate::{ComponentContext, Error, Metadata, Result};

/// Separator between a key prefix and the user key, as Layotto stores keys.
pub const KEY_SEPARATOR: &str = "||";

/// Layotto's `metadata.keyPrefix` strategy (reference §3.4). The stored key
/// format is shared with Go Layotto so both can use one backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyPrefix {
    None,
    AppId,
    Name,
    Custom(String),
}

/// The one metadata key of a key-prefix strategy.
#[derive(Deserialize)]
struct KeyPrefixSetting {
    #[serde(rename = "keyPrefix", default)]
    key_prefix: Option<String>,
}

impl KeyPrefix {
    /// Reads `keyPrefix` from the component's settings, falling back to `default`.
    pub fn from_context(ctx: &ComponentContext, default: KeyPrefix) -> Result<Self> {
        let setting: KeyPrefixSetting = ctx.settings()?;
        Self::parse(&ctx.describe(), setting.key_prefix.as_deref(), default)
    }

    /// Reads `keyPrefix` from component metadata, falling back to `default`.
    pub fn from_metadata(component: &str, metadata: &Metadata, default: KeyPrefix) -> Result<Self> {
        Self::parse(component, metadata.get("keyPrefix").map(String::as_str), default)
    }

    fn parse(component: &str, raw: Option<&str>, default: KeyPrefix) -> Result<Self> {
        let Some(raw) = raw else {
            return Ok(default);
        };
        let value = raw.trim().to_lowercase();
        Ok(match value.as_str() {
            "" => default,
            "none" => Self::None,
            "appid" => Self::AppId,
            "name" => Self::Name,
            _ if value.contains(KEY_SEPARATOR) => {
                return Err(Error::config(format!(
                    "{component}: metadata 'keyPrefix' must not contain '||', got '{raw}'"
                )));
            }
            _ => Self::Custom(value),
        })
    }

    /// The prefix without separator, or `None` when keys are stored bare.
    pub fn resolve(&self, app_id: &str, component_name: &str) -> Option<String> {
        match self {
            Self::None => None,
            Self::AppId if app_id.is_empty() => None,
            Self::AppId => Some(app_id.to_owned()),
            Self::Name => Some(component_name.to_owned()),
            Self::Custom(s) => Some(s.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(v: &str) -> Metadata {
        Metadata::from([("keyPrefix".to_owned(), v.to_owned())])
    }

    #[test]
    fn strategies() {
        let none = KeyPrefix::from_metadata("s", &Metadata::new(), KeyPrefix::None).unwrap();
        assert_eq!(none.resolve("app", "store"), None);
        let app = KeyPrefix::from_metadata("s", &meta("AppId"), KeyPrefix::None).unwrap();
        assert_eq!(app.resolve("app", "store").as_deref(), Some("app"));
        assert_eq!(app.resolve("", "store"), None);
        let name = KeyPrefix::from_metadata("s", &meta("name"), KeyPrefix::None).unwrap();
        assert_eq!(name.resolve("app", "store").as_deref(), Some("store"));
        let custom = KeyPrefix::from_metadata("s", &meta("Team"), KeyPrefix::None).unwrap();
        assert_eq!(custom.resolve("app", "store").as_deref(), Some("team"));
        assert!(KeyPrefix::from_metadata("s", &meta("a||b"), KeyPrefix::None).is_err());
    }
}
