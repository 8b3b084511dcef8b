//! `smtp`: sends through an SMTP server with lettre, over a pool of
//! connections. Metadata: `host`, `port` (default 25; 465 means implicit
//! TLS), `tls` = `none` | `starttls` | `tls` (default: STARTTLS when the
//! server offers it; implicit TLS on port 465), `username`, `password` (a
//! `secret_ref` works), `timeoutSeconds` (default 30), `from` (the default
//! sender), `poolSize` (default 4), `caFile` (a PEM CA to trust, e.g. for a
//! self-signed server), `insecureSkipVerify`, `templateDir`.
//!
//! What the server answers decides the error: a refused login is
//! UNAUTHENTICATED, another permanent refusal (a recipient it will not
//! take) INVALID_ARGUMENT, a transient one or a server that cannot be
//! reached UNAVAILABLE; each message holds the SMTP code and text.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use layotto_core::{ComponentContext, Error, ErrorKind, Result, settings};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::{Error as SmtpError, PoolConfig};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use serde::Deserialize;

use crate::{Email, EmailSender, Templates, compose};

#[derive(Deserialize)]
struct SmtpSettings {
    #[serde(default)]
    host: Option<String>,
    #[serde(default)]
    port: Option<u16>,
    #[serde(default)]
    tls: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(rename = "timeoutSeconds", default, deserialize_with = "settings::seconds")]
    timeout: Option<Duration>,
    #[serde(default)]
    from: Option<String>,
    #[serde(rename = "poolSize", default)]
    pool_size: Option<u32>,
    #[serde(rename = "caFile", default)]
    ca_file: Option<PathBuf>,
    #[serde(rename = "insecureSkipVerify", default)]
    insecure_skip_verify: bool,
    #[serde(rename = "templateDir", default)]
    template_dir: Option<PathBuf>,
}

pub struct Smtp {
    component: String,
    server: String,
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Option<String>,
    templates: Option<Templates>,
}

impl Smtp {
    pub const TYPE: &'static str = "smtp";

    pub async fn build(ctx: ComponentContext) -> Result<Arc<dyn EmailSender>> {
        let s: SmtpSettings = ctx.settings()?;
        let component = format!("email '{}' (smtp)", ctx.name);
        let config = |what: String| Error::config(format!("{component}: {what}"));
        let host = s
            .host
            .filter(|h| !h.trim().is_empty())
            .ok_or_else(|| config("metadata 'host' is required".into()))?;
        let port = s.port.unwrap_or(25);
        let tls_parameters = || -> Result<TlsParameters> {
            let mut builder = TlsParameters::builder(host.clone());
            if let Some(ca) = &s.ca_file {
                let path = ctx.path(ca);
                let pem = std::fs::read(&path)
                    .map_err(|e| config(format!("cannot read caFile {}: {e}", path.display())))?;
                let cert = Certificate::from_pem(&pem)
                    .map_err(|e| config(format!("caFile {}: {e}", path.display())))?;
                builder = builder.add_root_certificate(cert);
            }
            builder
                .dangerous_accept_invalid_certs(s.insecure_skip_verify)
                .build_rustls()
                .map_err(|e| config(format!("TLS: {e}")))
        };
        let tls = match s.tls.as_deref().map(str::trim).map(str::to_ascii_lowercase).as_deref() {
            Some("none") => Tls::None,
            Some("starttls") => Tls::Required(tls_parameters()?),
            Some("tls") => Tls::Wrapper(tls_parameters()?),
            Some("") | None if port == 465 => Tls::Wrapper(tls_parameters()?),
            Some("") | None => Tls::Opportunistic(tls_parameters()?),
            Some(other) => {
                return Err(config(format!("metadata 'tls' must be none, starttls or tls, got '{other}'")));
            }
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.clone())
            .port(port)
            .tls(tls)
            .timeout(Some(s.timeout.unwrap_or(Duration::from_secs(30))))
            .pool_config(PoolConfig::new().max_size(s.pool_size.unwrap_or(4).max(1)));
        if let Some(user) = s.username.filter(|u| !u.is_empty()) {
            builder = builder.credentials(Credentials::new(user, s.password.unwrap_or_default()));
        }
        let templates = s.template_dir.map(|dir| Templates::load(&component, &ctx.path(&dir))).transpose()?;
        Ok(Arc::new(Self {
            component,
            server: format!("{host}:{port}"),
            transport: builder.build(),
            from: s.from,
            templates,
        }))
    }

    fn error(&self, e: SmtpError) -> Error {
        let code = e.status().map(|c| c.to_string()).unwrap_or_default();
        let kind = if e.is_timeout() {
            ErrorKind::Timeout
        } else if matches!(code.as_str(), "535" | "534" | "530") {
            ErrorKind::Unauthenticated
        } else if e.is_permanent() {
            ErrorKind::InvalidArgument
        } else {
            ErrorKind::Unavailable
        };
        Error::new(kind, format!("{}: SMTP server {}: {e}", self.component, self.server))
    }
}

#[async_trait]
impl EmailSender for Smtp {
    async fn send(&self, email: Email) -> Result<String> {
        let composed = compose(&self.component, email, self.from.as_deref())?;
        self.transport.send(composed.message).await.map_err(|e| self.error(e))?;
        Ok(composed.id)
    }

    fn templates(&self) -> Option<&Templates> {
        self.templates.as_ref()
    }

    async fn health(&self) -> layotto_core::Health {
        match tokio::time::timeout(Duration::from_secs(2), self.transport.test_connection()).await {
            Ok(Ok(true)) => layotto_core::Health::up(),
            Ok(Ok(false)) => {
                layotto_core::Health::down(format!("SMTP server {} answered NOOP badly", self.server))
            }
            Ok(Err(e)) => layotto_core::Health::down(format!("SMTP server {}: {e}", self.server)),
            Err(_) => {
                layotto_core::Health::down(format!("SMTP server {} did not answer within 2s", self.server))
            }
        }
    }
}
