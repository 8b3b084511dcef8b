use std::fmt;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, independent of transport. The gRPC crate owns the one
/// mapping from kind to status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The caller sent something the API or the component rejects.
    InvalidArgument,
    /// A named component or item does not exist.
    NotFound,
    /// An optimistic-concurrency check failed (etag or first-write).
    EtagMismatch,
    /// The etag cannot be an etag of this component.
    InvalidEtag,
    /// The component does not support the requested operation.
    Unsupported,
    /// The backend cannot be reached now; retrying later may succeed.
    Unavailable,
    /// The backend did not answer in time.
    Timeout,
    /// A limit was reached (size, count, backlog); the message names it and its value.
    ResourceExhausted,
    /// Configuration is missing or wrong.
    Config,
    /// The backend refused the credentials it was given.
    Unauthenticated,
    /// The backend refused the operation to these credentials.
    PermissionDenied,
    /// Anything else: a bug or an unexpected backend reply.
    Internal,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidArgument => "invalid argument",
            Self::NotFound => "not found",
            Self::EtagMismatch => "etag mismatch",
            Self::InvalidEtag => "invalid etag",
            Self::Unsupported => "unsupported",
            Self::Unavailable => "unavailable",
            Self::Timeout => "timeout",
            Self::ResourceExhausted => "resource exhausted",
            Self::Config => "configuration error",
            Self::Unauthenticated => "unauthenticated",
            Self::PermissionDenied => "permission denied",
            Self::Internal => "internal error",
        }
    }

    /// The kind as a metric label value (`etag_mismatch`).
    pub fn metric_label(self) -> &'static str {
        match self {
            Self::InvalidArgument => "invalid_argument",
            Self::NotFound => "not_found",
            Self::EtagMismatch => "etag_mismatch",
            Self::InvalidEtag => "invalid_etag",
            Self::Unsupported => "unsupported",
            Self::Unavailable => "unavailable",
            Self::Timeout => "timeout",
            Self::ResourceExhausted => "resource_exhausted",
            Self::Config => "config",
            Self::Unauthenticated => "unauthenticated",
            Self::PermissionDenied => "permission_denied",
            Self::Internal => "internal",
        }
    }
}

/// An error from an API or one of its components.
///
/// The message names the component and the field or key at fault, so that
/// a client reading only the gRPC status can tell what to fix.
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into(), source: None }
    }

    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArgument, message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    pub fn config(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Config, message)
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// Prefixes the message with context, keeping kind and source.
    pub fn context(mut self, context: impl fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind)
            .field("message", &self.message)
            .field("source", &self.source)
            .finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|s| s as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_includes_source_and_context() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let err = Error::unavailable("redis state store 'cache' is down").with_source(io).context("GetState");
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        assert_eq!(err.to_string(), "GetState: redis state store 'cache' is down: refused");
    }
}
