//! A multipart upload: create, upload two parts (S3 wants every part but the
//! last to be at least 5 MiB), list them, complete; then read the size back.
//!
//! `cargo run -p layotto-examples --bin oss-multipart` with the runtime running.

use layotto_examples::oss::{self, Target};
use layotto_grpc::pb::s3 as pb;

const KEY: &str = "uploads/big.bin";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let target = Target::from_env();
    let mut client = oss::connect().await?;

    let upload_id = client
        .create_multipart_upload(pb::CreateMultipartUploadInput {
            store_name: target.store.clone(),
            bucket: target.bucket.clone(),
            key: KEY.into(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .upload_id;
    println!("upload started");

    let mut completed = Vec::new();
    for (part_number, size) in [(1, 5 * 1024 * 1024), (2, 1024 * 1024)] {
        // A part's body streams like PutObject's: the first message names it.
        let messages: Vec<pb::UploadPartInput> = vec![b'x'; size]
            .chunks(256 * 1024)
            .enumerate()
            .map(|(i, chunk)| pb::UploadPartInput {
                store_name: if i == 0 { target.store.clone() } else { String::new() },
                bucket: target.bucket.clone(),
                key: KEY.into(),
                upload_id: upload_id.clone(),
                part_number,
                content_length: size as i64,
                body: chunk.to_vec(),
                ..Default::default()
            })
            .collect();
        let etag = client.upload_part(tokio_stream::iter(messages)).await?.into_inner().etag;
        println!("part {part_number}: {size} bytes");
        completed.push(pb::CompletedPart { etag, part_number });
    }

    let parts = client
        .list_parts(pb::ListPartsInput {
            store_name: target.store.clone(),
            bucket: target.bucket.clone(),
            key: KEY.into(),
            upload_id: upload_id.clone(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .parts;
    println!("parts listed: {}", parts.len());

    client
        .complete_multipart_upload(pb::CompleteMultipartUploadInput {
            store_name: target.store.clone(),
            bucket: target.bucket.clone(),
            key: KEY.into(),
            upload_id,
            multipart_upload: Some(pb::CompletedMultipartUpload { parts: completed }),
            ..Default::default()
        })
        .await?;
    let head = client
        .head_object(pb::HeadObjectInput {
            store_name: target.store.clone(),
            bucket: target.bucket.clone(),
            key: KEY.into(),
            ..Default::default()
        })
        .await?
        .into_inner();
    let size = head.result_metadata.get("Content-Length").cloned().unwrap_or_default();
    println!("completed {KEY}: {size} bytes");
    Ok(())
}
