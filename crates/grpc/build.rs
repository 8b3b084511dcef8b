//! Generates the protobuf and tonic code from `proto/` with protox, so no
//! `protoc` binary is needed, and saves the descriptor set for gRPC reflection.

use std::path::PathBuf;

const PROTOS: &[&str] = &[
    "spec/proto/runtime/v1/runtime.proto",
    "spec/proto/runtime/v1/appcallback.proto",
    "spec/proto/runtime/v1/lifecycle.proto",
    "spec/proto/extension/v1/email/email.proto",
    "spec/proto/extension/v1/delay_queue/delay_queue.proto",
    "spec/proto/extension/v1/s3/oss.proto",
    "dapr/proto/runtime/v1/dapr.proto",
    "dapr/proto/runtime/v1/appcallback.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    println!("cargo:rerun-if-changed={}", root.display());
    let fds = protox::compile(PROTOS, [&root])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("layotto_descriptor.bin"), prost::Message::encode_to_vec(&fds))?;
    // Our codec answers INVALID_ARGUMENT for a message that does not decode.
    tonic_prost_build::configure()
        .codec_path("crate::codec::LayottoCodec")
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
