//! Dapr rpcs this runtime does not serve (actors, workflows, jobs, crypto,
//! conversation, …) answer UNIMPLEMENTED naming the building block, instead
//! of tonic's bare status for an unknown method.

use std::task::{Context, Poll};

use futures::FutureExt;
use futures::future::{BoxFuture, Either};

const DAPR_SERVICE: &str = "/dapr.proto.runtime.v1.Dapr/";

/// The rpcs served (proto/dapr): their answers pass untouched, unboxed.
const SERVED: &[&str] = &[
    "InvokeService",
    "GetState",
    "GetBulkState",
    "SaveState",
    "QueryStateAlpha1",
    "DeleteState",
    "DeleteBulkState",
    "ExecuteStateTransaction",
    "PublishEvent",
    "BulkPublishEventAlpha1",
    "BulkPublishEvent",
    "SubscribeTopicEventsAlpha1",
    "InvokeBinding",
    "GetSecret",
    "GetBulkSecret",
    "GetConfigurationAlpha1",
    "GetConfiguration",
    "SubscribeConfigurationAlpha1",
    "SubscribeConfiguration",
    "UnsubscribeConfigurationAlpha1",
    "UnsubscribeConfiguration",
    "TryLockAlpha1",
    "UnlockAlpha1",
    "GetMetadata",
    "SetMetadata",
    "Shutdown",
];

/// The building block of a Dapr rpc, from its name.
pub fn building_block(method: &str) -> &'static str {
    const BLOCKS: &[(&str, &str)] = &[
        ("ActorReminder", "actors"),
        ("Actor", "actors"),
        ("Workflow", "workflows"),
        ("Job", "jobs"),
        ("crypt", "cryptography"),
        ("Subtle", "cryptography"),
        ("Converse", "conversation"),
        ("Collection", "vector store"),
        ("Vectors", "vector store"),
        ("Index", "search"),
        ("Document", "search"),
        ("Search", "search"),
        ("BinaryFile", "binary store"),
        ("Invoke", "service invocation"),
    ];
    BLOCKS.iter().find(|(needle, _)| method.contains(needle)).map_or("this", |(_, block)| block)
}

#[derive(Clone, Default)]
pub struct NameUnimplementedLayer;

impl<S> tower::Layer<S> for NameUnimplementedLayer {
    type Service = NameUnimplemented<S>;

    fn layer(&self, inner: S) -> Self::Service {
        NameUnimplemented { inner }
    }
}

#[derive(Clone)]
pub struct NameUnimplemented<S> {
    inner: S,
}

impl<S, B, RB> tower::Service<http::Request<B>> for NameUnimplemented<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<RB>;
    type Error = S::Error;
    type Future = Either<S::Future, BoxFuture<'static, Result<http::Response<RB>, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = match request.uri().path().strip_prefix(DAPR_SERVICE) {
            Some(method) if !SERVED.contains(&method) => method.to_owned(),
            _ => return Either::Left(self.inner.call(request)),
        };
        Either::Right(
            self.inner
                .call(request)
                .map(move |response| {
                    response.map(|mut response| {
                        let headers = response.headers_mut();
                        let unimplemented = headers.get("grpc-status").is_some_and(|s| s == "12");
                        if unimplemented && !headers.contains_key("grpc-message") {
                            let message = format!(
                                "{}: Dapr's {} API is not implemented in layotto-rs",
                                layotto_core::clip(&method),
                                building_block(&method)
                            );
                            // Percent-encoded as gRPC requires; method names are ASCII anyway.
                            let encoded: String = message
                                .bytes()
                                .map(|b| match b {
                                    b' '..=b'~' if b != b'%' => (b as char).to_string(),
                                    _ => format!("%{b:02X}"),
                                })
                                .collect();
                            if let Ok(value) = http::HeaderValue::from_str(&encoded) {
                                headers.insert("grpc-message", value);
                            }
                        }
                        response
                    })
                })
                .boxed(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::building_block;

    #[test]
    fn blocks_are_named_from_the_rpc() {
        assert_eq!(building_block("InvokeActor"), "actors");
        assert_eq!(building_block("RegisterActorReminder"), "actors");
        assert_eq!(building_block("StartWorkflowBeta1"), "workflows");
        assert_eq!(building_block("ScheduleJobAlpha1"), "jobs");
        assert_eq!(building_block("EncryptAlpha1"), "cryptography");
        assert_eq!(building_block("ConverseAlpha2"), "conversation");
    }
}
