//! `outbox`: every message written as `<request id>.eml` (RFC 5322, as it
//! would be sent) in a directory, with its envelope beside it in
//! `<request id>.envelope.json` (so blind copies can be seen too). The API
//! works with no mail server, and a developer can open what would have
//! been sent. Metadata: `directory` (default `layotto-outbox` in the system's
//! temporary directory), `from` (the default sender), `templateDir`.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use layotto_core::{ComponentContext, Error, Result};
use serde::Deserialize;

use crate::{Email, EmailSender, Templates, compose};

#[derive(Deserialize)]
struct OutboxSettings {
    #[serde(default)]
    directory: Option<PathBuf>,
    #[serde(default)]
    from: Option<String>,
    #[serde(rename = "templateDir", default)]
    template_dir: Option<PathBuf>,
}

pub struct Outbox {
    component: String,
    directory: PathBuf,
    from: Option<String>,
    templates: Option<Templates>,
}

impl Outbox {
    pub const TYPE: &'static str = "outbox";

    pub async fn build(ctx: ComponentContext) -> Result<Arc<dyn EmailSender>> {
        let settings: OutboxSettings = ctx.settings()?;
        let component = format!("email '{}' (outbox)", ctx.name);
        let directory = settings
            .directory
            .map(|d| ctx.path(&d))
            .unwrap_or_else(|| std::env::temp_dir().join("layotto-outbox"));
        std::fs::create_dir_all(&directory).map_err(|e| {
            Error::config(format!("{component}: cannot create directory {}: {e}", directory.display()))
        })?;
        let templates =
            settings.template_dir.map(|dir| Templates::load(&component, &ctx.path(&dir))).transpose()?;
        tracing::info!(component = %component, directory = %directory.display(), "messages are written here, not sent");
        Ok(Arc::new(Self { component, directory, from: settings.from, templates }))
    }
}

#[async_trait]
impl EmailSender for Outbox {
    async fn send(&self, email: Email) -> Result<String> {
        let composed = compose(&self.component, email, self.from.as_deref())?;
        let envelope = composed.message.envelope();
        let envelope = serde_json::json!({
            "from": envelope.from().map(ToString::to_string),
            "to": envelope.to().iter().map(ToString::to_string).collect::<Vec<_>>(),
        });
        let write = |name: String, bytes: Vec<u8>| {
            let path = self.directory.join(name);
            std::fs::write(&path, bytes).map_err(|e| {
                Error::unavailable(format!("{}: cannot write {}: {e}", self.component, path.display()))
            })
        };
        // The envelope first: a reader that sees the .eml finds both.
        write(format!("{}.envelope.json", composed.id), envelope.to_string().into_bytes())?;
        write(format!("{}.eml", composed.id), composed.message.formatted())?;
        Ok(composed.id)
    }

    fn templates(&self) -> Option<&Templates> {
        self.templates.as_ref()
    }
}
