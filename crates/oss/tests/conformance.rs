//! The object storage conformance suite: every case on `local` (a temporary
//! directory) and on a real S3-compatible server at `LAYOTTO_TEST_S3`
//! (default http://127.0.0.1:9000, access key `layotto`, secret
//! `layotto-secret`; the test command installs and starts s3s-fs there).
//! Each case has a bucket of its own. A case that needs what a component
//! lacks (presigned URLs on a directory, appends on S3) is reported as
//! skipped by name.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use futures::future::BoxFuture;
use layotto_core::{ComponentContext, ErrorKind, Metadata};
use layotto_oss::components::local::LocalStore;
use layotto_oss::{ByteStream, CopyObject, GetObject, ListObjects, ObjectStore, PutObject};
use sha2::{Digest, Sha256};

struct Subject {
    store: Arc<dyn ObjectStore>,
    bucket: String,
    _dir: Option<tempfile::TempDir>,
}

fn bucket() -> String {
    format!("conf-{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

fn body(chunks: Vec<Vec<u8>>) -> ByteStream {
    futures::stream::iter(chunks.into_iter().map(|c| Ok(Bytes::from(c)))).boxed()
}

/// A deterministic body of `size` bytes, sent in 256 KiB chunks, and its SHA-256.
fn pattern(size: usize) -> (ByteStream, Vec<u8>) {
    let data: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
    let digest = Sha256::digest(&data).to_vec();
    let chunks: Vec<Vec<u8>> = data.chunks(256 * 1024).map(<[u8]>::to_vec).collect();
    (body(chunks), digest)
}

async fn read_all(mut stream: ByteStream) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    out
}

fn put(bucket: &str, key: &str) -> PutObject {
    PutObject { bucket: bucket.into(), key: key.into(), ..Default::default() }
}

async fn put_bytes(s: &Subject, key: &str, data: &[u8]) {
    s.store.put_object(put(&s.bucket, key), body(vec![data.to_vec()])).await.unwrap();
}

async fn get_bytes(s: &Subject, key: &str) -> Vec<u8> {
    let (_, stream) = s
        .store
        .get_object(GetObject { bucket: s.bucket.clone(), key: key.into(), ..Default::default() })
        .await
        .unwrap();
    read_all(stream).await
}

fn local() -> BoxFuture<'static, Subject> {
    Box::pin(async {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(LocalStore::new("conf", dir.path()).unwrap());
        Subject { store, bucket: bucket(), _dir: Some(dir) }
    })
}

