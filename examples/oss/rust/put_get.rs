//! PutObject with user metadata, HeadObject, GetObject.
//!
//! `cargo run -p layotto-examples --bin oss-put-get` with the runtime running.

use layotto_examples::oss::{self, Target};
use layotto_grpc::pb::s3 as pb;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let target = Target::from_env();
    let mut client = oss::connect().await?;

    // User metadata goes in the first message only.
    let first = pb::PutObjectInput {
        store_name: target.store.clone(),
        bucket: target.bucket.clone(),
        key: "greetings/hello.txt".into(),
        body: b"hello from Rust".to_vec(),
        meta: [("owner".to_owned(), "demo".to_owned())].into(),
        ..Default::default()
    };
    client.put_object(tokio_stream::iter([first])).await?;
    println!("put greetings/hello.txt");

    let head = client
        .head_object(pb::HeadObjectInput {
            store_name: target.store.clone(),
            bucket: target.bucket.clone(),
            key: "greetings/hello.txt".into(),
            ..Default::default()
        })
        .await?
        .into_inner();
    let header = |name: &str| head.result_metadata.get(name).cloned().unwrap_or_default();
    println!("head size={} owner={}", header("Content-Length"), header("x-amz-meta-owner"));

    let body = oss::get(&mut client, &target, "greetings/hello.txt").await?;
    println!("get {}", String::from_utf8_lossy(&body));
    Ok(())
}
