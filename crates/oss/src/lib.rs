//! Object storage: Layotto's `ObjectStorageService` (S3's operations) and
//! the File API on `Runtime`, served by the same components.
//!
//! [`ObjectStore`] is the one trait every component implements; bodies move
//! as streams of chunks ([`ByteStream`]), so neither the runtime nor a
//! component holds a whole object. Components live in [`components`]:
//! `local` (a directory, always built) and `aws.s3` (any S3-compatible
//! server through aws-sdk-s3, behind the `s3` feature; Layotto's type names
//! `aws.oss` and `minio` build it too). What a component cannot do answers
//! UNIMPLEMENTED naming the reason ([`unsupported`]).

pub mod components;

use std::collections::BTreeMap;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
pub use layotto_core::{Error, ErrorKind, Result};
use layotto_core::{Health, Registry, clip};

/// An object's body, chunk by chunk.
pub type ByteStream = BoxStream<'static, Result<Bytes>>;

/// What a component can do beyond the core operations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Features {
    /// Presigned URLs a plain HTTP client can use.
    pub sign_url: bool,
    /// AppendObject.
    pub append: bool,
    /// Canned ACLs are kept and read back.
    pub acl: bool,
    /// Object tags.
    pub tagging: bool,
    /// Several versions of an object.
    pub versions: bool,
}

