//! A request that cannot be decoded is the caller's invalid argument, as
//! Layotto and Dapr answer; tonic's protobuf codec says INTERNAL.

use http::HeaderValue;

/// tonic's message for a protobuf decode error, percent-encoded as it
/// travels in `grpc-message`.
const UNDECODABLE: &[u8] = b"failed%20to%20decode%20Protobuf%20message";

/// Rewrites the status of a call whose request did not decode to INVALID_ARGUMENT.
pub fn undecodable_is_invalid_argument<B>(mut response: http::Response<B>) -> http::Response<B> {
    let headers = response.headers_mut();
    let internal = headers.get("grpc-status").is_some_and(|s| s.as_bytes() == b"13");
    let undecodable = headers.get("grpc-message").is_some_and(|m| m.as_bytes().starts_with(UNDECODABLE));
    if internal && undecodable {
        headers.insert("grpc-status", HeaderValue::from_static("3"));
    }
    response
}

/// [`undecodable_is_invalid_argument`] as a nameable function pointer for the layer stack.
pub type MapUndecodable = fn(http::Response<tonic::body::Body>) -> http::Response<tonic::body::Body>;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn only_decode_errors_change() {
        let response = |status: &'static str, message: &'static str| {
            let mut r = http::Response::new(());
            r.headers_mut().insert("grpc-status", HeaderValue::from_static(status));
            r.headers_mut().insert("grpc-message", HeaderValue::from_static(message));
            undecodable_is_invalid_argument(r)
        };
        let fixed = response("13", "failed%20to%20decode%20Protobuf%20message:%20invalid%20varint");
        assert_eq!(fixed.headers()["grpc-status"], "3");
        assert_eq!(response("13", "redis%20broke").headers()["grpc-status"], "13");
        assert_eq!(response("5", "failed%20to%20decode%20Protobuf%20message").headers()["grpc-status"], "5");
    }
}
