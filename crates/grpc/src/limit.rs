//! The request size limit of every gRPC method, as a tower layer.
//!
//! It reads the 5-byte gRPC message headers as the request body streams in
//! and fails the call with RESOURCE_EXHAUSTED, naming the method and the
//! limit, as soon as a message declares more than the limit: nothing over
//! it is ever buffered, for unary and streaming methods alike.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use http_body::{Body, Frame};
use tonic::Status;

/// Applies [`RequestSizeLimit`] to a service.
#[derive(Debug, Clone, Copy)]
pub struct RequestSizeLimitLayer {
    max_bytes: usize,
}

impl RequestSizeLimitLayer {
    pub fn new(max_bytes: usize) -> Self {
        Self { max_bytes }
    }
}

impl<S> tower::Layer<S> for RequestSizeLimitLayer {
    type Service = RequestSizeLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestSizeLimit { inner, max_bytes: self.max_bytes }
    }
}

#[derive(Debug, Clone)]
pub struct RequestSizeLimit<S> {
    inner: S,
    max_bytes: usize,
}

impl<S, B> tower::Service<http::Request<B>> for RequestSizeLimit<S>
where
    S: tower::Service<http::Request<tonic::body::Body>>,
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<tonic::codegen::StdError>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        // A clone of the URI shares its bytes: naming the method costs nothing unless needed.
        let uri = request.uri().clone();
        let max_bytes = self.max_bytes;
        self.inner.call(request.map(|body| {
            tonic::body::Body::new(LimitedBody {
                inner: body,
                max_bytes,
                uri,
                header: [0; 5],
                header_len: 0,
                remaining: 0,
            })
        }))
    }
}

/// A request body that checks each gRPC message's declared length.
struct LimitedBody<B> {
    inner: B,
    max_bytes: usize,
    uri: http::Uri,
    /// The message header seen so far (a header can span frames).
    header: [u8; 5],
    header_len: usize,
    /// Bytes of the current message still to come.
    remaining: usize,
}

impl<B> LimitedBody<B> {
    /// Walks the message framing of `data`; an error once a message is too large.
    fn check(&mut self, data: &[u8]) -> Result<(), Status> {
        let mut at = 0;
        while at < data.len() {
            if self.remaining > 0 {
                let take = self.remaining.min(data.len() - at);
                self.remaining -= take;
                at += take;
                continue;
            }
            let take = (5 - self.header_len).min(data.len() - at);
            self.header[self.header_len..self.header_len + take].copy_from_slice(&data[at..at + take]);
            self.header_len += take;
            at += take;
            if self.header_len == 5 {
                let declared =
                    u32::from_be_bytes([self.header[1], self.header[2], self.header[3], self.header[4]]);
                self.header_len = 0;
                let declared = declared as usize;
                if declared > self.max_bytes {
                    return Err(self.too_large(declared, &data[at..]));
                }
                self.remaining = declared;
            }
        }
        Ok(())
    }

    fn too_large(&self, declared: usize, prefix: &[u8]) -> Status {
        let names = leading_strings(prefix, 2);
        let naming = if names.is_empty() {
            String::new()
        } else {
            format!(" (for {})", names.iter().map(|n| format!("'{n}'")).collect::<Vec<_>>().join(", "))
        };
        let method = self.uri.path().rsplit('/').next().unwrap_or_default();
        Status::resource_exhausted(format!(
            "{method}: request of {declared} bytes{naming} exceeds the limit of {} bytes (server.max_request_bytes)",
            self.max_bytes
        ))
    }
}

impl<B> Body for LimitedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<tonic::codegen::StdError>,
{
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref()
                    && let Err(status) = this.check(data.chunk())
                {
                    return Poll::Ready(Some(Err(status)));
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Status::from_error(e.into())))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Up to `max` short strings among the first length-delimited fields of a
/// protobuf message prefix (and of its first nested message), such as the
/// store name and key of a SaveState: they tell a client which call was too
/// large without echoing much of it.
fn leading_strings(mut buf: &[u8], max: usize) -> Vec<String> {
    let mut found = Vec::new();
    let mut depth = 0;
    while found.len() < max && !buf.is_empty() {
        let Ok(tag) = prost::encoding::decode_varint(&mut buf) else { break };
        match tag & 7 {
            0 => {
                if prost::encoding::decode_varint(&mut buf).is_err() {
                    break;
                }
            }
            1 if buf.len() >= 8 => buf = &buf[8..],
            5 if buf.len() >= 4 => buf = &buf[4..],
            2 => {
                let Ok(len) = prost::encoding::decode_varint(&mut buf) else { break };
                let len = len as usize;
                let text = buf.get(..len.min(buf.len())).unwrap_or_default();
                if len <= 200 && len == text.len() && !text.is_empty() {
                    if let Ok(s) = std::str::from_utf8(text)
                        && s.chars().all(|c| !c.is_control())
                    {
                        found.push(s.to_owned());
                        buf = &buf[len..];
                        continue;
                    }
                } else if depth == 0 && len > 200 {
                    // A large nested message (a state item): look inside it once.
                    depth += 1;
                    continue;
                }
                if len > buf.len() {
                    break;
                }
                buf = &buf[len..];
            }
            _ => break,
        }
    }
    found
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use prost::Message;

    #[test]
    fn names_store_and_key_of_a_large_save() {
        let req = crate::pb::runtime::SaveStateRequest {
            store_name: "state_demo".into(),
            states: vec![crate::pb::runtime::StateItem {
                key: "huge".into(),
                value: vec![7; 4096],
                ..Default::default()
            }],
        };
        let bytes = req.encode_to_vec();
        assert_eq!(leading_strings(&bytes[..300], 2), vec!["state_demo", "huge"]);
    }

    #[test]
    fn framing_across_chunks() {
        let mut body = LimitedBody {
            inner: (),
            max_bytes: 10,
            uri: http::Uri::from_static("/pkg.Service/M"),
            header: [0; 5],
            header_len: 0,
            remaining: 0,
        };
        // A 3-byte message, then a header split over two chunks declaring 11 bytes.
        body.check(&[0, 0, 0, 0, 3, 1, 2, 3, 0, 0]).unwrap();
        let err = body.check(&[0, 0, 11]).unwrap_err();
        assert_eq!(err.code(), tonic::Code::ResourceExhausted);
        assert!(err.message().contains("M: request of 11 bytes") && err.message().contains("10 bytes"));
    }
}
