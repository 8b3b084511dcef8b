//! `aws.s3` (also Layotto's `aws.oss` and `minio`): any S3-compatible server
//! through aws-sdk-s3. Metadata: `endpoint` (e.g. `http://127.0.0.1:9000`;
//! AWS itself when empty), `region` (default `us-east-1`), `accessKeyID`,
//! `accessKeySecret` (Layotto's names; a `secret_ref` works), or all of them
//! in Layotto's `basic_config` JSON; `forcePathStyle` (default true with an
//! endpoint), `timeout` (seconds per attempt, default 30), `maxAttempts`
//! (default 3).
//!
//! A PutObject body is streamed in parts of 8 MiB (one plain PUT when it is
//! smaller), so the runtime holds at most one part; an upload cut off by the
//! client is aborted, leaving nothing behind. Errors keep S3's code: a
//! missing key or bucket is NOT_FOUND, refused credentials UNAUTHENTICATED,
//! a refused operation PERMISSION_DENIED, a server that cannot be reached
//! UNAVAILABLE. S3 cannot append to objects nor name an object's canned
//! ACL (it returns grants), and RestoreObject needs archive tiers: those
//! answer UNIMPLEMENTED saying so.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream as SdkStream;
use aws_sdk_s3::types::{
    CompletedMultipartUpload, CompletedPart, Delete, MetadataDirective, ObjectCannedAcl, ObjectIdentifier,
    StorageClass, Tag, Tagging,
};
use bytes::{Bytes, BytesMut};
use futures::{StreamExt, TryStreamExt};
use layotto_core::{ComponentContext, Error, ErrorKind, Health, Result, clip, settings};
use serde::Deserialize;

use crate::{
    ByteStream, CopyObject, Deleted, Features, GetObject, ListObjects, Listing, MultipartUpload, ObjectBody,
    ObjectInfo, ObjectStore, Part, Parts, PutObject, Uploads, Version, Versions, Written, unsupported,
};

/// Size of the parts a streamed PutObject is cut into.
const PART_SIZE: usize = 8 * 1024 * 1024;

/// Parts uploaded at once: enough to overlap reading the caller's stream
/// with uploading, few enough to keep a 1 GiB upload within 64 MB.
const PARTS_IN_FLIGHT: usize = 2;
/// The largest UploadPart body held in memory (S3 parts are 5 MiB to 5 GiB).
const MAX_BUFFERED_PART: usize = 64 * 1024 * 1024;

#[derive(Debug, Default, Deserialize)]
struct BasicConfig {
    #[serde(default)]
    endpoint: Option<String>,
    #[serde(rename = "accessKeyID", alias = "accessKeyId", default)]
    access_key_id: Option<String>,
    #[serde(rename = "accessKeySecret", alias = "secretAccessKey", default)]
    access_key_secret: Option<String>,
    #[serde(default)]
    region: Option<String>,
}

#[derive(Deserialize)]
struct S3Settings {
    #[serde(flatten)]
    basic: BasicConfig,
    /// Layotto's form: the keys above as one JSON object.
    #[serde(default)]
    basic_config: Option<String>,
    #[serde(rename = "forcePathStyle", default)]
    force_path_style: Option<bool>,
    #[serde(default, deserialize_with = "settings::seconds")]
    timeout: Option<Duration>,
    #[serde(rename = "maxAttempts", default)]
    max_attempts: Option<u32>,
}

pub struct S3Store {
    name: String,
    endpoint: String,
    client: aws_sdk_s3::Client,
}

fn unix(time: Option<&aws_sdk_s3::primitives::DateTime>) -> i64 {
    time.map_or(0, |t| t.secs())
}

/// S3's `x-amz-copy-source`: `bucket/key`, the key URL-encoded.
fn copy_source(bucket: &str, key: &str, version_id: &str) -> String {
    const KEEP: &percent_encoding::AsciiSet =
        &percent_encoding::NON_ALPHANUMERIC.remove(b'/').remove(b'-').remove(b'_').remove(b'.').remove(b'~');
    let mut source = format!("{bucket}/{}", percent_encoding::utf8_percent_encode(key, KEEP));
    if !version_id.is_empty() {
        source.push_str(&format!("?versionId={version_id}"));
    }
    source
}

