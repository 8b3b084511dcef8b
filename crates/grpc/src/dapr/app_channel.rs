//! This runtime's own app over gRPC, for service invocation: Dapr's
//! `AppCallback.OnInvoke`. The app's gRPC status travels back in the
//! response's `grpc-status` / `grpc-message` headers, so a gRPC caller gets
//! it unchanged and an HTTP caller its HTTP equivalent.

use layotto_core::{Error, Result};
use layotto_invoke::{AppChannel, InvokeRequest, InvokeResponse};
use tonic::async_trait;
use tonic::transport::Channel;

use crate::api::invoke::http_from_code;
use crate::pb::dapr::common::v1 as common;
use crate::pb::dapr::runtime::v1::app_callback_client::AppCallbackClient;

pub struct DaprGrpcApp {
    client: AppCallbackClient<Channel>,
    token: Option<tonic::metadata::AsciiMetadataValue>,
    address: String,
}

impl DaprGrpcApp {
    /// Lazily connected: the app may come up after the runtime.
    pub fn new(host: &str, port: u16, token: Option<&crate::token::ApiToken>) -> Result<Self> {
        let address = format!("http://{host}:{port}");
        let channel = Channel::from_shared(address.clone())
            .map_err(|e| Error::config(format!("app address '{address}': {e}")))?
            .tcp_nodelay(true)
            .connect_lazy();
        let token = match token {
            None => None,
            Some(token) => Some(token.metadata_value().ok_or_else(|| {
                Error::config("APP_API_TOKEN holds characters that gRPC metadata cannot carry")
            })?),
        };
        Ok(Self { client: AppCallbackClient::new(channel), token, address })
    }
}

fn verb(name: &str) -> i32 {
    use common::http_extension::Verb;
    let verb = match name.to_ascii_uppercase().as_str() {
        "GET" => Verb::Get,
        "HEAD" => Verb::Head,
        "POST" => Verb::Post,
        "PUT" => Verb::Put,
        "DELETE" => Verb::Delete,
        "CONNECT" => Verb::Connect,
        "OPTIONS" => Verb::Options,
        "TRACE" => Verb::Trace,
        "PATCH" => Verb::Patch,
        _ => Verb::None,
    };
    verb as i32
}

#[async_trait]
impl AppChannel for DaprGrpcApp {
    async fn invoke(&self, req: InvokeRequest) -> Result<InvokeResponse> {
        let message = common::InvokeRequest {
            method: req.method.trim_start_matches('/').to_owned(),
            data: Some(prost_types::Any { type_url: String::new(), value: req.body.to_vec() }),
            content_type: req.content_type.clone(),
            http_extension: Some(common::HttpExtension {
                verb: verb(req.verb()),
                querystring: req.query.clone(),
            }),
        };
        let mut request = tonic::Request::new(message);
        if !req.timeout.is_zero() {
            request.set_timeout(req.timeout);
        }
        for (name, value) in &req.headers {
            let name = name.to_ascii_lowercase();
            if name.starts_with("grpc-") || name == "content-type" || layotto_invoke::hop_by_hop(&name) {
                continue;
            }
            if let (Ok(key), Ok(value)) = (
                tonic::metadata::AsciiMetadataKey::from_bytes(name.as_bytes()),
                tonic::metadata::AsciiMetadataValue::try_from(value.as_str()),
            ) {
                request.metadata_mut().insert(key, value);
            }
        }
        if let Some(token) = &self.token {
            request.metadata_mut().insert(crate::token::TOKEN_HEADER, token.clone());
        }
        // With tracing on, this runtime's span is the app's parent (insert replaces the caller's).
        for (name, value) in layotto_core::telemetry::current_headers() {
            if let (Ok(key), Ok(value)) = (
                tonic::metadata::AsciiMetadataKey::from_bytes(name.as_bytes()),
                tonic::metadata::AsciiMetadataValue::try_from(value.as_str()),
            ) {
                request.metadata_mut().insert(key, value);
            }
        }
        match self.client.clone().on_invoke(request).await {
            Ok(reply) => {
                let reply = reply.into_inner();
                Ok(InvokeResponse {
                    status: 200,
                    headers: Vec::new(),
                    content_type: reply.content_type,
                    body: reply.data.map(|d| d.value).unwrap_or_default().into(),
                })
            }
            Err(status)
                if status.code() == tonic::Code::Unavailable && status.message().contains("transport") =>
            {
                Err(Error::unavailable(format!(
                    "cannot reach the app at {}: {}",
                    self.address,
                    status.message()
                )))
            }
            Err(status) => Ok(InvokeResponse {
                status: http_from_code(status.code()),
                headers: vec![
                    ("grpc-status".into(), (status.code() as i32).to_string()),
                    ("grpc-message".into(), status.message().to_owned()),
                ],
                content_type: "text/plain".into(),
                body: status.message().as_bytes().to_vec().into(),
            }),
        }
    }
}
