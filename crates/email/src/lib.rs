//! The Email API: messages sent through a component named in each request
//! (Layotto's `EmailService`), composed by the caller or rendered from a
//! stored template.
//!
//! [`EmailSender`] is the one trait every component implements. Components
//! live in [`components`]: `outbox` (each message written as an `.eml` file,
//! always built) and `smtp` (through lettre, behind the `smtp` feature).
//! Both compose messages with [`compose`] and render [`Templates`] the same
//! way, so what the outbox writes is what SMTP would send.

pub mod components;
mod compose;
mod templates;

use async_trait::async_trait;
pub use compose::{Composed, compose};
pub use layotto_core::{Error, ErrorKind, Result};
use layotto_core::{Health, Registry};
pub use templates::Templates;

/// A message as the caller describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Email {
    /// The sender; the component's `from` when empty.
    pub from: String,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    /// Blind copies: in the envelope, never in the headers.
    pub bcc: Vec<String>,
    pub subject: String,
    pub text: String,
    pub html: String,
    pub attachments: Vec<Attachment>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attachment {
    pub filename: String,
    /// `application/octet-stream` when empty.
    pub content_type: String,
    pub data: Vec<u8>,
}

/// An email component.
#[async_trait]
pub trait EmailSender: Send + Sync {
    /// Sends `email`; the id of the request (also its Message-ID).
    async fn send(&self, email: Email) -> Result<String>;

    /// The component's templates (`templateDir`), if it has any.
    fn templates(&self) -> Option<&Templates> {
        None
    }

    async fn health(&self) -> Health {
        Health::up()
    }
}

/// The email component types this build can construct (API name `email`).
pub fn registry() -> Registry<dyn EmailSender> {
    let mut registry: Registry<dyn EmailSender> = Registry::new("email");
    registry.register(components::outbox::Outbox::TYPE, components::outbox::Outbox::build);
    #[cfg(feature = "smtp")]
    registry.register(components::smtp::Smtp::TYPE, components::smtp::Smtp::build);
    registry
}
