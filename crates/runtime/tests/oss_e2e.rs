//! ObjectStorageService and the File API over gRPC, on the embedded local
//! store and on an S3 server (s3s-fs at `LAYOTTO_TEST_S3`, which the test
//! command starts).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::time::Duration;

use layotto_grpc::pb::runtime as rt;
use layotto_grpc::pb::runtime::runtime_client::RuntimeClient;
use layotto_grpc::pb::s3 as pb;
use layotto_grpc::pb::s3::object_storage_service_client::ObjectStorageServiceClient;
use layotto_runtime::{ComponentConfig, Config, Registries, Running};
use sha2::{Digest, Sha256};
use tokio_stream::StreamExt;
use tonic::Code;
use tonic::transport::Channel;

type Oss = ObjectStorageServiceClient<Channel>;

fn s3_endpoint() -> String {
    std::env::var("LAYOTTO_TEST_S3").unwrap_or_else(|_| "http://127.0.0.1:9000".to_owned())
}

fn bucket() -> String {
    format!("e2e-{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

async fn start(config: Config) -> (Running, Channel) {
    let running = layotto_runtime::start(config, Registries::builtin()).await.expect("runtime starts");
    let channel =
        Channel::from_shared(format!("http://{}", running.grpc_addr())).unwrap().connect().await.unwrap();
    (running, channel)
}

fn config(oss_root: &std::path::Path) -> Config {
    let mut config = Config::embedded_defaults();
    config.server.grpc = "127.0.0.1:0".parse().unwrap();
    config.server.actuator = "127.0.0.1:0".parse().unwrap();
    config
        .section_mut("oss")
        .insert("oss_demo".into(), ComponentConfig::new("local").with("root", oss_root.to_str().unwrap()));
    config
        .section_mut("file")
        .insert("file_demo".into(), ComponentConfig::new("local").with("root", oss_root.to_str().unwrap()));
    config
}

/// PutObject in `chunk`-sized messages.
async fn put(
    oss: &mut Oss,
    store: &str,
    bucket: &str,
    key: &str,
    data: &[u8],
    chunk: usize,
) -> Result<pb::PutObjectOutput, tonic::Status> {
    let mut messages = Vec::new();
    for (i, part) in data.chunks(chunk.max(1)).enumerate() {
        let mut m = pb::PutObjectInput { body: part.to_vec(), ..Default::default() };
        if i == 0 {
            m.store_name = store.into();
            m.bucket = bucket.into();
            m.key = key.into();
            m.meta = HashMap::from([("owner".to_owned(), "eva".to_owned())]);
        }
        messages.push(m);
    }
    if messages.is_empty() {
        messages.push(pb::PutObjectInput {
            store_name: store.into(),
            bucket: bucket.into(),
            key: key.into(),
            ..Default::default()
        });
    }
    oss.put_object(tokio_stream::iter(messages)).await.map(|r| r.into_inner())
}

async fn get(oss: &mut Oss, store: &str, bucket: &str, key: &str) -> Result<Vec<u8>, tonic::Status> {
    let req = pb::GetObjectInput {
        store_name: store.into(),
        bucket: bucket.into(),
        key: key.into(),
        ..Default::default()
    };
    let mut stream = oss.get_object(req).await?.into_inner();
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        assert!(chunk.body.len() <= 1024 * 1024, "chunks are at most 1 MiB");
        out.extend_from_slice(&chunk.body);
    }
    Ok(out)
}

/// Every rpc a store serves, through the gRPC service.
async fn object_round_trip(oss: &mut Oss, store: &str, bucket: &str) {
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let written = put(oss, store, bucket, "dir/ü data.bin", &data, 64 * 1024).await.unwrap();
    assert!(!written.etag.is_empty());
    assert_eq!(get(oss, store, bucket, "dir/ü data.bin").await.unwrap(), data);
    let head = oss
        .head_object(pb::HeadObjectInput {
            store_name: store.into(),
            bucket: bucket.into(),
            key: "dir/ü data.bin".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(head.result_metadata["Content-Length"], "3000000");
    assert_eq!(head.result_metadata["x-amz-meta-owner"], "eva");
    let exists = |key: &str| pb::IsObjectExistInput {
        store_name: store.into(),
        bucket: bucket.into(),
        key: key.into(),
        ..Default::default()
    };
    assert!(oss.is_object_exist(exists("dir/ü data.bin")).await.unwrap().into_inner().file_exist);
    assert!(!oss.is_object_exist(exists("nope")).await.unwrap().into_inner().file_exist);

    let copy = pb::CopyObjectInput {
        store_name: store.into(),
        bucket: bucket.into(),
        key: "copy".into(),
        copy_source: Some(pb::CopySource {
            copy_source_bucket: bucket.into(),
            copy_source_key: "dir/ü data.bin".into(),
            copy_source_version_id: String::new(),
        }),
        ..Default::default()
    };
    oss.copy_object(copy).await.unwrap();
    let listing = oss
        .list_objects(pb::ListObjectsInput {
            store_name: store.into(),
            bucket: bucket.into(),
            delimiter: "/".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listing.common_prefixes, vec!["dir/".to_owned()]);
    assert_eq!(listing.contents.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(), vec!["copy"]);
    assert_eq!(listing.contents[0].size, 3_000_000);

    // Multipart: a 6 MiB part and a small last one.
    let created = oss
        .create_multipart_upload(pb::CreateMultipartUploadInput {
            store_name: store.into(),
            bucket: bucket.into(),
            key: "multi".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let part = |n: i32, body: Vec<u8>| {
        let chunks: Vec<pb::UploadPartInput> = body
            .chunks(1024 * 1024)
            .enumerate()
            .map(|(i, c)| pb::UploadPartInput {
                store_name: if i == 0 { store.into() } else { String::new() },
                bucket: bucket.into(),
                key: "multi".into(),
                upload_id: created.upload_id.clone(),
                part_number: n,
                content_length: body.len() as i64,
                body: c.to_vec(),
                ..Default::default()
            })
            .collect();
        tokio_stream::iter(chunks)
    };
    let one = oss.upload_part(part(1, vec![7u8; 6 * 1024 * 1024])).await.unwrap().into_inner().etag;
    let two = oss.upload_part(part(2, b"last".to_vec())).await.unwrap().into_inner().etag;
    let parts = oss
        .list_parts(pb::ListPartsInput {
            store_name: store.into(),
            bucket: bucket.into(),
            key: "multi".into(),
            upload_id: created.upload_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(parts.parts.len(), 2);
    oss.complete_multipart_upload(pb::CompleteMultipartUploadInput {
        store_name: store.into(),
        bucket: bucket.into(),
        key: "multi".into(),
        upload_id: created.upload_id.clone(),
        multipart_upload: Some(pb::CompletedMultipartUpload {
            parts: vec![
                pb::CompletedPart { etag: one, part_number: 1 },
                pb::CompletedPart { etag: two, part_number: 2 },
            ],
        }),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(get(oss, store, bucket, "multi").await.unwrap().len(), 6 * 1024 * 1024 + 4);

    let deleted = oss
        .delete_objects(pb::DeleteObjectsInput {
            store_name: store.into(),
            bucket: bucket.into(),
            delete: Some(pb::Delete {
                objects: vec![
                    pb::ObjectIdentifier { key: "copy".into(), version_id: String::new() },
                    pb::ObjectIdentifier { key: "multi".into(), version_id: String::new() },
                ],
                quiet: false,
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(deleted.deleted.len(), 2);
    let err = get(oss, store, bucket, "copy").await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{}", err.message());
    assert!(err.message().contains("copy") && err.message().contains(bucket), "{}", err.message());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_on_the_embedded_local_store() {
    let root = tempfile::tempdir().unwrap();
    let (running, channel) = start(config(root.path())).await;
    let mut oss = Oss::new(channel);
    object_round_trip(&mut oss, "oss_demo", &bucket()).await;

    // Tags, canned ACLs and appends, which the local store keeps.
    let b = bucket();
    put(&mut oss, "oss_demo", &b, "t", b"x", 10).await.unwrap();
    oss.put_object_tagging(pb::PutObjectTaggingInput {
        store_name: "oss_demo".into(),
        bucket: b.clone(),
        key: "t".into(),
        tags: HashMap::from([("env".to_owned(), "prod".to_owned())]),
        version_id: String::new(),
    })
    .await
    .unwrap();
    let tags = oss
        .get_object_tagging(pb::GetObjectTaggingInput {
            store_name: "oss_demo".into(),
            bucket: b.clone(),
            key: "t".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .tags;
    assert_eq!(tags["env"], "prod");
    oss.put_object_canned_acl(pb::PutObjectCannedAclInput {
        store_name: "oss_demo".into(),
        bucket: b.clone(),
        key: "t".into(),
        acl: "public-read".into(),
        version_id: String::new(),
    })
    .await
    .unwrap();
    let acl = oss
        .get_object_canned_acl(pb::GetObjectCannedAclInput {
            store_name: "oss_demo".into(),
            bucket: b.clone(),
            key: "t".into(),
            version_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .canned_acl;
    assert_eq!(acl, "public-read");
    let append = |position: i64, body: &[u8]| {
        tokio_stream::iter(vec![pb::AppendObjectInput {
            store_name: "oss_demo".into(),
            bucket: b.clone(),
            key: "log".into(),
            position,
            body: body.to_vec(),
            ..Default::default()
        }])
    };
    assert_eq!(oss.append_object(append(0, b"ab")).await.unwrap().into_inner().append_position, 2);
    assert_eq!(oss.append_object(append(2, b"cd")).await.unwrap().into_inner().append_position, 4);

    // Bad input says what is wrong.
    let err = put(&mut oss, "nope", &b, "k", b"x", 10).await.unwrap_err();
    assert_eq!((err.code(), err.message()), (Code::InvalidArgument, "not supported store type: nope"));
    let err = put(&mut oss, "oss_demo", "", "k", b"x", 10).await.unwrap_err();
    assert!(err.code() == Code::InvalidArgument && err.message().contains("bucket"), "{}", err.message());
    let err = put(&mut oss, "oss_demo", &b, "../../etc/passwd", b"x", 10).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("../../etc/passwd"), "{}", err.message());
    let sign = pb::SignUrlInput {
        store_name: "oss_demo".into(),
        bucket: b.clone(),
        key: "t".into(),
        method: "GET".into(),
        expired_in_sec: 60,
    };
    let err = oss.sign_url(sign).await.unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented);
    assert!(err.message().contains("SignURL"), "{}", err.message());
    let restore = pb::RestoreObjectInput {
        store_name: "oss_demo".into(),
        bucket: b.clone(),
        key: "t".into(),
        ..Default::default()
    };
    assert_eq!(oss.restore_object(restore).await.unwrap_err().code(), Code::Unimplemented);
    running.shutdown().await;
}

/// A client that cancels PutObject midway leaves no object behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_put_leaves_nothing_visible() {
    let root = tempfile::tempdir().unwrap();
    let (running, channel) = start(config(root.path())).await;
    let mut oss = Oss::new(channel);
    let b = bucket();
    // The client lives on a runtime of its own, dropped midway: its
    // connection closes as a crashed app's would, the body never finished.
    let addr = running.grpc_addr();
    let bucket_name = b.clone();
    std::thread::spawn(move || {
        let client_runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let unfinished = client_runtime.block_on(async move {
            let channel = Channel::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap();
            let first = pb::PutObjectInput {
                store_name: "oss_demo".into(),
                bucket: bucket_name,
                key: "half".into(),
                body: vec![1; 1024 * 1024],
                ..Default::default()
            };
            tx.send(first).await.unwrap();
            tokio::spawn(async move {
                Oss::new(channel).put_object(tokio_stream::wrappers::ReceiverStream::new(rx)).await
            });
            tokio::time::sleep(Duration::from_millis(300)).await;
            tx
        });
        drop(client_runtime);
        drop(unfinished);
    })
    .join()
    .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let exists = pb::IsObjectExistInput {
        store_name: "oss_demo".into(),
        bucket: b.clone(),
        key: "half".into(),
        ..Default::default()
    };
    assert!(!oss.is_object_exist(exists).await.unwrap().into_inner().file_exist);
    assert_eq!(
        std::fs::read_dir(root.path().join(".layotto/tmp")).unwrap().count(),
        0,
        "no temporary file left"
    );
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_on_an_s3_server() {
    let root = tempfile::tempdir().unwrap();
    let mut config = config(root.path());
    config.section_mut("oss").insert(
        "s3".into(),
        ComponentConfig::new("aws.s3")
            .with("endpoint", &s3_endpoint())
            .with("accessKeyID", "layotto")
            .with("accessKeySecret", "layotto-secret"),
    );
    let (running, channel) = start(config).await;
    let b = bucket();
    create_bucket(&b).await;
    let mut oss = Oss::new(channel);
    object_round_trip(&mut oss, "s3", &b).await;

    // A presigned URL a plain HTTP client can use.
    let signed = |method: &str| pb::SignUrlInput {
        store_name: "s3".into(),
        bucket: b.clone(),
        key: "signed".into(),
        method: method.into(),
        expired_in_sec: 300,
    };
    let put_url = oss.sign_url(signed("PUT")).await.unwrap().into_inner().signed_url;
    assert!(reqwest::Client::new().put(&put_url).body("hi").send().await.unwrap().status().is_success());
    let get_url = oss.sign_url(signed("GET")).await.unwrap().into_inner().signed_url;
    assert_eq!(reqwest::get(&get_url).await.unwrap().text().await.unwrap(), "hi");
    let append = tokio_stream::iter(vec![pb::AppendObjectInput {
        store_name: "s3".into(),
        bucket: b.clone(),
        key: "a".into(),
        body: b"x".to_vec(),
        ..Default::default()
    }]);
    let err = oss.append_object(append).await.unwrap_err();
    assert!(err.code() == Code::Unimplemented && err.message().contains("appended"), "{}", err.message());
    running.shutdown().await;
}

#[tokio::test]
async fn an_s3_server_that_refuses_or_is_down_stops_startup_naming_it() {
    let root = tempfile::tempdir().unwrap();
    for (endpoint, secret, words) in [
        (s3_endpoint(), "wrong", "InvalidAccessKeyId|SignatureDoesNotMatch"),
        ("http://127.0.0.1:1".to_owned(), "layotto-secret", "127.0.0.1:1"),
    ] {
        let mut config = config(root.path());
        config.section_mut("oss").insert(
            "s3".into(),
            ComponentConfig::new("aws.s3")
                .with("endpoint", &endpoint)
                .with("accessKeyID", "layotto")
                .with("accessKeySecret", secret)
                .with("maxAttempts", "1"),
        );
        let err = layotto_runtime::start(config, Registries::builtin()).await.err().unwrap().to_string();
        assert!(err.contains("oss component 's3'"), "{err}");
        assert!(words.split('|').any(|w| err.contains(w)), "{err}");
        assert!(!err.contains("wrong"), "the secret is not in the message: {err}");
    }
}

async fn create_bucket(bucket: &str) {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "layotto",
            "layotto-secret",
            None,
            None,
            "test",
        ))
        .endpoint_url(s3_endpoint())
        .force_path_style(true)
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .build();
    aws_sdk_s3::Client::from_conf(config).create_bucket().bucket(bucket).send().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_file_api_on_the_local_store() {
    let root = tempfile::tempdir().unwrap();
    let (running, channel) = start(config(root.path())).await;
    file_round_trip(RuntimeClient::new(channel), "file_demo", "docs").await;
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_file_api_on_an_s3_server() {
    let root = tempfile::tempdir().unwrap();
    let mut config = config(root.path());
    config.section_mut("file").insert(
        "s3files".into(),
        ComponentConfig::new("aws.s3")
            .with("endpoint", &s3_endpoint())
            .with("accessKeyID", "layotto")
            .with("accessKeySecret", "layotto-secret"),
    );
    let (running, channel) = start(config).await;
    let b = bucket();
    create_bucket(&b).await;
    file_round_trip(RuntimeClient::new(channel), "s3files", &b).await;
    running.shutdown().await;
}

/// The File API names a file `<bucket>/<key>`.
async fn file_round_trip(mut c: RuntimeClient<Channel>, store: &str, bucket: &str) {
    let data: Vec<u8> = (0..350_000u32).map(|i| (i % 7) as u8).collect();
    let report = format!("{bucket}/reports/q1.bin");
    let messages: Vec<rt::PutFileRequest> = data
        .chunks(100_000)
        .enumerate()
        .map(|(i, chunk)| rt::PutFileRequest {
            store_name: if i == 0 { store.into() } else { String::new() },
            name: if i == 0 { report.clone() } else { String::new() },
            data: chunk.to_vec(),
            metadata: HashMap::new(),
        })
        .collect();
    c.put_file(tokio_stream::iter(messages)).await.unwrap();
    let mut stream = c
        .get_file(rt::GetFileRequest {
            store_name: store.into(),
            name: report.clone(),
            metadata: HashMap::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut got = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        assert!(chunk.data.len() <= 100 * 1024);
        got.extend_from_slice(&chunk.data);
    }
    assert_eq!(Sha256::digest(&got), Sha256::digest(&data));
    let file = |name: &str| {
        Some(rt::FileRequest {
            store_name: store.into(),
            name: format!("{bucket}/{name}"),
            metadata: HashMap::new(),
        })
    };
    let meta = c
        .get_file_meta(rt::GetFileMetaRequest { request: file("reports/q1.bin") })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(meta.size, 350_000);
    assert!(meta.last_modified.ends_with('Z'), "{}", meta.last_modified);
    for n in 0..3 {
        let put = rt::PutFileRequest {
            store_name: store.into(),
            name: format!("{bucket}/page/{n}"),
            data: vec![n],
            metadata: HashMap::new(),
        };
        c.put_file(tokio_stream::iter(vec![put])).await.unwrap();
    }
    let page = c
        .list_file(rt::ListFileRequest { request: file("page/"), page_size: 2, marker: String::new() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.files.iter().map(|f| f.file_name.as_str()).collect::<Vec<_>>(), vec!["page/0", "page/1"]);
    assert!(page.is_truncated);
    let rest = c
        .list_file(rt::ListFileRequest { request: file("page/"), page_size: 2, marker: page.marker })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rest.files.iter().map(|f| f.file_name.as_str()).collect::<Vec<_>>(), vec!["page/2"]);
    assert!(!rest.is_truncated);
    c.del_file(rt::DelFileRequest { request: file("page/0") }).await.unwrap();
    let err = c.get_file_meta(rt::GetFileMetaRequest { request: file("page/0") }).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{}", err.message());
    let err = c
        .get_file(rt::GetFileRequest {
            store_name: store.into(),
            name: format!("{bucket}/none"),
            metadata: HashMap::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{}", err.message());
    let err = c
        .get_file(rt::GetFileRequest {
            store_name: "nope".into(),
            name: "a/b".into(),
            metadata: HashMap::new(),
        })
        .await
        .unwrap_err();
    assert_eq!((err.code(), err.message()), (Code::InvalidArgument, "not supported store type: nope"));
    let no_bucket =
        rt::FileRequest { store_name: store.into(), name: "no-bucket-part".into(), metadata: HashMap::new() };
    let err = c.del_file(rt::DelFileRequest { request: Some(no_bucket) }).await.unwrap_err();
    assert!(
        err.code() == Code::InvalidArgument && err.message().contains("<bucket>/<key>"),
        "{}",
        err.message()
    );
}
