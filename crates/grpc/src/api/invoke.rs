//! Service invocation: the runtime's [`Invoker`], set at startup.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use layotto_invoke::{InvokeRequest, InvokeResponse, Invoker};

use super::{ApiResult, Lookup};

#[derive(Default)]
pub struct InvokeApi {
    invoker: OnceLock<Arc<Invoker>>,
}

impl InvokeApi {
    pub fn set(&self, invoker: Arc<Invoker>) {
        let _ = self.invoker.set(invoker);
    }

    pub fn app_id(&self) -> Option<&str> {
        self.invoker.get().map(|i| i.app_id())
    }

    pub async fn invoke(&self, app_id: &str, req: InvokeRequest) -> ApiResult<InvokeResponse> {
        let invoker = self.invoker.get().ok_or(Lookup::NotConfigured)?;
        Ok(invoker.invoke(app_id, req).await?)
    }
}

/// The gRPC code of an HTTP status, for a gRPC caller of an HTTP app
/// (the mapping of grpc-gateway and Dapr).
pub fn code_from_http(status: u16) -> tonic::Code {
    use tonic::Code;
    match status {
        200..=299 => Code::Ok,
        400 => Code::InvalidArgument,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::NotFound,
        408 | 504 => Code::DeadlineExceeded,
        409 => Code::Aborted,
        429 => Code::ResourceExhausted,
        499 => Code::Cancelled,
        501 => Code::Unimplemented,
        503 => Code::Unavailable,
        500 => Code::Internal,
        _ => Code::Unknown,
    }
}

/// The HTTP status of a gRPC code, for an HTTP caller of a gRPC app.
pub fn http_from_code(code: tonic::Code) -> u16 {
    use tonic::Code;
    match code {
        Code::Ok => 200,
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => 400,
        Code::Unauthenticated => 401,
        Code::PermissionDenied => 403,
        Code::NotFound => 404,
        Code::AlreadyExists | Code::Aborted => 409,
        Code::ResourceExhausted => 429,
        Code::Cancelled => 499,
        Code::Unimplemented => 501,
        Code::Unavailable => 503,
        Code::DeadlineExceeded => 504,
        _ => 500,
    }
}

/// A gRPC `grpc-timeout` header (`5S`, `100m`, …) as a duration.
pub fn grpc_timeout(metadata: &tonic::metadata::MetadataMap) -> Option<std::time::Duration> {
    let value = metadata.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => std::time::Duration::from_secs(n.saturating_mul(3600)),
        "M" => std::time::Duration::from_secs(n.saturating_mul(60)),
        "S" => std::time::Duration::from_secs(n),
        "m" => std::time::Duration::from_millis(n),
        "u" => std::time::Duration::from_micros(n),
        "n" => std::time::Duration::from_nanos(n),
        _ => return None,
    })
}

/// gRPC metadata worth passing to the app: not gRPC's own, not the token.
pub fn forwarded_metadata(metadata: &tonic::metadata::MetadataMap) -> Vec<(String, String)> {
    metadata
        .iter()
        .filter_map(|kv| match kv {
            tonic::metadata::KeyAndValueRef::Ascii(k, v) => {
                Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned()))
            }
            tonic::metadata::KeyAndValueRef::Binary(..) => None,
        })
        .filter(|(k, _)| {
            !(k.starts_with("grpc-")
                || k == "content-type"
                || k == "te"
                || k == "user-agent"
                || k == "dapr-api-token")
        })
        .collect()
}

/// An InvokeService call (Layotto's and Dapr's carry the same fields).
pub struct GrpcInvoke {
    pub app_id: String,
    pub method: String,
    pub data: Vec<u8>,
    pub content_type: String,
    /// HTTPExtension.Verb: 0 none (POST), 1 GET, 2 HEAD, 3 POST, 4 PUT, 5 DELETE, 6 CONNECT, 7 OPTIONS, 8 TRACE, 9 PATCH.
    pub verb: i32,
    pub query: String,
}

const VERBS: [&str; 10] =
    ["POST", "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"];

/// Runs an InvokeService call: the body and content type back, or the
/// target's status (a gRPC app's unchanged, an HTTP app's mapped).
pub async fn invoke_grpc(
    api: &InvokeApi,
    call: GrpcInvoke,
    metadata: &tonic::metadata::MetadataMap,
) -> Result<(Vec<u8>, String), tonic::Status> {
    let verb = usize::try_from(call.verb).ok().and_then(|i| VERBS.get(i)).copied().unwrap_or("POST");
    let req = InvokeRequest {
        method: call.method,
        verb: verb.to_owned(),
        query: call.query,
        headers: forwarded_metadata(metadata),
        content_type: call.content_type,
        body: call.data.into(),
        // A little under the caller's deadline, so the caller hears DEADLINE_EXCEEDED
        // from us rather than giving up on its own.
        timeout: grpc_timeout(metadata)
            .map(|t| t.saturating_sub((t / 20).min(Duration::from_millis(50))))
            .unwrap_or_default(),
    };
    let response = api.invoke(&call.app_id, req).await.map_err(|e| match e {
        super::ApiError::Lookup(_) => {
            tonic::Status::failed_precondition("service invocation is not configured")
        }
        super::ApiError::Call(e) => crate::status::to_status(e),
    })?;
    let header =
        |name: &str| response.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v);
    if let Some(code) = header("grpc-status").and_then(|c| c.parse::<i32>().ok()).filter(|c| *c != 0) {
        let message = header("grpc-message").cloned().unwrap_or_default();
        return Err(tonic::Status::new(tonic::Code::from_i32(code), message));
    }
    if !(200..300).contains(&response.status) {
        return Err(tonic::Status::new(
            code_from_http(response.status),
            String::from_utf8_lossy(&response.body).into_owned(),
        ));
    }
    Ok((response.body.to_vec(), response.content_type))
}
