//! Object storage rows: PutObject and GetObject of one size through the
//! runtime's `aws.s3` component, beside aws-sdk-s3 driving the same S3
//! server directly. The figure is MiB/s; latency is per object.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use layotto_grpc::pb::s3 as pb;
use layotto_grpc::pb::s3::object_storage_service_client::ObjectStorageServiceClient;
use tokio_stream::StreamExt;
use tonic::transport::{Channel, Endpoint};

use crate::{Report, histogram};

/// The chunk size clients send, as Layotto's SDKs do.
const CHUNK: usize = 256 * 1024;
pub const ACCESS_KEY: &str = "layotto";
pub const SECRET_KEY: &str = "layotto-secret";

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Op {
    Put,
    Get,
}

pub struct Run {
    /// The S3 server (also what the runtime's component points at).
    pub endpoint: String,
    /// The runtime; with none, aws-sdk-s3 calls the server directly.
    pub target: Option<String>,
    pub store: String,
    pub op: Op,
    pub size: usize,
    pub count: usize,
    pub concurrency: usize,
}

fn s3_client(endpoint: &str) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            ACCESS_KEY, SECRET_KEY, None, None, "bench",
        ))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

enum Client {
    Runtime(ObjectStorageServiceClient<Channel>, String),
    Direct(aws_sdk_s3::Client),
}

impl Client {
    async fn put(&mut self, bucket: &str, key: &str, data: &Bytes) -> Result<()> {
        match self {
            Client::Runtime(client, store) => {
                let (store, bucket, key) = (store.clone(), bucket.to_owned(), key.to_owned());
                let data = data.clone();
                let chunks = (0..data.len().div_ceil(CHUNK).max(1)).map(move |i| {
                    let body = data.slice(i * CHUNK..((i + 1) * CHUNK).min(data.len())).to_vec();
                    if i == 0 {
                        pb::PutObjectInput {
                            store_name: store.clone(),
                            bucket: bucket.clone(),
                            key: key.clone(),
                            body,
                            ..Default::default()
                        }
                    } else {
                        pb::PutObjectInput { body, ..Default::default() }
                    }
                });
                client.put_object(tokio_stream::iter(chunks)).await?;
            }
            Client::Direct(client) => {
                client
                    .put_object()
                    .bucket(bucket)
                    .key(key)
                    .body(ByteStream::from(data.clone()))
                    .send()
                    .await?;
            }
        }
        Ok(())
    }

    async fn get(&mut self, bucket: &str, key: &str) -> Result<usize> {
        let mut read = 0;
        match self {
            Client::Runtime(client, store) => {
                let request = pb::GetObjectInput {
                    store_name: store.clone(),
                    bucket: bucket.to_owned(),
                    key: key.to_owned(),
                    ..Default::default()
                };
                let mut stream = client.get_object(request).await?.into_inner();
                while let Some(chunk) = stream.next().await {
                    read += chunk?.body.len();
                }
            }
            Client::Direct(client) => {
                let mut body = client.get_object().bucket(bucket).key(key).send().await?.body;
                while let Some(chunk) = body.next().await {
                    read += chunk?.len();
                }
            }
        }
        Ok(read)
    }
}

pub async fn load(run: Run) -> Result<Report> {
    let direct = s3_client(&run.endpoint);
    let bucket = format!("bench-{}-{}", std::process::id(), run.size);
    direct.create_bucket().bucket(&bucket).send().await.context("creating the bench bucket")?;
    let data = Bytes::from((0..run.size).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    let keys: Vec<String> = (0..run.count).map(|i| format!("object-{i}")).collect();
    if let Op::Get = run.op {
        for key in &keys {
            direct.put_object().bucket(&bucket).key(key).body(ByteStream::from(data.clone())).send().await?;
        }
    }

    let channel = match &run.target {
        Some(target) => Some(
            Endpoint::from_shared(target.clone())?
                .tcp_nodelay(true)
                .timeout(Duration::from_secs(600))
                .connect()
                .await
                .with_context(|| format!("cannot connect to {target}"))?,
        ),
        None => None,
    };
    let make_client = || match &channel {
        Some(channel) => Client::Runtime(
            ObjectStorageServiceClient::new(channel.clone())
                .max_decoding_message_size(64 * 1024 * 1024)
                .max_encoding_message_size(64 * 1024 * 1024),
            run.store.clone(),
        ),
        None => Client::Direct(direct.clone()),
    };

    let queue = Arc::new(parking_lot::Mutex::new(keys.clone()));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..run.concurrency.max(1) {
        let (queue, bucket, data) = (queue.clone(), bucket.clone(), data.clone());
        let mut client = make_client();
        let op = run.op;
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            loop {
                let Some(key) = queue.lock().pop() else { break };
                let t = Instant::now();
                let outcome = match op {
                    Op::Put => client.put(&bucket, &key, &data).await,
                    Op::Get => match client.get(&bucket, &key).await {
                        Ok(n) if n == data.len() => Ok(()),
                        Ok(n) => Err(anyhow::anyhow!("{key}: read {n} bytes of {}", data.len())),
                        Err(e) => Err(e),
                    },
                };
                match outcome {
                    Ok(()) => latencies.push(t.elapsed()),
                    Err(e) => {
                        eprintln!("oss-load: {e:#}");
                        errors += 1;
                    }
                }
            }
            (latencies, errors)
        }));
    }
    let mut hist = histogram()?;
    let mut errors = 0;
    for task in tasks {
        let (latencies, task_errors) = task.await?;
        errors += task_errors;
        for latency in latencies {
            hist.saturating_record(latency.as_nanos().max(1) as u64);
        }
    }
    let elapsed = started.elapsed().as_secs_f64();

    // Leave the server's disk as it was.
    for key in &keys {
        let _ = direct.delete_object().bucket(&bucket).key(key).send().await;
    }
    let _ = direct.delete_bucket().bucket(&bucket).send().await;
    if hist.is_empty() {
        bail!("no object went through ({errors} errors)");
    }
    let moved = hist.len() as f64 * run.size as f64;
    Ok(Report {
        ops_per_sec: moved / elapsed / (1024.0 * 1024.0),
        p50_us: hist.value_at_quantile(0.5) as f64 / 1000.0,
        p99_us: hist.value_at_quantile(0.99) as f64 / 1000.0,
        ops: hist.len(),
        errors,
    })
}