/// Cancels an unfinished multipart upload if its future is dropped (the
/// client went away) or fails, so no parts are left behind.
struct AbortOnDrop {
    client: aws_sdk_s3::Client,
    bucket: String,
    key: String,
    upload_id: String,
    armed: bool,
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (client, bucket, key, upload_id) =
            (self.client.clone(), self.bucket.clone(), self.key.clone(), self.upload_id.clone());
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let _ =
                    client.abort_multipart_upload().bucket(bucket).key(key).upload_id(upload_id).send().await;
            });
        }
    }
}

impl S3Store {
    pub const TYPES: [&'static str; 3] = ["aws.s3", "aws.oss", "minio"];

    pub async fn build(ctx: ComponentContext) -> Result<Arc<dyn ObjectStore>> {
        let s: S3Settings = ctx.settings()?;
        let describe = ctx.describe();
        let mut basic = s.basic;
        if let Some(json) = s.basic_config.filter(|j| !j.trim().is_empty()) {
            let layotto: BasicConfig = serde_json::from_str(&json).map_err(|e| {
                Error::config(format!("{describe}: metadata 'basic_config' is not valid: {e}"))
            })?;
            basic.endpoint = basic.endpoint.or(layotto.endpoint);
            basic.access_key_id = basic.access_key_id.or(layotto.access_key_id);
            basic.access_key_secret = basic.access_key_secret.or(layotto.access_key_secret);
            basic.region = basic.region.or(layotto.region);
        }
        let endpoint = basic.endpoint.filter(|e| !e.trim().is_empty());
        let endpoint = endpoint.map(|e| if e.contains("://") { e } else { format!("https://{e}") });
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let timeout = s.timeout.unwrap_or(Duration::from_secs(30));
        let mut config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(basic.region.filter(|r| !r.is_empty()).unwrap_or_else(|| "us-east-1".into())))
            .http_client(http)
            .retry_config(
                aws_sdk_s3::config::retry::RetryConfig::standard()
                    .with_max_attempts(s.max_attempts.unwrap_or(3).max(1)),
            )
            .timeout_config(
                aws_sdk_s3::config::timeout::TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .operation_attempt_timeout(timeout)
                    .build(),
            )
            // Checksums only where S3 requires them: S3-compatible servers often lack the newer ones.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .force_path_style(s.force_path_style.unwrap_or(endpoint.is_some()));
        if let (Some(id), Some(secret)) = (basic.access_key_id, basic.access_key_secret) {
            config = config.credentials_provider(Credentials::new(id, secret, None, None, "layotto"));
        }
        if let Some(endpoint) = &endpoint {
            config = config.endpoint_url(endpoint);
        }
        let store = Self {
            name: ctx.name,
            endpoint: endpoint.unwrap_or_else(|| "AWS".into()),
            client: aws_sdk_s3::Client::from_conf(config.build()),
        };
        // Fail now, naming the store and the server, when it cannot answer.
        store.client.list_buckets().send().await.map_err(|e| store.error("connecting", e))?;
        Ok(Arc::new(store))
    }

    /// An S3 error as one of ours, with S3's code and message.
    fn error<E: ProvideErrorMetadata + std::fmt::Debug>(
        &self,
        what: &str,
        e: SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
    ) -> Error {
        let status = e.raw_response().map(|r| r.status().as_u16());
        let (kind, detail) = match &e {
            SdkError::TimeoutError(_) => (ErrorKind::Timeout, "no answer in time".to_owned()),
            SdkError::DispatchFailure(failure) => (ErrorKind::Unavailable, format!("{failure:?}")),
            SdkError::ServiceError(service) => {
                let err = service.err();
                let code = err.code().unwrap_or_default();
                let kind = match (code, status) {
                    ("NoSuchKey" | "NoSuchBucket" | "NoSuchUpload" | "NotFound" | "NoSuchVersion", _) => {
                        ErrorKind::NotFound
                    }
                    ("InvalidAccessKeyId" | "SignatureDoesNotMatch" | "InvalidToken" | "ExpiredToken", _) => {
                        ErrorKind::Unauthenticated
                    }
                    ("AccessDenied" | "AllAccessDisabled", _) => ErrorKind::PermissionDenied,
                    ("NotImplemented", _) => ErrorKind::Unsupported,
                    ("SlowDown" | "ServiceUnavailable" | "InternalError", _) => ErrorKind::Unavailable,
                    (_, Some(404)) => ErrorKind::NotFound,
                    (_, Some(401)) => ErrorKind::Unauthenticated,
                    (_, Some(403)) => ErrorKind::PermissionDenied,
                    (_, Some(s)) if s >= 500 => ErrorKind::Unavailable,
                    (_, Some(400 | 409 | 411 | 412 | 416)) => ErrorKind::InvalidArgument,
                    _ => ErrorKind::Internal,
                };
                let code = if code.is_empty() {
                    status.map(|s| s.to_string()).unwrap_or_default()
                } else {
                    code.to_owned()
                };
                (kind, format!("{code}: {}", err.message().unwrap_or_default()))
            }
            other => (ErrorKind::Internal, format!("{other:?}")),
        };
        Error::new(kind, format!("oss store '{}' (S3 at {}): {what}: {detail}", self.name, self.endpoint))
    }

