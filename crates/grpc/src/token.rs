//! API tokens (Dapr's `dapr-api-token`): when the runtime has a token, every
//! gRPC call must carry it in that metadata, except gRPC health, or it is
//! answered UNAUTHENTICATED before any service sees it. Compared in
//! constant time; the token itself is never logged.

use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::Either;

/// The header (gRPC metadata) that carries the token, as Dapr's SDKs send it.
pub const TOKEN_HEADER: &str = "dapr-api-token";

/// A token kept out of Debug output and logs.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiToken(Arc<str>);

impl ApiToken {
    pub fn new(token: impl Into<Arc<str>>) -> Self {
        Self(token.into())
    }

    /// The token itself, to send to a peer runtime; never log it.
    pub fn secret(&self) -> &str {
        &self.0
    }

    /// Whether `given` is the token, in time that does not depend on where they differ.
    pub fn matches(&self, given: &[u8]) -> bool {
        let expected = self.0.as_bytes();
        if given.len() != expected.len() {
            return false;
        }
        expected.iter().zip(given).fold(0u8, |diff, (a, b)| diff | (a ^ b)) == 0
    }

    /// The token as gRPC metadata; None when it is not valid there.
    pub fn metadata_value(&self) -> Option<tonic::metadata::AsciiMetadataValue> {
        self.0.parse().ok()
    }

    /// Whether the headers carry the token.
    pub fn allows(&self, headers: &http::HeaderMap) -> bool {
        headers.get(TOKEN_HEADER).is_some_and(|v| self.matches(v.as_bytes()))
    }
}

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiToken(***)")
    }
}

/// Requires the token on every gRPC call but health checks.
#[derive(Clone, Default)]
pub struct ApiTokenLayer {
    token: Option<ApiToken>,
}

impl ApiTokenLayer {
    pub fn new(token: Option<ApiToken>) -> Self {
        Self { token }
    }
}

impl<S> tower::Layer<S> for ApiTokenLayer {
    type Service = RequireToken<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireToken { inner, token: self.token.clone() }
    }
}

#[derive(Clone)]
pub struct RequireToken<S> {
    inner: S,
    token: Option<ApiToken>,
}

impl<S, B, RB> tower::Service<http::Request<B>> for RequireToken<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>>,
    RB: Default,
{
    type Response = http::Response<RB>;
    type Error = S::Error;
    type Future = Either<S::Future, std::future::Ready<Result<http::Response<RB>, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if let Some(token) = &self.token
            && !request.uri().path().starts_with("/grpc.health.v1.Health/")
            && !token.allows(request.headers())
        {
            let status = tonic::Status::unauthenticated(format!(
                "missing or invalid api token: send it in the '{TOKEN_HEADER}' metadata"
            ));
            return Either::Right(std::future::ready(Ok(status.into_http())));
        }
        Either::Left(self.inner.call(request))
    }
}

#[cfg(test)]
mod tests {
    use super::ApiToken;

    #[test]
    fn matches_only_the_exact_token_and_never_shows_it() {
        let token = ApiToken::new("s3cret");
        assert!(token.matches(b"s3cret"));
        assert!(!token.matches(b"s3cre"));
        assert!(!token.matches(b"s3cret!"));
        assert!(!token.matches(b"S3cret"));
        assert!(!format!("{token:?}").contains("s3cret"));
    }
}
