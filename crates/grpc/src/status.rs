//! Error kind → gRPC status: the one mapping for every API.

use layotto_core::{Error, ErrorKind};
use tonic::{Code, Status};

pub fn code(kind: ErrorKind) -> Code {
    match kind {
        ErrorKind::InvalidArgument | ErrorKind::InvalidEtag => Code::InvalidArgument,
        ErrorKind::NotFound => Code::NotFound,
        ErrorKind::EtagMismatch => Code::Aborted,
        ErrorKind::Unsupported => Code::Unimplemented,
        ErrorKind::Unavailable => Code::Unavailable,
        ErrorKind::Timeout => Code::DeadlineExceeded,
        ErrorKind::ResourceExhausted => Code::ResourceExhausted,
        ErrorKind::Config => Code::FailedPrecondition,
        ErrorKind::Unauthenticated => Code::Unauthenticated,
        ErrorKind::PermissionDenied => Code::PermissionDenied,
        _ => Code::Internal,
    }
}

pub fn to_status(err: Error) -> Status {
    Status::new(code(err.kind()), err.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_kinds_map_to_layotto_codes() {
        assert_eq!(code(ErrorKind::EtagMismatch), Code::Aborted);
        assert_eq!(code(ErrorKind::InvalidEtag), Code::InvalidArgument);
        assert_eq!(code(ErrorKind::Unavailable), Code::Unavailable);
        assert_eq!(code(ErrorKind::Internal), Code::Internal);
        let status = to_status(Error::invalid_argument("state store 's': key 'a||b' must not contain '||'"));
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().contains("a||b"));
    }
}