    fn object_what(bucket: &str, key: &str) -> String {
        format!("bucket '{}': key '{}'", clip(bucket), clip(key))
    }

    /// Buffers up to `limit` bytes of `body`; the bytes, and whether the body ended.
    async fn fill(body: &mut ByteStream, limit: usize, carry: &mut BytesMut) -> Result<(Bytes, bool)> {
        while carry.len() < limit {
            match body.next().await {
                Some(chunk) => carry.extend_from_slice(&chunk?),
                None => return Ok((carry.split().freeze(), true)),
            }
        }
        Ok((carry.split_to(limit).freeze(), false))
    }
}

/// The caller's stream, the bytes read past the last part, a part read but
/// not yet handed out, the next part number, and whether the stream ended.
type PartState = (ByteStream, BytesMut, Option<Bytes>, i32, bool);

/// The next part of an upload and its number.
async fn next_part(state: PartState) -> Option<(Result<(i32, Bytes)>, PartState)> {
    let (mut body, mut carry, pending, number, ended) = state;
    if let Some(part) = pending {
        return Some((Ok((number, part)), (body, carry, None, number + 1, ended)));
    }
    if ended {
        return None;
    }
    match S3Store::fill(&mut body, PART_SIZE, &mut carry).await {
        Ok((part, _)) if part.is_empty() => None,
        Ok((part, ended)) => Some((Ok((number, part)), (body, carry, None, number + 1, ended))),
        Err(e) => Some((Err(e), (body, carry, None, number, true))),
    }
}

fn tags(set: &[Tag]) -> BTreeMap<String, String> {
    set.iter().map(|t| (t.key().to_owned(), t.value().to_owned())).collect()
}

fn tagging(tags: &BTreeMap<String, String>) -> Result<Tagging> {
    let set = tags
        .iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::invalid_argument(e.to_string()))?;
    Tagging::builder().set_tag_set(Some(set)).build().map_err(|e| Error::invalid_argument(e.to_string()))
}

/// `k1=v1&k2=v2`, S3's `x-amz-tagging`.
fn tagging_header(tags: &BTreeMap<String, String>) -> Option<String> {
    (!tags.is_empty()).then(|| {
        let enc = |s: &str| {
            percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
        };
        tags.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect::<Vec<_>>().join("&")
    })
}