layotto_testkit::conformance! {
    subject: Subject;
    components {
        local: local(), ["append", "acl", "tagging", "versions", "list_uploads"];
        // s3s-fs, the S3 server here, does not implement object tagging,
        // ListObjectVersions nor ListMultipartUploads (it answers NotImplemented, which the component
        // passes on as UNIMPLEMENTED: `s3_backend::what_the_server_lacks_is_unimplemented`).
        #[cfg(feature = "s3")]
        s3: s3_backend::subject(), ["sign_url"];
    }
    cases {
        async fn put_get_head_and_delete(s) {
            let mut req = put(&s.bucket, "docs/readme.txt");
            req.content_type = "text/plain".into();
            req.metadata = BTreeMap::from([("owner".to_owned(), "eva".to_owned())]);
            let written = s.store.put_object(req, body(vec![b"hello ".to_vec(), b"world".to_vec()])).await.unwrap();
            assert!(!written.etag.is_empty());
            assert_eq!(get_bytes(&s, "docs/readme.txt").await, b"hello world");
            let head = s.store.head_object(&s.bucket, "docs/readme.txt", "").await.unwrap();
            assert_eq!(head.size, 11);
            assert_eq!(head.content_type, "text/plain");
            assert_eq!(head.metadata["owner"], "eva");
            assert_eq!(head.etag, written.etag);
            assert!(head.last_modified > 1_600_000_000);
            s.store.delete_object(&s.bucket, "docs/readme.txt", "").await.unwrap();
            let err = s.store.head_object(&s.bucket, "docs/readme.txt", "").await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
            let err = s.store
                .get_object(GetObject { bucket: s.bucket.clone(), key: "docs/readme.txt".into(), ..Default::default() })
                .await
                .err()
                .unwrap();
            assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
            assert!(err.to_string().contains("readme.txt"), "{err}");
        }

        async fn empty_objects_and_unicode_slash_heavy_keys(s) {
            for key in ["empty", "a/b/c/d/e/f.bin", "sp ace/plus+percent%/ü € 测试.txt", "dots.in.name"] {
                put_bytes(&s, key, key.as_bytes()).await;
                assert_eq!(get_bytes(&s, key).await, key.as_bytes(), "{key}");
            }
            s.store.put_object(put(&s.bucket, "zero"), body(vec![])).await.unwrap();
            assert!(get_bytes(&s, "zero").await.is_empty());
            assert_eq!(s.store.head_object(&s.bucket, "zero", "").await.unwrap().size, 0);
        }

        async fn ranges(s) {
            put_bytes(&s, "r", b"0123456789").await;
            let (meta, stream) = s.store
                .get_object(GetObject { bucket: s.bucket.clone(), key: "r".into(), range: Some((2, Some(5))), ..Default::default() })
                .await
                .unwrap();
            assert_eq!(read_all(stream).await, b"2345");
            assert_eq!(meta.content_length, 4);
            assert_eq!(meta.content_range, "bytes 2-5/10");
        }

        async fn listing_pages_over_2500_keys_and_groups_by_delimiter(s) {
            let keys: Vec<String> = (0..2500).map(|i| format!("many/{i:05}")).collect();
            let store = s.store.clone();
            let bucket = s.bucket.clone();
            futures::stream::iter(keys.clone())
                .for_each_concurrent(16, |key| {
                    let (store, bucket) = (store.clone(), bucket.clone());
                    async move {
                        store.put_object(put(&bucket, &key), body(vec![b"x".to_vec()])).await.unwrap();
                    }
                })
                .await;
            put_bytes(&s, "other/a", b"a").await;
            put_bytes(&s, "top", b"t").await;
            let mut seen = Vec::new();
            let mut marker = String::new();
            let mut pages = 0;
            loop {
                let page = s.store
                    .list_objects(ListObjects { bucket: s.bucket.clone(), prefix: "many/".into(), marker: marker.clone(), max_keys: 1000, ..Default::default() })
                    .await
                    .unwrap();
                pages += 1;
                seen.extend(page.contents.iter().map(|o| o.key.clone()));
                if !page.is_truncated {
                    break;
                }
                marker = page.next_marker.clone();
                assert!(!marker.is_empty());
            }
            assert_eq!(pages, 3);
            assert_eq!(seen, keys);
            let grouped = s.store
                .list_objects(ListObjects { bucket: s.bucket.clone(), delimiter: "/".into(), ..Default::default() })
                .await
                .unwrap();
            assert_eq!(grouped.common_prefixes, vec!["many/".to_owned(), "other/".to_owned()]);
            assert_eq!(grouped.contents.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(), vec!["top"]);
        }

        async fn copy_and_delete_many(s) {
            let mut req = put(&s.bucket, "src");
            req.metadata = BTreeMap::from([("m".to_owned(), "1".to_owned())]);
            s.store.put_object(req, body(vec![b"payload".to_vec()])).await.unwrap();
            let copy = |key: &str, directive: &str| CopyObject {
                bucket: s.bucket.clone(),
                key: key.into(),
                source_bucket: s.bucket.clone(),
                source_key: "src".into(),
                metadata_directive: directive.into(),
                metadata: BTreeMap::from([("m".to_owned(), "2".to_owned())]),
                ..Default::default()
            };
            s.store.copy_object(copy("kept", "COPY")).await.unwrap();
            s.store.copy_object(copy("dir/ü copy", "REPLACE")).await.unwrap();
            assert_eq!(get_bytes(&s, "kept").await, b"payload");
            assert_eq!(s.store.head_object(&s.bucket, "kept", "").await.unwrap().metadata["m"], "1");
            assert_eq!(s.store.head_object(&s.bucket, "dir/ü copy", "").await.unwrap().metadata["m"], "2");
            let deleted = s.store
                .delete_objects(&s.bucket, vec![("kept".into(), String::new()), ("dir/ü copy".into(), String::new()), ("never-was".into(), String::new())])
                .await
                .unwrap();
            assert_eq!(deleted.len(), 3, "{deleted:?}");
            let listing = s.store.list_objects(ListObjects { bucket: s.bucket.clone(), ..Default::default() }).await.unwrap();
            assert_eq!(listing.contents.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(), vec!["src"]);
        }

        #[needs("tagging")]
        async fn tags(s) {
            put_bytes(&s, "t", b"x").await;
            let tags = BTreeMap::from([("env".to_owned(), "prod".to_owned()), ("team".to_owned(), "pay".to_owned())]);
            s.store.put_tagging(&s.bucket, "t", "", tags.clone()).await.unwrap();
            assert_eq!(s.store.get_tagging(&s.bucket, "t", "").await.unwrap(), tags);
            s.store.delete_tagging(&s.bucket, "t", "").await.unwrap();
            assert!(s.store.get_tagging(&s.bucket, "t", "").await.unwrap().is_empty());
            let err = s.store.get_tagging(&s.bucket, "missing", "").await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
        }

        #[needs("acl")]
        async fn canned_acls(s) {
            put_bytes(&s, "a", b"x").await;
            assert_eq!(s.store.get_acl(&s.bucket, "a").await.unwrap(), "private");
            s.store.put_acl(&s.bucket, "a", "public-read").await.unwrap();
            assert_eq!(s.store.get_acl(&s.bucket, "a").await.unwrap(), "public-read");
            assert_eq!(s.store.put_acl(&s.bucket, "a", "everyone").await.unwrap_err().kind(), ErrorKind::InvalidArgument);
        }

        async fn multipart_with_a_part_over_5_mib(s) {
            let id = s.store.create_multipart(put(&s.bucket, "big")).await.unwrap();
            let (first, _) = pattern(6 * 1024 * 1024);
            let etag1 = s.store.upload_part(&s.bucket, "big", &id, 1, 6 * 1024 * 1024, first).await.unwrap();
            let etag2 = s.store.upload_part(&s.bucket, "big", &id, 2, 3, body(vec![b"end".to_vec()])).await.unwrap();
            let parts = s.store.list_parts(&s.bucket, "big", &id, 0, 0).await.unwrap();
            assert_eq!(parts.parts.iter().map(|p| p.part_number).collect::<Vec<_>>(), vec![1, 2]);
            assert_eq!(parts.parts[0].size, 6 * 1024 * 1024);
            s.store.complete_multipart(&s.bucket, "big", &id, vec![(1, etag1), (2, etag2)]).await.unwrap();
            let data = get_bytes(&s, "big").await;
            assert_eq!(data.len(), 6 * 1024 * 1024 + 3);
            assert_eq!(&data[data.len() - 3..], b"end");

            let aborted = s.store.create_multipart(put(&s.bucket, "gone")).await.unwrap();
            s.store.upload_part(&s.bucket, "gone", &aborted, 1, 1, body(vec![b"x".to_vec()])).await.unwrap();
            s.store.abort_multipart(&s.bucket, "gone", &aborted).await.unwrap();
            // An aborted upload is gone: NoSuchUpload, or (s3s-fs) no parts.
            match s.store.list_parts(&s.bucket, "gone", &aborted, 0, 0).await {
                Err(e) => assert_eq!(e.kind(), ErrorKind::NotFound, "{e}"),
                Ok(parts) => assert!(parts.parts.is_empty(), "{parts:?}"),
            }
            assert_eq!(s.store.head_object(&s.bucket, "gone", "").await.unwrap_err().kind(), ErrorKind::NotFound);
        }

        #[needs("list_uploads")]
        async fn uploads_in_progress_are_listed(s) {
            let first = s.store.create_multipart(put(&s.bucket, "a/one")).await.unwrap();
            let second = s.store.create_multipart(put(&s.bucket, "b/two")).await.unwrap();
            let uploads = s.store.list_uploads(&s.bucket, "", "", "", 0).await.unwrap();
            let ids: Vec<&str> = uploads.uploads.iter().map(|u| u.upload_id.as_str()).collect();
            assert!(ids.contains(&first.as_str()) && ids.contains(&second.as_str()), "{uploads:?}");
            let under_a = s.store.list_uploads(&s.bucket, "a/", "", "", 0).await.unwrap();
            assert_eq!(under_a.uploads.iter().map(|u| u.key.as_str()).collect::<Vec<_>>(), vec!["a/one"]);
            s.store.abort_multipart(&s.bucket, "a/one", &first).await.unwrap();
            let uploads = s.store.list_uploads(&s.bucket, "", "", "", 0).await.unwrap();
            assert!(!uploads.uploads.iter().any(|u| u.upload_id == first), "an aborted upload is not listed");
        }

        async fn upload_part_copy(s) {
            let (data, _) = pattern(6 * 1024 * 1024);
            s.store.put_object(put(&s.bucket, "source"), data).await.unwrap();
            let id = s.store.create_multipart(put(&s.bucket, "assembled")).await.unwrap();
            let etag1 = s.store
                .upload_part_copy(&s.bucket, "assembled", &id, 1, (&s.bucket, "source", ""), Some((0, 5 * 1024 * 1024 - 1)))
                .await
                .unwrap();
            let etag2 = s.store.upload_part(&s.bucket, "assembled", &id, 2, 4, body(vec![b"tail".to_vec()])).await.unwrap();
            s.store.complete_multipart(&s.bucket, "assembled", &id, vec![(1, etag1), (2, etag2)]).await.unwrap();
            let got = get_bytes(&s, "assembled").await;
            assert_eq!(got.len(), 5 * 1024 * 1024 + 4);
            assert_eq!(&got[..16], &get_bytes(&s, "source").await[..16]);
        }

        async fn a_streamed_body_larger_than_a_part_round_trips(s) {
            let size = 20 * 1024 * 1024 + 123;
            let (data, digest) = pattern(size);
            s.store.put_object(put(&s.bucket, "stream"), data).await.unwrap();
            let (meta, stream) = s.store
                .get_object(GetObject { bucket: s.bucket.clone(), key: "stream".into(), ..Default::default() })
                .await
                .unwrap();
            assert_eq!(meta.content_length, size as i64);
            let mut sha = Sha256::new();
            let mut stream = stream;
            while let Some(chunk) = stream.next().await {
                sha.update(chunk.unwrap());
            }
            assert_eq!(sha.finalize().to_vec(), digest);
        }

        #[needs("versions")]
        async fn versions_are_listed(s) {
            put_bytes(&s, "v", b"1").await;
            let versions = s.store.list_versions(ListObjects { bucket: s.bucket.clone(), ..Default::default() }, "").await.unwrap();
            assert!(versions.versions.iter().any(|v| v.key == "v" && v.is_latest), "{versions:?}");
        }

        #[needs("sign_url")]
        async fn presigned_urls_work_with_a_plain_http_client(s) {
            let put_url = s.store.sign_url(&s.bucket, "signed", "PUT", 300).await.unwrap();
            let http = reqwest::Client::new();
            let status = http.put(&put_url).body("through a signed URL").send().await.unwrap().status();
            assert!(status.is_success(), "PUT {status}");
            let get_url = s.store.sign_url(&s.bucket, "signed", "GET", 300).await.unwrap();
            let got = http.get(&get_url).send().await.unwrap();
            assert!(got.status().is_success());
            assert_eq!(got.bytes().await.unwrap(), "through a signed URL");
            let err = s.store.sign_url(&s.bucket, "signed", "DELETE", 300).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        }

        #[needs("append")]
        async fn appends(s) {
            assert_eq!(s.store.append_object(&s.bucket, "log", 0, body(vec![b"one ".to_vec()])).await.unwrap(), 4);
            assert_eq!(s.store.append_object(&s.bucket, "log", 4, body(vec![b"two".to_vec()])).await.unwrap(), 7);
            assert_eq!(get_bytes(&s, "log").await, b"one two");
            let err = s.store.append_object(&s.bucket, "log", 3, body(vec![b"x".to_vec()])).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
        }
    }
}

