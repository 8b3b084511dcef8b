//! Templates from a directory (`templateDir`): `<id>.txt` is a text body,
//! `<id>.html` an HTML body (its parameters HTML-escaped), either or both.
//! A parameter the template uses but the request lacks is an error, never
//! an empty string in a sent message.

use std::collections::BTreeMap;
use std::path::Path;

use layotto_core::{Error, Result, clip};
use minijinja::{Environment, UndefinedBehavior};

pub struct Templates {
    env: Environment<'static>,
    /// Template id → (has text, has html).
    ids: BTreeMap<String, (bool, bool)>,
}

/// A rendered template.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rendered {
    pub text: String,
    pub html: String,
}

impl Templates {
    /// Loads every `.txt` and `.html` file of `dir`, failing on a template
    /// that does not parse, naming the file.
    pub fn load(component: &str, dir: &Path) -> Result<Self> {
        let entries = std::fs::read_dir(dir).map_err(|e| {
            Error::config(format!("{component}: cannot read templateDir {}: {e}", dir.display()))
        })?;
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        let mut ids: BTreeMap<String, (bool, bool)> = BTreeMap::new();
        for entry in entries.flatten() {
            let path = entry.path();
            let (Some(stem), Some(ext)) = (path.file_stem().and_then(|s| s.to_str()), path.extension())
            else {
                continue;
            };
            let html = match ext.to_str() {
                Some("html") => true,
                Some("txt") => false,
                _ => continue,
            };
            let source = std::fs::read_to_string(&path).map_err(|e| {
                Error::config(format!("{component}: cannot read template {}: {e}", path.display()))
            })?;
            let name = format!("{stem}.{}", if html { "html" } else { "txt" });
            env.add_template_owned(name, source).map_err(|e| {
                Error::config(format!("{component}: template {} does not parse: {e}", path.display()))
            })?;
            let kinds = ids.entry(stem.to_owned()).or_default();
            if html { kinds.1 = true } else { kinds.0 = true }
        }
        Ok(Self { env, ids })
    }

    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.ids.keys().map(String::as_str)
    }

    /// Renders template `id` with `params`; INVALID_ARGUMENT for an unknown
    /// template or a missing parameter, naming it.
    pub fn render(&self, component: &str, id: &str, params: &BTreeMap<String, String>) -> Result<Rendered> {
        let Some(&(text, html)) = self.ids.get(id) else {
            let known: Vec<&str> = self.ids().collect();
            return Err(Error::invalid_argument(format!(
                "{component}: template '{}' not found; templates: {}",
                clip(id),
                known.join(", ")
            )));
        };
        let render = |name: String| -> Result<String> {
            let template = self.env.get_template(&name).map_err(|e| Error::internal(e.to_string()))?;
            template.render(params).map_err(|e| {
                Error::invalid_argument(format!(
                    "{component}: template '{id}': {}",
                    e.detail().unwrap_or(&e.to_string())
                ))
            })
        };
        Ok(Rendered {
            text: if text { render(format!("{id}.txt"))? } else { String::new() },
            html: if html { render(format!("{id}.html"))? } else { String::new() },
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn renders_escapes_html_and_refuses_missing_parameters() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("welcome.html"), "<p>Hello {{ name }}</p>").unwrap();
        std::fs::write(dir.path().join("welcome.txt"), "Hello {{ name }}").unwrap();
        std::fs::write(dir.path().join("notes.md"), "ignored").unwrap();
        let templates = Templates::load("c", dir.path()).unwrap();
        let params = BTreeMap::from([("name".to_owned(), "<b>Eva</b> & co".to_owned())]);
        let rendered = templates.render("c", "welcome", &params).unwrap();
        assert_eq!(rendered.text, "Hello <b>Eva</b> & co");
        assert_eq!(rendered.html, "<p>Hello &lt;b&gt;Eva&lt;&#x2f;b&gt; &amp; co</p>");
        let err = templates.render("c", "welcome", &BTreeMap::new()).unwrap_err();
        assert!(err.to_string().contains("welcome") && err.to_string().contains("name"), "{err}");
        let err = templates.render("c", "nope", &params).unwrap_err();
        assert!(err.to_string().contains("'nope'") && err.to_string().contains("welcome"), "{err}");
        std::fs::write(dir.path().join("broken.txt"), "{{ unclosed").unwrap();
        let err = Templates::load("c", dir.path()).err().unwrap();
        assert!(err.to_string().contains("broken.txt"), "{err}");
    }
}
