//! The email components against a real SMTP server on loopback (aiosmtpd,
//! `tests/smtp_sink.py`, run by the Python in `LAYOTTO_TEST_PYTHON`, which
//! the test command sets up), and the outbox on disk.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use layotto_core::{ComponentContext, ErrorKind, Metadata};
use layotto_email::components::{outbox::Outbox, smtp::Smtp};
use layotto_email::{Attachment, Email, EmailSender};
use mailparse::MailHeaderMap;

/// The aiosmtpd capture server, killed when dropped.
struct Sink {
    port: u16,
    dir: tempfile::TempDir,
    child: Child,
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn python() -> String {
    std::env::var("LAYOTTO_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

impl Sink {
    fn start(args: &[&str]) -> Self {
        let port = layotto_testkit::free_port();
        let dir = tempfile::tempdir().unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/smtp_sink.py");
        let mut child = Command::new(python())
            .arg(script)
            .args(["--port", &port.to_string(), "--dir"])
            .arg(dir.path())
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python with aiosmtpd (the test command installs it; set LAYOTTO_TEST_PYTHON)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "READY", "the SMTP sink did not start (is aiosmtpd installed?)");
        Self { port, dir, child }
    }

    /// The message number `n` (from 1) and its envelope.
    fn message(&self, n: usize) -> (Vec<u8>, serde_json::Value) {
        let eml = std::fs::read(self.dir.path().join(format!("{n}.eml"))).unwrap();
        let envelope = std::fs::read_to_string(self.dir.path().join(format!("{n}.json"))).unwrap();
        (eml, serde_json::from_str(&envelope).unwrap())
    }
}

async fn smtp(metadata: &[(&str, &str)]) -> Arc<dyn EmailSender> {
    let ctx = ComponentContext {
        api: "email".into(),
        name: "mail".into(),
        kind: "smtp".into(),
        metadata: metadata.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        ..Default::default()
    };
    Smtp::build(ctx).await.unwrap()
}

fn full_email() -> Email {
    Email {
        from: "Sender <sender@example.com>".into(),
        to: vec!["to@example.com".into()],
        cc: vec!["cc@example.com".into()],
        bcc: vec!["hidden@example.com".into()],
        subject: "Grüße aus Köln ✉".into(),
        text: "plain body".into(),
        html: "<p>html body</p>".into(),
        attachments: vec![Attachment {
            filename: "report.csv".into(),
            content_type: "text/csv".into(),
            data: b"a,b\n1,2\n".to_vec(),
        }],
    }
}

/// Headers, both bodies, the attachment, and Bcc only in the envelope.
fn check_full_message(eml: &[u8], envelope: &serde_json::Value) {
    let parsed = mailparse::parse_mail(eml).unwrap();
    let headers = parsed.get_headers();
    assert_eq!(headers.get_first_value("Subject").unwrap(), "Grüße aus Köln ✉");
    assert!(headers.get_first_value("To").unwrap().contains("to@example.com"));
    assert!(headers.get_first_value("Cc").unwrap().contains("cc@example.com"));
    assert!(headers.get_first_value("Bcc").is_none(), "Bcc must not be a header");
    assert!(!String::from_utf8_lossy(eml).contains("hidden@example.com"));
    let rcpt: Vec<&str> =
        envelope["rcpt_tos"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert!(
        rcpt.contains(&"hidden@example.com")
            && rcpt.contains(&"to@example.com")
            && rcpt.contains(&"cc@example.com")
    );
    let mut texts = Vec::new();
    let mut attachment = None;
    fn walk<'a>(
        part: &'a mailparse::ParsedMail<'a>,
        texts: &mut Vec<(String, String)>,
        attachment: &mut Option<(String, Vec<u8>)>,
    ) {
        if part.subparts.is_empty() {
            let disposition = part.get_content_disposition();
            if let Some(name) = disposition.params.get("filename") {
                *attachment = Some((name.clone(), part.get_body_raw().unwrap()));
            } else {
                texts.push((part.ctype.mimetype.clone(), part.get_body().unwrap().trim().to_owned()));
            }
        }
        for sub in &part.subparts {
            walk(sub, texts, attachment);
        }
    }
    walk(&parsed, &mut texts, &mut attachment);
    assert!(texts.contains(&("text/plain".into(), "plain body".into())), "{texts:?}");
    assert!(texts.contains(&("text/html".into(), "<p>html body</p>".into())), "{texts:?}");
    assert_eq!(attachment, Some(("report.csv".to_owned(), b"a,b\n1,2\n".to_vec())));
}

#[tokio::test]
async fn sends_every_part_with_bcc_in_the_envelope_only() {
    let sink = Sink::start(&[]);
    let mail = smtp(&[("host", "127.0.0.1"), ("port", &sink.port.to_string()), ("tls", "none")]).await;
    let id = mail.send(full_email()).await.unwrap();
    let (eml, envelope) = sink.message(1);
    check_full_message(&eml, &envelope);
    assert!(String::from_utf8_lossy(&eml).contains(&id), "the request id is the Message-ID");
    assert_eq!(envelope["mail_from"], "sender@example.com");
}

/// A self-signed certificate trusted through `caFile`, STARTTLS and a login.
#[tokio::test]
async fn starttls_with_a_self_signed_certificate_and_authentication() {
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap().self_signed(&key).unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let sink = Sink::start(&[
        "--starttls",
        cert_path.to_str().unwrap(),
        key_path.to_str().unwrap(),
        "--auth",
        "mailer:right-password",
    ]);
    let port = sink.port.to_string();
    let base = [
        ("host", "127.0.0.1"),
        ("port", port.as_str()),
        ("tls", "starttls"),
        ("caFile", cert_path.to_str().unwrap()),
    ];
    let mail = smtp(
        &[&base[..], &[("username", "mailer"), ("password", "right-password"), ("from", "app@example.com")]]
            .concat(),
    )
    .await;
    let email = Email {
        to: vec!["to@example.com".into()],
        subject: "over TLS".into(),
        text: "hi".into(),
        ..Default::default()
    };
    mail.send(email.clone()).await.unwrap();
    let (_, envelope) = sink.message(1);
    assert_eq!(envelope["tls"], true);
    assert_eq!(envelope["authenticated"], true);
    assert_eq!(envelope["mail_from"], "app@example.com", "the component's default sender");

    let wrong = smtp(
        &[&base[..], &[("username", "mailer"), ("password", "wrong"), ("from", "app@example.com")]].concat(),
    )
    .await;
    let err = wrong.send(email.clone()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthenticated, "{err}");
    assert!(err.to_string().contains("535"), "{err}");
    // Without trusting the certificate, the connection is refused, not sent in the clear.
    let untrusted = smtp(&[
        ("host", "127.0.0.1"),
        ("port", port.as_str()),
        ("tls", "starttls"),
        ("from", "app@example.com"),
    ])
    .await;
    let err = untrusted.send(email).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
}

#[tokio::test]
async fn a_refused_recipient_and_a_server_that_is_down_say_why() {
    let sink = Sink::start(&["--reject", "nobody@example.com"]);
    let mail = smtp(&[("host", "127.0.0.1"), ("port", &sink.port.to_string()), ("tls", "none")]).await;
    let email = Email {
        from: "a@example.com".into(),
        to: vec!["nobody@example.com".into()],
        text: "x".into(),
        ..Default::default()
    };
    let err = mail.send(email.clone()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    assert!(err.to_string().contains("550") && err.to_string().contains("nobody@example.com"), "{err}");
    assert!(!sink.dir.path().join("1.eml").exists(), "nothing was sent");

    let down = smtp(&[("host", "127.0.0.1"), ("port", "1"), ("tls", "none"), ("timeoutSeconds", "3")]).await;
    let err = down.send(email).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.to_string().contains("127.0.0.1:1"), "{err}");
}

#[tokio::test]
async fn the_outbox_writes_parseable_messages_and_their_envelopes() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = ComponentContext {
        api: "email".into(),
        name: "demo".into(),
        kind: "outbox".into(),
        metadata: Metadata::from([("directory".to_owned(), dir.path().display().to_string())]),
        ..Default::default()
    };
    let outbox = Outbox::build(ctx).await.unwrap();
    let id = outbox.send(full_email()).await.unwrap();
    let eml: PathBuf = dir.path().join(format!("{id}.eml"));
    let envelope: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join(format!("{id}.envelope.json"))).unwrap(),
    )
    .unwrap();
    let envelope = serde_json::json!({"rcpt_tos": envelope["to"]});
    check_full_message(&std::fs::read(eml).unwrap(), &envelope);
}