/// What S3 cannot do answers UNIMPLEMENTED saying why; a directory cannot
/// sign URLs; the local store refuses keys that leave their bucket.
#[tokio::test]
async fn what_a_component_cannot_do_is_unimplemented_naming_why() {
    let dir = tempfile::tempdir().unwrap();
    let local = LocalStore::new("files", dir.path()).unwrap();
    let err = local.sign_url("b", "k", "GET", 60).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    assert!(err.to_string().contains("SignURL") && err.to_string().contains("files"), "{err}");
    let err = local.put_object(put("b", "../escape"), body(vec![b"x".to_vec()])).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(err.to_string().contains("../escape"), "{err}");
}

/// A body that fails midway (a client that cancels) leaves no object.
#[tokio::test]
async fn a_cancelled_upload_leaves_nothing_visible() {
    let dir = tempfile::tempdir().unwrap();
    let local = LocalStore::new("files", dir.path()).unwrap();
    let failing: ByteStream = futures::stream::iter(vec![
        Ok(Bytes::from_static(b"part")),
        Err(layotto_core::Error::unavailable("the client went away")),
    ])
    .boxed();
    assert!(local.put_object(put("b", "half"), failing).await.is_err());
    assert_eq!(local.head_object("b", "half", "").await.unwrap_err().kind(), ErrorKind::NotFound);
    let leftovers = std::fs::read_dir(dir.path().join(".layotto/tmp")).unwrap().count();
    assert_eq!(leftovers, 0, "the temporary file is removed");
}

