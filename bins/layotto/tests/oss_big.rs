//! A 1 GiB object through PutObject and GetObject of the real binary on its
//! embedded local store: the bytes come back whole (SHA-256), and the
//! runtime's peak RSS (VmHWM from /proc) stays under 64 MB, because bodies
//! stream through in chunks and are never held whole.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use layotto_grpc::pb::s3 as pb;
use layotto_grpc::pb::s3::object_storage_service_client::ObjectStorageServiceClient;
use sha2::{Digest, Sha256};
use tokio_stream::StreamExt;

mod common;
use common::{Runtime, command};

const SIZE: usize = 1 << 30;
const CHUNK: usize = 1 << 20;
const MAX_RSS_KIB: u64 = 64 * 1024;

/// Chunk `n` of the object: deterministic, so nothing needs to be kept.
fn chunk(n: usize) -> Vec<u8> {
    let mut data = vec![0u8; CHUNK];
    for (i, byte) in data.iter_mut().enumerate() {
        *byte = ((n * 131 + i * 7) % 251) as u8;
    }
    data
}

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gibibyte_streams_through_in_constant_memory() {
    let root = tempfile::tempdir().unwrap();
    let mut cmd = command();
    cmd.env("LAYOTTO_OSS__OSS_DEMO__METADATA__root", root.path());
    let runtime = Runtime::start(cmd);
    let mut oss = ObjectStorageServiceClient::connect(format!("http://127.0.0.1:{}", runtime.grpc))
        .await
        .unwrap()
        .max_decoding_message_size(4 << 20);

    let sent = std::sync::Arc::new(std::sync::Mutex::new(Sha256::new()));
    let hasher = sent.clone();
    let messages = tokio_stream::iter(0..SIZE / CHUNK).map(move |n| {
        let body = chunk(n);
        hasher.lock().unwrap().update(&body);
        let mut message = pb::PutObjectInput { body, ..Default::default() };
        if n == 0 {
            message.store_name = "oss_demo".into();
            message.bucket = "big".into();
            message.key = "one-gibibyte".into();
            message.content_length = SIZE as i64;
        }
        message
    });
    oss.put_object(messages).await.unwrap();
    let sent = sent.lock().unwrap().clone().finalize();
    let after_put = peak_rss_kib(runtime.child.id());

    let get = pb::GetObjectInput {
        store_name: "oss_demo".into(),
        bucket: "big".into(),
        key: "one-gibibyte".into(),
        ..Default::default()
    };
    let mut stream = oss.get_object(get).await.unwrap().into_inner();
    let mut received = Sha256::new();
    let mut size = 0;
    while let Some(message) = stream.next().await {
        let message = message.unwrap();
        size += message.body.len();
        received.update(&message.body);
    }
    assert_eq!(size, SIZE);
    assert_eq!(received.finalize(), sent, "the object came back changed");
    let peak = peak_rss_kib(runtime.child.id());
    println!(
        "oss 1 GiB: peak RSS of the runtime {:.1} MB after PutObject, {:.1} MB after GetObject (limit {} MB)",
        after_put as f64 / 1024.0,
        peak as f64 / 1024.0,
        MAX_RSS_KIB / 1024
    );
    assert!(peak < MAX_RSS_KIB, "the runtime's peak RSS was {peak} KiB");
}
