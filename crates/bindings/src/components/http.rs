//! `http`: Dapr's HTTP output binding. The operation is the HTTP method
//! (`get`, `head`, `post`, `put`, `patch`, `delete`, `options`, `trace`, and
//! `create` = POST); the body is sent for POST, PUT and PATCH.
//!
//! Component metadata: `url` (required), `responseTimeout` (a duration; none
//! by default), `maxResponseBodySize` (bytes, or `100Mi`-style; default
//! 100 MiB), `securityToken` with `securityTokenHeader` (a header sent on
//! every call), `errorIfNot2XX` (default true).
//! Request metadata: `path` (joined to `url`), every key starting with an
//! upper-case letter becomes a header, `traceparent`/`tracestate` travel on,
//! `errorIfNot2XX` overrides the component's.
//! Response metadata: `statusCode` (`"200"`), `status` (`"200 OK"`) and
//! every response header by its canonical name, several values joined by `, `.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use layotto_core::{ComponentContext, Error, ErrorKind, Metadata, Result, clip, settings};
use serde::Deserialize;

use crate::{InvokeRequest, InvokeResponse, OutputBinding};

const OPERATIONS: &[&str] = &["create", "get", "head", "post", "put", "patch", "delete", "options", "trace"];
const DEFAULT_MAX_BODY: u64 = 100 * 1024 * 1024;

#[derive(Deserialize)]
struct HttpSettings {
    #[serde(default)]
    url: Option<String>,
    #[serde(rename = "responseTimeout", default, deserialize_with = "settings::duration")]
    response_timeout: Option<Duration>,
    #[serde(rename = "maxResponseBodySize", default)]
    max_response_body_size: Option<String>,
    #[serde(rename = "securityToken", default)]
    security_token: Option<String>,
    #[serde(rename = "securityTokenHeader", default)]
    security_token_header: Option<String>,
    #[serde(rename = "errorIfNot2XX", default)]
    error_if_not_2xx: Option<bool>,
}

pub struct HttpBinding {
    name: String,
    url: reqwest::Url,
    client: reqwest::Client,
    max_body: u64,
    token: Option<(reqwest::header::HeaderName, reqwest::header::HeaderValue)>,
    error_if_not_2xx: bool,
}

/// `1048576`, `100Mi`, `10M`, `512Ki`, `1Gi` → bytes.
fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let scale: u64 = match unit {
        "" => 1,
        "K" | "k" => 1000,
        "Ki" => 1 << 10,
        "M" => 1_000_000,
        "Mi" => 1 << 20,
        "G" => 1_000_000_000,
        "Gi" => 1 << 30,
        _ => return None,
    };
    number.parse::<u64>().ok()?.checked_mul(scale)
}

impl HttpBinding {
    pub const TYPE: &'static str = "http";

    pub async fn build(ctx: ComponentContext) -> Result<Arc<dyn OutputBinding>> {
        let s: HttpSettings = ctx.settings()?;
        let describe = ctx.describe();
        let raw = s
            .url
            .filter(|u| !u.trim().is_empty())
            .ok_or_else(|| Error::config(format!("{describe}: metadata 'url' is required")))?;
        let url = reqwest::Url::parse(raw.trim())
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| {
                Error::config(format!("{describe}: metadata 'url' is not an http(s) URL: '{}'", clip(&raw)))
            })?;
        let max_body = match s.max_response_body_size.as_deref() {
            None => DEFAULT_MAX_BODY,
            Some(size) => parse_size(size).ok_or_else(|| {
                Error::config(format!(
                    "{describe}: metadata 'maxResponseBodySize' must be bytes such as 1048576 or 100Mi, got '{size}'"
                ))
            })?,
        };
        let token = match (s.security_token, s.security_token_header) {
            (Some(token), Some(header)) if !token.is_empty() && !header.is_empty() => {
                let name = reqwest::header::HeaderName::from_bytes(header.as_bytes()).map_err(|_| {
                    Error::config(format!("{describe}: metadata 'securityTokenHeader' is not a header name"))
                })?;
                let mut value = reqwest::header::HeaderValue::from_str(&token).map_err(|_| {
                    Error::config(format!("{describe}: metadata 'securityToken' is not a valid header value"))
                })?;
                value.set_sensitive(true);
                Some((name, value))
            }
            _ => None,
        };
        let mut client = reqwest::Client::builder().connect_timeout(Duration::from_secs(10));
        if let Some(timeout) = s.response_timeout.filter(|t| !t.is_zero()) {
            client = client.timeout(timeout);
        }
        let client = client.build().map_err(|e| Error::config(format!("{describe}: {e}")))?;
        Ok(Arc::new(Self {
            name: ctx.name,
            url,
            client,
            max_body,
            token,
            error_if_not_2xx: s.error_if_not_2xx.unwrap_or(true),
        }))
    }

    fn target(&self, path: Option<&str>) -> Result<reqwest::Url> {
        let Some(path) = path.filter(|p| !p.is_empty()) else { return Ok(self.url.clone()) };
        let joined = format!("{}/{}", self.url.as_str().trim_end_matches('/'), path.trim_start_matches('/'));
        reqwest::Url::parse(&joined).map_err(|_| {
            Error::invalid_argument(format!(
                "binding '{}': metadata 'path' makes a bad URL: '{}'",
                self.name,
                clip(path)
            ))
        })
    }

    /// A failed request as one of our errors, naming the binding and the URL.
    fn failure(&self, url: &reqwest::Url, e: &reqwest::Error) -> Error {
        let kind = if e.is_timeout() {
            ErrorKind::Timeout
        } else if e.is_connect() || e.is_request() {
            ErrorKind::Unavailable
        } else {
            ErrorKind::Internal
        };
        let what =
            if e.is_timeout() { "no answer in time (responseTimeout)".to_owned() } else { e.to_string() };
        Error::new(kind, format!("binding '{}': request to {url}: {what}", self.name))
    }
}