/// An object as listed, headed or read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    pub size: i64,
    pub etag: String,
    /// Unix seconds.
    pub last_modified: i64,
    pub content_type: String,
    pub cache_control: String,
    pub content_disposition: String,
    pub content_encoding: String,
    pub storage_class: String,
    pub version_id: String,
    /// The caller's metadata (S3's `x-amz-meta-*`).
    pub metadata: BTreeMap<String, String>,
    pub tag_count: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PutObject {
    pub bucket: String,
    pub key: String,
    pub content_type: String,
    pub cache_control: String,
    pub content_disposition: String,
    pub content_encoding: String,
    pub acl: String,
    pub storage_class: String,
    pub metadata: BTreeMap<String, String>,
    pub tagging: BTreeMap<String, String>,
    /// The body's length when the caller knows it (0: unknown).
    pub content_length: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Written {
    pub etag: String,
    pub version_id: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GetObject {
    pub bucket: String,
    pub key: String,
    pub version_id: String,
    /// Bytes `start..=end`; `None` for the whole object.
    pub range: Option<(u64, Option<u64>)>,
}

/// What GetObject answers besides the body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectBody {
    pub info: ObjectInfo,
    /// Length of the body being sent (the range's, for a range).
    pub content_length: i64,
    /// `bytes start-end/size` for a range.
    pub content_range: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListObjects {
    pub bucket: String,
    pub prefix: String,
    pub delimiter: String,
    /// Start after this key.
    pub marker: String,
    /// At most this many keys (1000 when 0).
    pub max_keys: i32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    pub contents: Vec<ObjectInfo>,
    pub common_prefixes: Vec<String>,
    pub is_truncated: bool,
    /// The marker of the next page when truncated.
    pub next_marker: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyObject {
    pub bucket: String,
    pub key: String,
    pub source_bucket: String,
    pub source_key: String,
    pub source_version_id: String,
    /// `REPLACE` takes `metadata`; otherwise the source's is copied.
    pub metadata_directive: String,
    pub metadata: BTreeMap<String, String>,
    pub tagging: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Deleted {
    pub key: String,
    pub version_id: String,
    pub delete_marker: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MultipartUpload {
    pub key: String,
    pub upload_id: String,
    /// Unix seconds.
    pub initiated: i64,
    pub storage_class: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Uploads {
    pub uploads: Vec<MultipartUpload>,
    pub common_prefixes: Vec<String>,
    pub is_truncated: bool,
    pub next_key_marker: String,
    pub next_upload_id_marker: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Part {
    pub part_number: i64,
    pub etag: String,
    pub size: i64,
    pub last_modified: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parts {
    pub parts: Vec<Part>,
    pub is_truncated: bool,
    pub next_part_number_marker: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Version {
    pub key: String,
    pub version_id: String,
    pub is_latest: bool,
    pub etag: String,
    pub size: i64,
    pub last_modified: i64,
    pub storage_class: String,
    /// A delete marker rather than an object.
    pub delete_marker: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Versions {
    pub versions: Vec<Version>,
    pub common_prefixes: Vec<String>,
    pub is_truncated: bool,
    pub next_key_marker: String,
    pub next_version_id_marker: String,
}

/// UNIMPLEMENTED naming the store, the operation and why.
pub fn unsupported(store: &str, operation: &str, why: &str) -> Error {
    Error::new(ErrorKind::Unsupported, format!("oss store '{store}': {operation} is not supported: {why}"))
}

/// NOT_FOUND naming the store, bucket and key.
pub fn no_such_key(store: &str, bucket: &str, key: &str) -> Error {
    Error::new(
        ErrorKind::NotFound,
        format!("oss store '{store}': bucket '{}': key '{}' does not exist", clip(bucket), clip(key)),
    )
}

/// An object store component. Bucket and key are checked by the API layer
/// to be present; components check what their backend needs beyond that.
#[async_trait]
pub trait ObjectStore: Send + Sync {
    fn features(&self) -> Features;

    async fn put_object(&self, req: PutObject, body: ByteStream) -> Result<Written>;

    async fn get_object(&self, req: GetObject) -> Result<(ObjectBody, ByteStream)>;

    async fn head_object(&self, bucket: &str, key: &str, version_id: &str) -> Result<ObjectInfo>;

    async fn delete_object(&self, bucket: &str, key: &str, version_id: &str) -> Result<Deleted>;

    /// Deletes each (key, version); a missing key counts as deleted, as in S3.
    async fn delete_objects(&self, bucket: &str, objects: Vec<(String, String)>) -> Result<Vec<Deleted>>;

    async fn copy_object(&self, req: CopyObject) -> Result<Written>;

    async fn list_objects(&self, req: ListObjects) -> Result<Listing>;

    async fn put_tagging(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
        tags: BTreeMap<String, String>,
    ) -> Result<String>;

    async fn get_tagging(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
    ) -> Result<BTreeMap<String, String>>;

    async fn delete_tagging(&self, bucket: &str, key: &str, version_id: &str) -> Result<String>;

    async fn put_acl(&self, bucket: &str, key: &str, acl: &str) -> Result<()>;

    async fn get_acl(&self, bucket: &str, key: &str) -> Result<String>;

    /// A new upload; its id.
    async fn create_multipart(&self, req: PutObject) -> Result<String>;

    /// One part (1..=10000); its etag.
    async fn upload_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number: i32,
        content_length: i64,
        body: ByteStream,
    ) -> Result<String>;

    /// A part copied from (a range of) another object; its etag.
    #[allow(clippy::too_many_arguments)]
    async fn upload_part_copy(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number: i32,
        source: (&str, &str, &str),
        range: Option<(u64, u64)>,
    ) -> Result<String>;

    /// Assembles the parts (number, etag) in order.
    async fn complete_multipart(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: Vec<(i32, String)>,
    ) -> Result<Written>;

    async fn abort_multipart(&self, bucket: &str, key: &str, upload_id: &str) -> Result<()>;

    async fn list_uploads(
        &self,
        bucket: &str,
        prefix: &str,
        key_marker: &str,
        upload_id_marker: &str,
        max: i64,
    ) -> Result<Uploads>;

    async fn list_parts(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        marker: i64,
        max: i64,
    ) -> Result<Parts>;

    async fn list_versions(&self, req: ListObjects, version_id_marker: &str) -> Result<Versions>;

    /// A URL a plain HTTP client can GET or PUT until `expires_in` seconds pass.
    async fn sign_url(&self, bucket: &str, key: &str, method: &str, expires_in: u64) -> Result<String>;

    /// Appends at `position` (the object's current size); the new size.
    async fn append_object(&self, bucket: &str, key: &str, position: i64, body: ByteStream) -> Result<i64>;

    async fn health(&self) -> Health {
        Health::up()
    }
}

/// The object store types this build can construct (API names `oss` and `file`).
pub fn registry(api: &'static str) -> Registry<dyn ObjectStore> {
    let mut registry: Registry<dyn ObjectStore> = Registry::new(api);
    registry.register(components::local::LocalStore::TYPE, components::local::LocalStore::build);
    #[cfg(feature = "s3")]
    for kind in components::s3::S3Store::TYPES {
        registry.register(kind, components::s3::S3Store::build);
    }
    registry
}
