//! An [`Email`] as a MIME message: text and HTML bodies as alternatives,
//! attachments around them, Bcc in the envelope only, and a Message-ID
//! that is also the request id the API answers.

use layotto_core::{Error, Result, clip};
use lettre::Message;
use lettre::message::header::ContentType;
use lettre::message::{Attachment as Part, Mailbox, MultiPart, SinglePart};

use crate::Email;

/// A message ready to send, its envelope inside.
#[derive(Debug)]
pub struct Composed {
    pub id: String,
    pub message: Message,
}

fn mailbox(component: &str, field: &str, address: &str) -> Result<Mailbox> {
    address.trim().parse::<Mailbox>().map_err(|e| {
        Error::invalid_argument(format!(
            "{component}: {field} '{}' is not an email address: {e}",
            clip(address)
        ))
    })
}

/// Composes `email`; `default_from` is the component's `from`. Bad input is
/// INVALID_ARGUMENT naming the field.
pub fn compose(component: &str, email: Email, default_from: Option<&str>) -> Result<Composed> {
    let from =
        Some(email.from.as_str()).filter(|f| !f.trim().is_empty()).or(default_from).ok_or_else(|| {
            Error::invalid_argument(format!(
                "{component}: from is required (the component has no default 'from')"
            ))
        })?;
    if email.to.is_empty() && email.cc.is_empty() && email.bcc.is_empty() {
        return Err(Error::invalid_argument(format!(
            "{component}: the message has no recipient (to, cc, bcc)"
        )));
    }
    let id = uuid::Uuid::new_v4().simple().to_string();
    let mut builder = Message::builder()
        .from(mailbox(component, "from", from)?)
        .subject(email.subject)
        .message_id(Some(format!("<{id}@layotto-rs>")));
    for address in &email.to {
        builder = builder.to(mailbox(component, "to", address)?);
    }
    for address in &email.cc {
        builder = builder.cc(mailbox(component, "cc", address)?);
    }
    for address in &email.bcc {
        builder = builder.bcc(mailbox(component, "bcc", address)?);
    }
    let body = match (email.text.is_empty(), email.html.is_empty()) {
        (_, true) => MultiPart::mixed().singlepart(SinglePart::plain(email.text)),
        (true, false) => MultiPart::mixed().singlepart(SinglePart::html(email.html)),
        (false, false) => {
            MultiPart::mixed().multipart(MultiPart::alternative_plain_html(email.text, email.html))
        }
    };
    let mut body = body;
    for attachment in email.attachments {
        if attachment.filename.trim().is_empty() {
            return Err(Error::invalid_argument(format!("{component}: an attachment has no filename")));
        }
        let content_type = if attachment.content_type.is_empty() {
            "application/octet-stream"
        } else {
            attachment.content_type.as_str()
        };
        let content_type = ContentType::parse(content_type).map_err(|e| {
            Error::invalid_argument(format!(
                "{component}: attachment '{}': content_type '{}' is not a MIME type: {e}",
                clip(&attachment.filename),
                clip(content_type)
            ))
        })?;
        body = body.singlepart(Part::new(attachment.filename).body(attachment.data, content_type));
    }
    let message = builder
        .multipart(body)
        .map_err(|e| Error::invalid_argument(format!("{component}: cannot compose the message: {e}")))?;
    Ok(Composed { id, message })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn bcc_is_in_the_envelope_only() {
        let email = Email {
            to: vec!["a@example.com".into()],
            bcc: vec!["hidden@example.com".into()],
            subject: "Grüße".into(),
            text: "hi".into(),
            ..Default::default()
        };
        let composed = compose("c", email, Some("me@example.com")).unwrap();
        let to: Vec<String> = composed.message.envelope().to().iter().map(ToString::to_string).collect();
        assert!(to.contains(&"hidden@example.com".to_owned()));
        let text = String::from_utf8(composed.message.formatted()).unwrap();
        assert!(!text.contains("hidden@example.com"), "{text}");
    }

    #[test]
    fn bad_input_names_the_field() {
        let base = Email { to: vec!["a@example.com".into()], ..Default::default() };
        let err = compose("c", base.clone(), None).unwrap_err().to_string();
        assert!(err.contains("from"), "{err}");
        let err = compose("c", Email { to: vec!["not an address".into()], ..base.clone() }, Some("me@x.org"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("to 'not an address'"), "{err}");
        let err = compose("c", Email { to: vec![], ..base }, Some("me@x.org")).unwrap_err().to_string();
        assert!(err.contains("no recipient"), "{err}");
    }
}