fn opt(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

#[async_trait]
impl ObjectStore for S3Store {
    fn features(&self) -> Features {
        Features { sign_url: true, append: false, acl: false, tagging: true, versions: true }
    }

    async fn put_object(&self, req: PutObject, mut body: ByteStream) -> Result<Written> {
        let what = Self::object_what(&req.bucket, &req.key);
        let mut carry = BytesMut::new();
        let (first, ended) = Self::fill(&mut body, PART_SIZE, &mut carry).await?;
        if ended {
            let out = self
                .client
                .put_object()
                .bucket(&req.bucket)
                .key(&req.key)
                .body(SdkStream::from(first))
                .set_content_type(opt(&req.content_type))
                .set_cache_control(opt(&req.cache_control))
                .set_content_disposition(opt(&req.content_disposition))
                .set_content_encoding(opt(&req.content_encoding))
                .set_acl(opt(&req.acl).map(|a| ObjectCannedAcl::from(a.as_str())))
                .set_storage_class(opt(&req.storage_class).map(|c| StorageClass::from(c.as_str())))
                .set_metadata(Some(req.metadata.clone().into_iter().collect()))
                .set_tagging(tagging_header(&req.tagging))
                .send()
                .await
                .map_err(|e| self.error(&what, e))?;
            return Ok(Written {
                etag: out.e_tag().unwrap_or_default().to_owned(),
                version_id: out.version_id().unwrap_or_default().to_owned(),
            });
        }
        // Larger than one part: a multipart upload.
        let upload_id = self.create_multipart(req.clone()).await?;
        let mut guard = AbortOnDrop {
            client: self.client.clone(),
            bucket: req.bucket.clone(),
            key: req.key.clone(),
            upload_id: upload_id.clone(),
            armed: true,
        };
        // Parts go up PARTS_IN_FLIGHT at a time while the next is read from the
        // caller, so at most PARTS_IN_FLIGHT + 1 parts are in memory.
        let source: futures::stream::BoxStream<'static, Result<(i32, Bytes)>> =
            Box::pin(futures::stream::unfold((body, carry, Some(first), 1, false), next_part));
        let (bucket, key, what, upload) = (&req.bucket, &req.key, &what, &upload_id);
        let parts: Vec<(i32, String)> = source
            .map(|part: Result<(i32, Bytes)>| async move {
                let (number, part) = part?;
                let out = self
                    .client
                    .upload_part()
                    .bucket(bucket)
                    .key(key)
                    .upload_id(upload)
                    .part_number(number)
                    .body(SdkStream::from(part))
                    .send()
                    .await
                    .map_err(|e| self.error(&format!("{what}: part {number}"), e))?;
                Ok::<_, Error>((number, out.e_tag().unwrap_or_default().to_owned()))
            })
            .buffered(PARTS_IN_FLIGHT)
            .try_collect()
            .await?;
        let written = self.complete_multipart(&req.bucket, &req.key, &upload_id, parts).await?;
        guard.armed = false;
        Ok(written)
    }

    async fn get_object(&self, req: GetObject) -> Result<(ObjectBody, ByteStream)> {
        let what = Self::object_what(&req.bucket, &req.key);
        let range = req.range.map(|(start, end)| match end {
            Some(end) => format!("bytes={start}-{end}"),
            None => format!("bytes={start}-"),
        });
        let out = self
            .client
            .get_object()
            .bucket(&req.bucket)
            .key(&req.key)
            .set_version_id(opt(&req.version_id))
            .set_range(range)
            .send()
            .await
            .map_err(|e| self.error(&what, e))?;
        let info = ObjectInfo {
            key: req.key.clone(),
            size: out.content_length().unwrap_or_default(),
            etag: out.e_tag().unwrap_or_default().to_owned(),
            last_modified: unix(out.last_modified()),
            content_type: out.content_type().unwrap_or_default().to_owned(),
            cache_control: out.cache_control().unwrap_or_default().to_owned(),
            content_disposition: out.content_disposition().unwrap_or_default().to_owned(),
            content_encoding: out.content_encoding().unwrap_or_default().to_owned(),
            storage_class: out.storage_class().map(|c| c.as_str().to_owned()).unwrap_or_default(),
            version_id: out.version_id().unwrap_or_default().to_owned(),
            metadata: out.metadata().cloned().unwrap_or_default().into_iter().collect(),
            tag_count: i64::from(out.tag_count().unwrap_or_default()),
        };
        let meta = ObjectBody {
            content_length: out.content_length().unwrap_or_default(),
            content_range: out.content_range().unwrap_or_default().to_owned(),
            info,
        };
        let name = self.name.clone();
        let stream = futures::stream::unfold(out.body, move |mut body| {
            let name = name.clone();
            async move {
                body.next().await.map(|chunk| {
                    (chunk.map_err(|e| Error::unavailable(format!("oss store '{name}': reading: {e}"))), body)
                })
            }
        });
        Ok((meta, stream.boxed()))
    }

    async fn head_object(&self, bucket: &str, key: &str, version_id: &str) -> Result<ObjectInfo> {
        let out = self
            .client
            .head_object()
            .bucket(bucket)
            .key(key)
            .set_version_id(opt(version_id))
            .send()
            .await
            .map_err(|e| self.error(&Self::object_what(bucket, key), e))?;
        Ok(ObjectInfo {
            key: key.to_owned(),
            size: out.content_length().unwrap_or_default(),
            etag: out.e_tag().unwrap_or_default().to_owned(),
            last_modified: unix(out.last_modified()),
            content_type: out.content_type().unwrap_or_default().to_owned(),
            cache_control: out.cache_control().unwrap_or_default().to_owned(),
            content_disposition: out.content_disposition().unwrap_or_default().to_owned(),
            content_encoding: out.content_encoding().unwrap_or_default().to_owned(),
            storage_class: out.storage_class().map(|c| c.as_str().to_owned()).unwrap_or_default(),
            version_id: out.version_id().unwrap_or_default().to_owned(),
            metadata: out.metadata().cloned().unwrap_or_default().into_iter().collect(),
            tag_count: 0,
        })
    }

    async fn delete_object(&self, bucket: &str, key: &str, version_id: &str) -> Result<Deleted> {
        let out = self
            .client
            .delete_object()
            .bucket(bucket)
            .key(key)
            .set_version_id(opt(version_id))
            .send()
            .await
            .map_err(|e| self.error(&Self::object_what(bucket, key), e))?;
        Ok(Deleted {
            key: key.to_owned(),
            version_id: out.version_id().unwrap_or_default().to_owned(),
            delete_marker: out.delete_marker().unwrap_or_default(),
        })
    }

    async fn delete_objects(&self, bucket: &str, objects: Vec<(String, String)>) -> Result<Vec<Deleted>> {
        let ids = objects
            .iter()
            .map(|(key, version)| ObjectIdentifier::builder().key(key).set_version_id(opt(version)).build())
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::invalid_argument(e.to_string()))?;
        let delete = Delete::builder()
            .set_objects(Some(ids))
            .build()
            .map_err(|e| Error::invalid_argument(e.to_string()))?;
        let out = self
            .client
            .delete_objects()
            .bucket(bucket)
            .delete(delete)
            .send()
            .await
            .map_err(|e| self.error(&format!("bucket '{}': deleting objects", clip(bucket)), e))?;
        if let Some(failed) = out.errors().first() {
            return Err(Error::internal(format!(
                "oss store '{}': bucket '{}': key '{}': {}: {}",
                self.name,
                clip(bucket),
                clip(failed.key().unwrap_or_default()),
                failed.code().unwrap_or_default(),
                failed.message().unwrap_or_default()
            )));
        }
        Ok(out
            .deleted()
            .iter()
            .map(|d| Deleted {
                key: d.key().unwrap_or_default().to_owned(),
                version_id: d.version_id().unwrap_or_default().to_owned(),
                delete_marker: d.delete_marker().unwrap_or_default(),
            })
            .collect())
    }

    async fn copy_object(&self, req: CopyObject) -> Result<Written> {
        let replace = req.metadata_directive.eq_ignore_ascii_case("REPLACE");
        let out = self
            .client
            .copy_object()
            .bucket(&req.bucket)
            .key(&req.key)
            .copy_source(copy_source(&req.source_bucket, &req.source_key, &req.source_version_id))
            .set_metadata_directive(replace.then_some(MetadataDirective::Replace))
            .set_metadata(replace.then(|| req.metadata.clone().into_iter().collect()))
            .set_tagging(tagging_header(&req.tagging))
            .send()
            .await
            .map_err(|e| self.error(&Self::object_what(&req.bucket, &req.key), e))?;
        Ok(Written {
            etag: out.copy_object_result().and_then(|r| r.e_tag()).unwrap_or_default().to_owned(),
            version_id: out.version_id().unwrap_or_default().to_owned(),
        })
    }

    async fn list_objects(&self, req: ListObjects) -> Result<Listing> {
        let out = self
            .client
            .list_objects_v2()
            .bucket(&req.bucket)
            .set_prefix(opt(&req.prefix))
            .set_delimiter(opt(&req.delimiter))
            .set_start_after(opt(&req.marker))
            .set_max_keys((req.max_keys > 0).then_some(req.max_keys))
            .send()
            .await
            .map_err(|e| self.error(&format!("bucket '{}': listing", clip(&req.bucket)), e))?;
        let contents: Vec<ObjectInfo> = out
            .contents()
            .iter()
            .map(|o| ObjectInfo {
                key: o.key().unwrap_or_default().to_owned(),
                size: o.size().unwrap_or_default(),
                etag: o.e_tag().unwrap_or_default().to_owned(),
                last_modified: unix(o.last_modified()),
                storage_class: o.storage_class().map(|c| c.as_str().to_owned()).unwrap_or_default(),
                ..Default::default()
            })
            .collect();
        let common_prefixes: Vec<String> =
            out.common_prefixes().iter().filter_map(|p| p.prefix().map(str::to_owned)).collect();
        let is_truncated = out.is_truncated().unwrap_or_default();
        // The last key or prefix of the page: the next page starts after it.
        let next_marker = if is_truncated {
            let last_key = contents.last().map(|o| o.key.clone()).unwrap_or_default();
            let last_prefix = common_prefixes.last().cloned().unwrap_or_default();
            last_key.max(last_prefix)
        } else {
            String::new()
        };
        Ok(Listing { contents, common_prefixes, is_truncated, next_marker })
    }

    async fn put_tagging(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
        tags: BTreeMap<String, String>,
    ) -> Result<String> {
        let out = self
            .client
            .put_object_tagging()
            .bucket(bucket)
            .key(key)
            .set_version_id(opt(version_id))
            .tagging(tagging(&tags)?)
            .send()
            .await
            .map_err(|e| self.error(&Self::object_what(bucket, key), e))?;
        Ok(out.version_id().unwrap_or_default().to_owned())
    }

    async fn get_tagging(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
    ) -> Result<BTreeMap<String, String>> {
        let out = self
            .client
            .get_object_tagging()
            .bucket(bucket)
            .key(key)
            .set_version_id(opt(version_id))
            .send()
            .await
            .map_err(|e| self.error(&Self::object_what(bucket, key), e))?;
        Ok(tags(out.tag_set()))
    }

    async fn delete_tagging(&self, bucket: &str, key: &str, version_id: &str) -> Result<String> {
        let out = self
            .client
            .delete_object_tagging()
            .bucket(bucket)
            .key(key)
            .set_version_id(opt(version_id))
            .send()
            .await
            .map_err(|e| self.error(&Self::object_what(bucket, key), e))?;
        Ok(out.version_id().unwrap_or_default().to_owned())
    }

    async fn put_acl(&self, bucket: &str, key: &str, acl: &str) -> Result<()> {
        self.client
            .put_object_acl()
            .bucket(bucket)
            .key(key)
            .acl(ObjectCannedAcl::from(acl))
            .send()
            .await
            .map_err(|e| self.error(&Self::object_what(bucket, key), e))?;
        Ok(())
    }

    async fn get_acl(&self, _: &str, _: &str) -> Result<String> {
        Err(unsupported(
            &self.name,
            "GetObjectCannedAcl",
            "S3 answers an object's grants, not the canned ACL it was given",
        ))
    }

    async fn create_multipart(&self, req: PutObject) -> Result<String> {
        let out = self
            .client
            .create_multipart_upload()
            .bucket(&req.bucket)
            .key(&req.key)
            .set_content_type(opt(&req.content_type))
            .set_cache_control(opt(&req.cache_control))
            .set_content_disposition(opt(&req.content_disposition))
            .set_content_encoding(opt(&req.content_encoding))
            .set_acl(opt(&req.acl).map(|a| ObjectCannedAcl::from(a.as_str())))
            .set_storage_class(opt(&req.storage_class).map(|c| StorageClass::from(c.as_str())))
            .set_metadata(Some(req.metadata.into_iter().collect()))
            .set_tagging(tagging_header(&req.tagging))
            .send()
            .await
            .map_err(|e| self.error(&Self::object_what(&req.bucket, &req.key), e))?;
        out.upload_id().map(str::to_owned).ok_or_else(|| Error::internal("S3 answered no upload id"))
    }

    async fn upload_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number: i32,
        _content_length: i64,
        mut body: ByteStream,
    ) -> Result<String> {
        let mut carry = BytesMut::new();
        let (part, ended) = Self::fill(&mut body, MAX_BUFFERED_PART, &mut carry).await?;
        if !ended {
            return Err(Error::invalid_argument(format!(
                "oss store '{}': {}: part {part_number} is larger than {MAX_BUFFERED_PART} bytes; use smaller parts",
                self.name,
                Self::object_what(bucket, key)
            )));
        }
        let out = self
            .client
            .upload_part()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(part_number)
            .body(SdkStream::from(part))
            .send()
            .await
            .map_err(|e| self.error(&format!("{}: part {part_number}", Self::object_what(bucket, key)), e))?;
        Ok(out.e_tag().unwrap_or_default().to_owned())
    }

    async fn upload_part_copy(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number: i32,
        (source_bucket, source_key, source_version): (&str, &str, &str),
        range: Option<(u64, u64)>,
    ) -> Result<String> {
        let out = self
            .client
            .upload_part_copy()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(part_number)
            .copy_source(copy_source(source_bucket, source_key, source_version))
            .set_copy_source_range(range.map(|(start, end)| format!("bytes={start}-{end}")))
            .send()
            .await
            .map_err(|e| self.error(&format!("{}: part {part_number}", Self::object_what(bucket, key)), e))?;
        Ok(out.copy_part_result().and_then(|r| r.e_tag()).unwrap_or_default().to_owned())
    }

    async fn complete_multipart(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: Vec<(i32, String)>,
    ) -> Result<Written> {
        let parts = parts
            .into_iter()
            .map(|(n, etag)| CompletedPart::builder().part_number(n).e_tag(etag).build())
            .collect();
        let out = self
            .client
            .complete_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
            .send()
            .await
            .map_err(|e| self.error(&Self::object_what(bucket, key), e))?;
        Ok(Written {
            etag: out.e_tag().unwrap_or_default().to_owned(),
            version_id: out.version_id().unwrap_or_default().to_owned(),
        })
    }

    async fn abort_multipart(&self, bucket: &str, key: &str, upload_id: &str) -> Result<()> {
        self.client
            .abort_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await
            .map_err(|e| self.error(&Self::object_what(bucket, key), e))?;
        Ok(())
    }

    async fn list_uploads(
        &self,
        bucket: &str,
        prefix: &str,
        key_marker: &str,
        upload_id_marker: &str,
        max: i64,
    ) -> Result<Uploads> {
        let out = self
            .client
            .list_multipart_uploads()
            .bucket(bucket)
            .set_prefix(opt(prefix))
            .set_key_marker(opt(key_marker))
            .set_upload_id_marker(opt(upload_id_marker))
            .set_max_uploads((max > 0).then(|| i32::try_from(max).unwrap_or(i32::MAX)))
            .send()
            .await
            .map_err(|e| self.error(&format!("bucket '{}': listing uploads", clip(bucket)), e))?;
        Ok(Uploads {
            uploads: out
                .uploads()
                .iter()
                .map(|u| MultipartUpload {
                    key: u.key().unwrap_or_default().to_owned(),
                    upload_id: u.upload_id().unwrap_or_default().to_owned(),
                    initiated: unix(u.initiated()),
                    storage_class: u.storage_class().map(|c| c.as_str().to_owned()).unwrap_or_default(),
                })
                .collect(),
            common_prefixes: out
                .common_prefixes()
                .iter()
                .filter_map(|p| p.prefix().map(str::to_owned))
                .collect(),
            is_truncated: out.is_truncated().unwrap_or_default(),
            next_key_marker: out.next_key_marker().unwrap_or_default().to_owned(),
            next_upload_id_marker: out.next_upload_id_marker().unwrap_or_default().to_owned(),
        })
    }

    async fn list_parts(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        marker: i64,
        max: i64,
    ) -> Result<Parts> {
        let out = self
            .client
            .list_parts()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .set_part_number_marker((marker > 0).then(|| marker.to_string()))
            .set_max_parts((max > 0).then(|| i32::try_from(max).unwrap_or(i32::MAX)))
            .send()
            .await
            .map_err(|e| self.error(&Self::object_what(bucket, key), e))?;
        let mut parts: Vec<Part> = out
            .parts()
            .iter()
            .map(|p| Part {
                part_number: i64::from(p.part_number().unwrap_or_default()),
                etag: p.e_tag().unwrap_or_default().to_owned(),
                size: p.size().unwrap_or_default(),
                last_modified: unix(p.last_modified()),
            })
            .collect();
        // In order, as S3 answers them (not every S3-compatible server does).
        parts.sort_by_key(|p| p.part_number);
        Ok(Parts {
            parts,
            is_truncated: out.is_truncated().unwrap_or_default(),
            next_part_number_marker: out
                .next_part_number_marker()
                .and_then(|m| m.parse().ok())
                .unwrap_or_default(),
        })
    }

    async fn list_versions(&self, req: ListObjects, version_id_marker: &str) -> Result<Versions> {
        let out = self
            .client
            .list_object_versions()
            .bucket(&req.bucket)
            .set_prefix(opt(&req.prefix))
            .set_delimiter(opt(&req.delimiter))
            .set_key_marker(opt(&req.marker))
            .set_version_id_marker(opt(version_id_marker))
            .set_max_keys((req.max_keys > 0).then_some(req.max_keys))
            .send()
            .await
            .map_err(|e| self.error(&format!("bucket '{}': listing versions", clip(&req.bucket)), e))?;
        let mut versions: Vec<Version> = out
            .versions()
            .iter()
            .map(|v| Version {
                key: v.key().unwrap_or_default().to_owned(),
                version_id: v.version_id().unwrap_or_default().to_owned(),
                is_latest: v.is_latest().unwrap_or_default(),
                etag: v.e_tag().unwrap_or_default().to_owned(),
                size: v.size().unwrap_or_default(),
                last_modified: unix(v.last_modified()),
                storage_class: v.storage_class().map(|c| c.as_str().to_owned()).unwrap_or_default(),
                delete_marker: false,
            })
            .collect();
        versions.extend(out.delete_markers().iter().map(|m| Version {
            key: m.key().unwrap_or_default().to_owned(),
            version_id: m.version_id().unwrap_or_default().to_owned(),
            is_latest: m.is_latest().unwrap_or_default(),
            last_modified: unix(m.last_modified()),
            delete_marker: true,
            ..Default::default()
        }));
        Ok(Versions {
            versions,
            common_prefixes: out
                .common_prefixes()
                .iter()
                .filter_map(|p| p.prefix().map(str::to_owned))
                .collect(),
            is_truncated: out.is_truncated().unwrap_or_default(),
            next_key_marker: out.next_key_marker().unwrap_or_default().to_owned(),
            next_version_id_marker: out.next_version_id_marker().unwrap_or_default().to_owned(),
        })
    }

    async fn sign_url(&self, bucket: &str, key: &str, method: &str, expires_in: u64) -> Result<String> {
        let presigning =
            aws_sdk_s3::presigning::PresigningConfig::expires_in(Duration::from_secs(expires_in.max(1)))
                .map_err(|e| {
                    Error::invalid_argument(format!("oss store '{}': expired_in_sec: {e}", self.name))
                })?;
        let what = Self::object_what(bucket, key);
        let request = match method.to_ascii_uppercase().as_str() {
            "GET" => self
                .client
                .get_object()
                .bucket(bucket)
                .key(key)
                .presigned(presigning)
                .await
                .map_err(|e| e.to_string()),
            "PUT" => self
                .client
                .put_object()
                .bucket(bucket)
                .key(key)
                .presigned(presigning)
                .await
                .map_err(|e| e.to_string()),
            other => {
                return Err(Error::invalid_argument(format!(
                    "oss store '{}': {what}: method '{}' cannot be signed; use GET or PUT",
                    self.name,
                    clip(other)
                )));
            }
        };
        let request = request
            .map_err(|e| Error::internal(format!("oss store '{}': {what}: signing: {e}", self.name)))?;
        Ok(request.uri().to_owned())
    }

    async fn append_object(&self, _: &str, _: &str, _: i64, _: ByteStream) -> Result<i64> {
        Err(unsupported(&self.name, "AppendObject", "S3 objects cannot be appended to"))
    }

    async fn health(&self) -> Health {
        match tokio::time::timeout(Duration::from_secs(2), self.client.list_buckets().send()).await {
            Ok(Ok(_)) => Health::up(),
            Ok(Err(e)) => Health::down(self.error("listing buckets", e).to_string()),
            Err(_) => Health::down(format!("S3 at {} did not answer within 2s", self.endpoint)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_sources_encode_the_key() {
        assert_eq!(copy_source("b", "a b/ü.txt", ""), "b/a%20b/%C3%BC.txt");
        assert_eq!(copy_source("b", "k", "v1"), "b/k?versionId=v1");
    }
}