#[async_trait]
impl OutputBinding for HttpBinding {
    fn operations(&self) -> &'static [&'static str] {
        OPERATIONS
    }

    async fn invoke(&self, req: InvokeRequest) -> Result<InvokeResponse> {
        let method = match req.operation.as_str() {
            "create" | "post" => reqwest::Method::POST,
            "get" => reqwest::Method::GET,
            "head" => reqwest::Method::HEAD,
            "put" => reqwest::Method::PUT,
            "patch" => reqwest::Method::PATCH,
            "delete" => reqwest::Method::DELETE,
            "options" => reqwest::Method::OPTIONS,
            "trace" => reqwest::Method::TRACE,
            other => {
                return Err(Error::invalid_argument(format!(
                    "binding '{}': operation '{}' is not supported; use one of {}",
                    self.name,
                    clip(other),
                    OPERATIONS.join(", ")
                )));
            }
        };
        let url = self.target(req.metadata.get("path").map(String::as_str))?;
        let with_body =
            matches!(method, reqwest::Method::POST | reqwest::Method::PUT | reqwest::Method::PATCH);
        let mut request = self.client.request(method, url.clone());
        let mut has_content_type = false;
        // With tracing on, this runtime's span is the target's parent.
        let trace = layotto_core::telemetry::current_headers();
        for (key, value) in &trace {
            request = request.header(key, value);
        }
        for (key, value) in &req.metadata {
            let traced = key == "traceparent" || key == "tracestate";
            if traced && !trace.is_empty() {
                continue;
            }
            let header = key.starts_with(|c: char| c.is_ascii_uppercase()) || traced;
            if !header {
                continue;
            }
            has_content_type |= key.eq_ignore_ascii_case("content-type");
            let name = reqwest::header::HeaderName::from_bytes(key.as_bytes());
            let value = reqwest::header::HeaderValue::from_str(value);
            match (name, value) {
                (Ok(name), Ok(value)) => request = request.header(name, value),
                _ => {
                    return Err(Error::invalid_argument(format!(
                        "binding '{}': metadata '{}' is not a valid HTTP header",
                        self.name,
                        clip(key)
                    )));
                }
            }
        }
        if with_body {
            if !has_content_type {
                request = request.header(reqwest::header::CONTENT_TYPE, "application/json; charset=utf-8");
            }
            request = request.body(req.data);
        }
        if let Some((name, value)) = &self.token {
            request = request.header(name.clone(), value.clone());
        }
        let response = request.send().await.map_err(|e| self.failure(&url, &e))?;
        let status = response.status();
        let mut metadata = Metadata::new();
        metadata.insert("statusCode".to_owned(), status.as_u16().to_string());
        metadata.insert("status".to_owned(), status.to_string());
        for name in response.headers().keys() {
            let values: Vec<&str> =
                response.headers().get_all(name).iter().filter_map(|v| v.to_str().ok()).collect();
            metadata.insert(canonical(name.as_str()), values.join(", "));
        }
        let mut data = Vec::new();
        let mut body = response.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| self.failure(&url, &e))?;
            if (data.len() + chunk.len()) as u64 > self.max_body {
                return Err(Error::new(
                    ErrorKind::ResourceExhausted,
                    format!(
                        "binding '{}': the answer of {url} is larger than {} bytes (maxResponseBodySize)",
                        self.name, self.max_body
                    ),
                ));
            }
            data.extend_from_slice(&chunk);
        }
        let error_if_not_2xx = req
            .metadata
            .get("errorIfNot2XX")
            .and_then(|v| v.trim().parse::<bool>().ok())
            .unwrap_or(self.error_if_not_2xx);
        if error_if_not_2xx && !status.is_success() {
            return Err(Error::new(
                ErrorKind::Internal,
                format!(
                    "binding '{}': {url} answered status code {}: {}",
                    self.name,
                    status.as_u16(),
                    clip(&String::from_utf8_lossy(&data))
                ),
            ));
        }
        Ok(InvokeResponse { data, metadata })
    }
}

/// `content-type` → `Content-Type`, as Go's http package names headers.
fn canonical(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + &chars.as_str().to_ascii_lowercase(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_header_names() {
        assert_eq!(parse_size("100Mi"), Some(100 << 20));
        assert_eq!(parse_size("1048576"), Some(1 << 20));
        assert_eq!(parse_size("10MB"), None);
        assert_eq!(canonical("content-type"), "Content-Type");
        assert_eq!(canonical("x-request-id"), "X-Request-Id");
    }
}