#[tokio::test]
async fn the_local_root_comes_from_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = ComponentContext {
        api: "oss".into(),
        name: "files".into(),
        kind: "local".into(),
        metadata: Metadata::from([("root".to_owned(), dir.path().display().to_string())]),
        ..Default::default()
    };
    let store = LocalStore::build(ctx).await.unwrap();
    store.put_object(put("bucket", "k"), body(vec![b"v".to_vec()])).await.unwrap();
    assert_eq!(std::fs::read(dir.path().join("bucket/k")).unwrap(), b"v");
}

#[cfg(feature = "s3")]
mod s3_backend {
    use super::*;
    use layotto_oss::components::s3::S3Store;

    pub fn endpoint() -> String {
        std::env::var("LAYOTTO_TEST_S3").unwrap_or_else(|_| "http://127.0.0.1:9000".to_owned())
    }

    pub fn metadata(endpoint: &str, secret: &str) -> Metadata {
        Metadata::from([
            ("endpoint".to_owned(), endpoint.to_owned()),
            ("accessKeyID".to_owned(), "layotto".to_owned()),
            ("accessKeySecret".to_owned(), secret.to_owned()),
            ("timeout".to_owned(), "10".to_owned()),
            ("maxAttempts".to_owned(), "1".to_owned()),
        ])
    }

    pub async fn store(metadata: Metadata) -> layotto_core::Result<Arc<dyn ObjectStore>> {
        let ctx = ComponentContext {
            api: "oss".into(),
            name: "s3".into(),
            kind: "aws.s3".into(),
            metadata,
            ..Default::default()
        };
        S3Store::build(ctx).await
    }

    /// Creates a bucket with a client of its own: the API has no CreateBucket.
    pub async fn create_bucket(bucket: &str) {
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
            .endpoint_url(endpoint())
            .force_path_style(true)
            .http_client(aws_smithy_http_client::Builder::new().build_http())
            .build();
        aws_sdk_s3::Client::from_conf(config).create_bucket().bucket(bucket).send().await.unwrap();
    }

    pub fn subject() -> BoxFuture<'static, Subject> {
        Box::pin(async {
            let bucket = bucket();
            create_bucket(&bucket).await;
            Subject {
                store: store(metadata(&endpoint(), "layotto-secret")).await.unwrap(),
                bucket,
                _dir: None,
            }
        })
    }

    #[tokio::test]
    async fn refused_credentials_and_a_server_that_is_down_say_so() {
        let err = store(metadata(&endpoint(), "wrong-secret")).await.err().unwrap();
        assert_eq!(err.kind(), ErrorKind::Unauthenticated, "{err}");
        assert!(err.to_string().contains("s3"), "{err}");
        let err = store(metadata("http://127.0.0.1:1", "layotto-secret")).await.err().unwrap();
        assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
        assert!(err.to_string().contains("127.0.0.1:1"), "{err}");
    }

    #[tokio::test]
    async fn what_the_server_lacks_is_unimplemented() {
        let s = subject().await;
        put_bytes(&s, "t", b"x").await;
        let err = s.store.put_tagging(&s.bucket, "t", "", BTreeMap::new()).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
        assert!(err.to_string().contains("NotImplemented") && err.to_string().contains("'t'"), "{err}");
    }

    #[tokio::test]
    async fn append_and_canned_acls_are_unimplemented_on_s3() {
        let s = subject().await;
        let err = s.store.append_object(&s.bucket, "k", 0, body(vec![b"x".to_vec()])).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unsupported);
        assert!(err.to_string().contains("appended"), "{err}");
        assert_eq!(s.store.get_acl(&s.bucket, "k").await.unwrap_err().kind(), ErrorKind::Unsupported);
    }
}
