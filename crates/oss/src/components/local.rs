//! `local`: objects as files under a directory (metadata `root`, default
//! `layotto-oss` in the system's temporary directory). A bucket is a
//! subdirectory, created by its first write (Layotto's API has no
//! CreateBucket); a key is a path below it. Content type, metadata, tags,
//! the ACL and the etag live in a sidecar JSON file under
//! `<root>/.layotto/meta`, uploads in progress under `<root>/.layotto/uploads`.
//!
//! Writes go to a temporary file first and are renamed into place when the
//! body has arrived whole, so a client that cancels mid-stream leaves
//! nothing visible. Keys cannot leave the bucket: `..`, `.`, empty segments,
//! absolute paths and symbolic links are refused. On disk a key cannot also
//! be a "directory" of other keys (`a` and `a/b`); such a write is refused.
//! There are no versions (every object is version `null`) and no presigned
//! URLs (a directory has no HTTP endpoint).

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use layotto_core::{ComponentContext, Error, ErrorKind, Result, clip};
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use crate::{
    ByteStream, CopyObject, Deleted, Features, GetObject, ListObjects, Listing, MultipartUpload, ObjectBody,
    ObjectInfo, ObjectStore, Part, Parts, PutObject, Uploads, Version, Versions, Written, no_such_key,
    unsupported,
};

/// Chunks of a body read from disk.
const CHUNK: usize = 256 * 1024;

#[derive(Deserialize)]
struct LocalSettings {
    #[serde(default)]
    root: Option<PathBuf>,
}

pub struct LocalStore {
    name: String,
    root: PathBuf,
}

/// What S3 keeps beside an object's bytes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Sidecar {
    etag: String,
    content_type: String,
    cache_control: String,
    content_disposition: String,
    content_encoding: String,
    storage_class: String,
    acl: String,
    metadata: BTreeMap<String, String>,
    tags: BTreeMap<String, String>,
}

impl Sidecar {
    fn from_put(req: &PutObject, etag: String) -> Self {
        Self {
            etag,
            content_type: req.content_type.clone(),
            cache_control: req.cache_control.clone(),
            content_disposition: req.content_disposition.clone(),
            content_encoding: req.content_encoding.clone(),
            storage_class: req.storage_class.clone(),
            acl: req.acl.clone(),
            metadata: req.metadata.clone(),
            tags: req.tagging.clone(),
        }
    }
}

/// An upload in progress.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Upload {
    bucket: String,
    key: String,
    initiated: i64,
    sidecar: Sidecar,
}

/// A temporary file, removed unless it was put in place.
struct TempFile {
    path: PathBuf,
    kept: bool,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.kept {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn quoted(digest: &[u8]) -> String {
    format!("\"{}\"", hex::encode(digest))
}

fn unix(time: std::io::Result<std::time::SystemTime>) -> i64 {
    time.ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl LocalStore {
    pub const TYPE: &'static str = "local";

    pub async fn build(ctx: ComponentContext) -> Result<Arc<dyn ObjectStore>> {
        let settings: LocalSettings = ctx.settings()?;
        let root =
            settings.root.map(|r| ctx.path(&r)).unwrap_or_else(|| std::env::temp_dir().join("layotto-oss"));
        Ok(Arc::new(Self::new(&ctx.name, &root)?))
    }

    pub fn new(name: &str, root: &Path) -> Result<Self> {
        let describe = format!("oss store '{name}' (local)");
        for dir in ["tmp", "meta", "uploads"] {
            std::fs::create_dir_all(root.join(".layotto").join(dir))
                .map_err(|e| Error::config(format!("{describe}: cannot create {}: {e}", root.display())))?;
        }
        let root = root
            .canonicalize()
            .map_err(|e| Error::config(format!("{describe}: root {}: {e}", root.display())))?;
        Ok(Self { name: name.to_owned(), root })
    }

    fn invalid(&self, what: String) -> Error {
        Error::invalid_argument(format!("oss store '{}': {what}", self.name))
    }

    fn io(&self, what: &str, e: std::io::Error) -> Error {
        let kind = match e.kind() {
            std::io::ErrorKind::NotFound => ErrorKind::NotFound,
            std::io::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
            _ => ErrorKind::Internal,
        };
        Error::new(kind, format!("oss store '{}': {what}: {e}", self.name))
    }

    fn check_bucket(&self, bucket: &str) -> Result<()> {
        if bucket.is_empty() || bucket.starts_with('.') || bucket.contains(['/', '\\', '\0']) {
            return Err(self.invalid(format!(
                "bucket '{}' must be a name without '/' that does not start with '.'",
                clip(bucket)
            )));
        }
        Ok(())
    }

    /// The file of `key` in `bucket`, refusing anything that could leave it.
    fn object_path(&self, bucket: &str, key: &str) -> Result<PathBuf> {
        self.check_bucket(bucket)?;
        let bad = |why: &str| self.invalid(format!("bucket '{}': key '{}' {why}", clip(bucket), clip(key)));
        if key.is_empty() {
            return Err(bad("is empty"));
        }
        if key.contains(['\\', '\0']) {
            return Err(bad("contains '\\' or NUL"));
        }
        if key.split('/').any(|segment| segment.is_empty() || segment == "." || segment == "..") {
            return Err(bad("has an empty, '.' or '..' segment, or starts or ends with '/'"));
        }
        let relative = Path::new(key);
        if !relative.components().all(|c| matches!(c, Component::Normal(_))) {
            return Err(bad("is not a relative path"));
        }
        let path = self.root.join(bucket).join(relative);
        // A symbolic link anywhere below the root could lead out of it.
        let mut walked = self.root.clone();
        for part in Path::new(bucket).join(relative).components() {
            walked.push(part);
            if std::fs::symlink_metadata(&walked).is_ok_and(|m| m.file_type().is_symlink()) {
                return Err(bad("leads through a symbolic link"));
            }
        }
        Ok(path)
    }

    fn sidecar_path(&self, bucket: &str, key: &str) -> PathBuf {
        self.root.join(".layotto/meta").join(bucket).join(format!("{key}.json"))
    }

    async fn read_sidecar(&self, bucket: &str, key: &str) -> Sidecar {
        match tokio::fs::read(self.sidecar_path(bucket, key)).await {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_default(),
            Err(_) => Sidecar::default(),
        }
    }

    async fn write_sidecar(&self, bucket: &str, key: &str, sidecar: &Sidecar) -> Result<()> {
        let path = self.sidecar_path(bucket, key);
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(|e| self.io("writing metadata", e))?;
        }
        let json = serde_json::to_vec(sidecar).map_err(|e| Error::internal(e.to_string()))?;
        tokio::fs::write(&path, json).await.map_err(|e| self.io("writing metadata", e))
    }

    fn temp(&self) -> TempFile {
        TempFile {
            path: self.root.join(".layotto/tmp").join(uuid::Uuid::new_v4().simple().to_string()),
            kept: false,
        }
    }

    /// Streams `body` into a temporary file; its md5 and length.
    async fn receive(&self, temp: &TempFile, mut body: ByteStream) -> Result<(Vec<u8>, i64)> {
        let mut file = tokio::fs::File::create(&temp.path).await.map_err(|e| self.io("writing", e))?;
        let mut md5 = Md5::new();
        let mut size = 0i64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            md5.update(&chunk);
            size += chunk.len() as i64;
            file.write_all(&chunk).await.map_err(|e| self.io("writing", e))?;
        }
        file.flush().await.map_err(|e| self.io("writing", e))?;
        Ok((md5.finalize().to_vec(), size))
    }

    /// Puts a finished temporary file in place as `bucket`/`key`.
    async fn commit(&self, mut temp: TempFile, bucket: &str, key: &str) -> Result<()> {
        let path = self.object_path(bucket, key)?;
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(|_| {
                self.invalid(format!(
                    "bucket '{}': key '{}' conflicts with an object whose key is a prefix of it",
                    clip(bucket),
                    clip(key)
                ))
            })?;
        }
        if tokio::fs::metadata(&path).await.is_ok_and(|m| m.is_dir()) {
            return Err(self.invalid(format!(
                "bucket '{}': key '{}' is a prefix of other objects' keys",
                clip(bucket),
                clip(key)
            )));
        }
        tokio::fs::rename(&temp.path, &path).await.map_err(|e| self.io("writing", e))?;
        temp.kept = true;
        Ok(())
    }

    async fn info(&self, bucket: &str, key: &str) -> Result<ObjectInfo> {
        let path = self.object_path(bucket, key)?;
        let meta = match tokio::fs::metadata(&path).await {
            Ok(meta) if meta.is_file() => meta,
            _ => return Err(no_such_key(&self.name, bucket, key)),
        };
        let sidecar = self.read_sidecar(bucket, key).await;
        Ok(ObjectInfo {
            key: key.to_owned(),
            size: i64::try_from(meta.len()).unwrap_or(i64::MAX),
            etag: sidecar.etag,
            last_modified: unix(meta.modified()),
            content_type: if sidecar.content_type.is_empty() {
                "application/octet-stream".to_owned()
            } else {
                sidecar.content_type
            },
            cache_control: sidecar.cache_control,
            content_disposition: sidecar.content_disposition,
            content_encoding: sidecar.content_encoding,
            storage_class: if sidecar.storage_class.is_empty() {
                "STANDARD".into()
            } else {
                sidecar.storage_class
            },
            version_id: "null".into(),
            tag_count: sidecar.tags.len() as i64,
            metadata: sidecar.metadata,
        })
    }

    fn check_version(&self, bucket: &str, key: &str, version_id: &str) -> Result<()> {
        if version_id.is_empty() || version_id == "null" {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::NotFound,
                format!(
                    "oss store '{}': bucket '{}': key '{}' has no version '{}' (local objects have only 'null')",
                    self.name,
                    clip(bucket),
                    clip(key),
                    clip(version_id)
                ),
            ))
        }
    }

    /// Every key of `bucket`, sorted.
    async fn keys(&self, bucket: &str) -> Result<Vec<String>> {
        self.check_bucket(bucket)?;
        let base = self.root.join(bucket);
        let mut keys = Vec::new();
        let mut dirs = vec![base.clone()];
        while let Some(dir) = dirs.pop() {
            let mut entries = match tokio::fs::read_dir(&dir).await {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(self.io("listing", e)),
            };
            while let Some(entry) = entries.next_entry().await.map_err(|e| self.io("listing", e))? {
                let kind = entry.file_type().await.map_err(|e| self.io("listing", e))?;
                if kind.is_dir() {
                    dirs.push(entry.path());
                } else if kind.is_file()
                    && let Ok(relative) = entry.path().strip_prefix(&base)
                {
                    let key: Vec<String> =
                        relative.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
                    keys.push(key.join("/"));
                }
            }
        }
        keys.sort();
        Ok(keys)
    }

    /// S3's listing rules over sorted `names`: after `marker`, under
    /// `prefix`, grouped at `delimiter`, at most `max` entries.
    fn page(names: &[String], req: &ListObjects) -> (Vec<String>, Vec<String>, bool, String) {
        let max = if req.max_keys <= 0 { 1000 } else { req.max_keys as usize };
        let (mut keys, mut prefixes) = (Vec::new(), Vec::<String>::new());
        let mut last = String::new();
        for name in names.iter().filter(|n| n.starts_with(&req.prefix) && n.as_str() > req.marker.as_str()) {
            let rest = &name[req.prefix.len()..];
            let group = (!req.delimiter.is_empty())
                .then(|| {
                    rest.find(&req.delimiter)
                        .map(|i| format!("{}{}", req.prefix, &rest[..i + req.delimiter.len()]))
                })
                .flatten();
            if let Some(group) = &group
                && prefixes.last() == Some(group)
            {
                continue;
            }
            if keys.len() + prefixes.len() == max {
                return (keys, prefixes, true, last);
            }
            match group {
                Some(group) => {
                    last = group.clone();
                    prefixes.push(group);
                }
                None => {
                    last = name.clone();
                    keys.push(name.clone());
                }
            }
        }
        (keys, prefixes, false, String::new())
    }

    fn upload_dir(&self, upload_id: &str) -> Result<PathBuf> {
        if upload_id.is_empty() || !upload_id.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(
                self.invalid(format!("upload_id '{}' is not an upload of this store", clip(upload_id)))
            );
        }
        Ok(self.root.join(".layotto/uploads").join(upload_id))
    }

    async fn upload(&self, bucket: &str, key: &str, upload_id: &str) -> Result<(PathBuf, Upload)> {
        let dir = self.upload_dir(upload_id)?;
        let missing = || {
            Error::new(
                ErrorKind::NotFound,
                format!(
                    "oss store '{}': bucket '{}': key '{}': no upload '{}'",
                    self.name,
                    clip(bucket),
                    clip(key),
                    clip(upload_id)
                ),
            )
        };
        let bytes = tokio::fs::read(dir.join("upload.json")).await.map_err(|_| missing())?;
        let upload: Upload = serde_json::from_slice(&bytes).map_err(|_| missing())?;
        if upload.bucket != bucket || upload.key != key {
            return Err(missing());
        }
        Ok((dir, upload))
    }

    async fn write_part(&self, dir: &Path, part_number: i32, body: ByteStream) -> Result<String> {
        if !(1..=10_000).contains(&part_number) {
            return Err(self.invalid(format!("part_number {part_number} must be between 1 and 10000")));
        }
        let temp = TempFile { path: dir.join(format!("part-{part_number:05}.tmp")), kept: false };
        let (md5, _) = self.receive(&temp, body).await?;
        let mut temp = temp;
        tokio::fs::rename(&temp.path, dir.join(format!("part-{part_number:05}")))
            .await
            .map_err(|e| self.io("writing a part", e))?;
        temp.kept = true;
        let etag = quoted(&md5);
        tokio::fs::write(dir.join(format!("part-{part_number:05}.etag")), &etag)
            .await
            .map_err(|e| self.io("writing a part", e))?;
        Ok(etag)
    }

    /// A stream over bytes `start..end` of a file.
    async fn read_range(&self, path: &Path, start: u64, len: u64) -> Result<ByteStream> {
        let mut file = tokio::fs::File::open(path).await.map_err(|e| self.io("reading", e))?;
        file.seek(std::io::SeekFrom::Start(start)).await.map_err(|e| self.io("reading", e))?;
        let reader = tokio_util::io::ReaderStream::with_capacity(file.take(len), CHUNK);
        let name = self.name.clone();
        Ok(reader
            .map(move |chunk| chunk.map_err(|e| Error::internal(format!("oss store '{name}': reading: {e}"))))
            .boxed())
    }
}

#[async_trait]
impl ObjectStore for LocalStore {
    fn features(&self) -> Features {
        Features { sign_url: false, append: true, acl: true, tagging: true, versions: false }
    }

    async fn put_object(&self, req: PutObject, body: ByteStream) -> Result<Written> {
        self.object_path(&req.bucket, &req.key)?;
        let temp = self.temp();
        let (md5, _) = self.receive(&temp, body).await?;
        let etag = quoted(&md5);
        self.commit(temp, &req.bucket, &req.key).await?;
        self.write_sidecar(&req.bucket, &req.key, &Sidecar::from_put(&req, etag.clone())).await?;
        Ok(Written { etag, version_id: String::new() })
    }

    async fn get_object(&self, req: GetObject) -> Result<(ObjectBody, ByteStream)> {
        self.check_version(&req.bucket, &req.key, &req.version_id)?;
        let info = self.info(&req.bucket, &req.key).await?;
        let size = info.size.max(0) as u64;
        let (start, end, content_range) = match req.range {
            None => (0, size, String::new()),
            Some((start, end)) => {
                let end = end.map_or(size, |e| (e + 1).min(size));
                if start >= size || start >= end {
                    return Err(self.invalid(format!(
                        "bucket '{}': key '{}': range starting at {start} is outside its {size} bytes",
                        clip(&req.bucket),
                        clip(&req.key)
                    )));
                }
                (start, end, format!("bytes {start}-{}/{size}", end - 1))
            }
        };
        let body = self.read_range(&self.object_path(&req.bucket, &req.key)?, start, end - start).await?;
        Ok((ObjectBody { info, content_length: (end - start) as i64, content_range }, body))
    }

    async fn head_object(&self, bucket: &str, key: &str, version_id: &str) -> Result<ObjectInfo> {
        self.check_version(bucket, key, version_id)?;
        self.info(bucket, key).await
    }

    async fn delete_object(&self, bucket: &str, key: &str, version_id: &str) -> Result<Deleted> {
        self.check_version(bucket, key, version_id)?;
        let path = self.object_path(bucket, key)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(self.io("deleting", e)),
        }
        let _ = tokio::fs::remove_file(self.sidecar_path(bucket, key)).await;
        // Empty directories the key left behind go too, up to the bucket.
        let bucket_dir = self.root.join(bucket);
        let mut dir = path.parent().map(Path::to_path_buf);
        while let Some(d) = dir.filter(|d| *d != bucket_dir && d.starts_with(&bucket_dir)) {
            if tokio::fs::remove_dir(&d).await.is_err() {
                break;
            }
            dir = d.parent().map(Path::to_path_buf);
        }
        Ok(Deleted { key: key.to_owned(), version_id: String::new(), delete_marker: false })
    }

    async fn delete_objects(&self, bucket: &str, objects: Vec<(String, String)>) -> Result<Vec<Deleted>> {
        let mut deleted = Vec::with_capacity(objects.len());
        for (key, version) in objects {
            deleted.push(self.delete_object(bucket, &key, &version).await?);
        }
        Ok(deleted)
    }

    async fn copy_object(&self, req: CopyObject) -> Result<Written> {
        self.check_version(&req.source_bucket, &req.source_key, &req.source_version_id)?;
        let source = self.object_path(&req.source_bucket, &req.source_key)?;
        self.info(&req.source_bucket, &req.source_key).await?;
        self.object_path(&req.bucket, &req.key)?;
        let temp = self.temp();
        tokio::fs::copy(&source, &temp.path).await.map_err(|e| self.io("copying", e))?;
        let mut sidecar = self.read_sidecar(&req.source_bucket, &req.source_key).await;
        if req.metadata_directive.eq_ignore_ascii_case("REPLACE") {
            sidecar.metadata = req.metadata;
        }
        if !req.tagging.is_empty() {
            sidecar.tags = req.tagging;
        }
        self.commit(temp, &req.bucket, &req.key).await?;
        self.write_sidecar(&req.bucket, &req.key, &sidecar).await?;
        Ok(Written { etag: sidecar.etag, version_id: String::new() })
    }

    async fn list_objects(&self, req: ListObjects) -> Result<Listing> {
        let keys = self.keys(&req.bucket).await?;
        let (page, common_prefixes, is_truncated, next_marker) = Self::page(&keys, &req);
        let mut contents = Vec::with_capacity(page.len());
        for key in page {
            contents.push(self.info(&req.bucket, &key).await?);
        }
        Ok(Listing { contents, common_prefixes, is_truncated, next_marker })
    }

    async fn put_tagging(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
        tags: BTreeMap<String, String>,
    ) -> Result<String> {
        self.head_object(bucket, key, version_id).await?;
        let mut sidecar = self.read_sidecar(bucket, key).await;
        sidecar.tags = tags;
        self.write_sidecar(bucket, key, &sidecar).await?;
        Ok(String::new())
    }

    async fn get_tagging(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
    ) -> Result<BTreeMap<String, String>> {
        self.head_object(bucket, key, version_id).await?;
        Ok(self.read_sidecar(bucket, key).await.tags)
    }

    async fn delete_tagging(&self, bucket: &str, key: &str, version_id: &str) -> Result<String> {
        self.put_tagging(bucket, key, version_id, BTreeMap::new()).await
    }

    async fn put_acl(&self, bucket: &str, key: &str, acl: &str) -> Result<()> {
        const CANNED: [&str; 7] = [
            "private",
            "public-read",
            "public-read-write",
            "authenticated-read",
            "aws-exec-read",
            "bucket-owner-read",
            "bucket-owner-full-control",
        ];
        if !CANNED.contains(&acl) {
            return Err(self.invalid(format!(
                "acl '{}' is not a canned ACL ({})",
                clip(acl),
                CANNED.join(", ")
            )));
        }
        self.info(bucket, key).await?;
        let mut sidecar = self.read_sidecar(bucket, key).await;
        sidecar.acl = acl.to_owned();
        self.write_sidecar(bucket, key, &sidecar).await
    }

    async fn get_acl(&self, bucket: &str, key: &str) -> Result<String> {
        self.info(bucket, key).await?;
        let acl = self.read_sidecar(bucket, key).await.acl;
        Ok(if acl.is_empty() { "private".into() } else { acl })
    }

    async fn create_multipart(&self, req: PutObject) -> Result<String> {
        self.object_path(&req.bucket, &req.key)?;
        let upload_id = uuid::Uuid::new_v4().simple().to_string();
        let dir = self.upload_dir(&upload_id)?;
        tokio::fs::create_dir_all(&dir).await.map_err(|e| self.io("starting an upload", e))?;
        let initiated = unix(Ok(std::time::SystemTime::now()));
        let upload = Upload {
            bucket: req.bucket.clone(),
            key: req.key.clone(),
            initiated,
            sidecar: Sidecar::from_put(&req, String::new()),
        };
        let json = serde_json::to_vec(&upload).map_err(|e| Error::internal(e.to_string()))?;
        tokio::fs::write(dir.join("upload.json"), json)
            .await
            .map_err(|e| self.io("starting an upload", e))?;
        Ok(upload_id)
    }

    async fn upload_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number: i32,
        _content_length: i64,
        body: ByteStream,
    ) -> Result<String> {
        let (dir, _) = self.upload(bucket, key, upload_id).await?;
        self.write_part(&dir, part_number, body).await
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
        let (dir, _) = self.upload(bucket, key, upload_id).await?;
        let (_, body) = self
            .get_object(GetObject {
                bucket: source_bucket.to_owned(),
                key: source_key.to_owned(),
                version_id: source_version.to_owned(),
                range: range.map(|(start, end)| (start, Some(end))),
            })
            .await?;
        self.write_part(&dir, part_number, body).await
    }

    async fn complete_multipart(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: Vec<(i32, String)>,
    ) -> Result<Written> {
        let (dir, upload) = self.upload(bucket, key, upload_id).await?;
        if parts.is_empty() {
            return Err(self.invalid(format!("upload '{}': no parts to complete it with", clip(upload_id))));
        }
        if parts.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err(self.invalid("the parts must be in ascending order of part_number".to_owned()));
        }
        let temp = self.temp();
        let mut out = tokio::fs::File::create(&temp.path).await.map_err(|e| self.io("completing", e))?;
        let mut digests = Md5::new();
        for (number, etag) in &parts {
            let stored =
                tokio::fs::read_to_string(dir.join(format!("part-{number:05}.etag"))).await.map_err(
                    |_| self.invalid(format!("upload '{}': part {number} was not uploaded", clip(upload_id))),
                )?;
            if stored.trim_matches('"') != etag.trim_matches('"') {
                return Err(self.invalid(format!(
                    "upload '{}': part {number} has etag {stored}, not {}",
                    clip(upload_id),
                    clip(etag)
                )));
            }
            digests.update(hex::decode(stored.trim_matches('"')).unwrap_or_default());
            let mut part = tokio::fs::File::open(dir.join(format!("part-{number:05}")))
                .await
                .map_err(|e| self.io("completing", e))?;
            tokio::io::copy(&mut part, &mut out).await.map_err(|e| self.io("completing", e))?;
        }
        out.flush().await.map_err(|e| self.io("completing", e))?;
        drop(out);
        let etag = format!("\"{}-{}\"", hex::encode(digests.finalize()), parts.len());
        self.commit(temp, bucket, key).await?;
        let mut sidecar = upload.sidecar;
        sidecar.etag = etag.clone();
        self.write_sidecar(bucket, key, &sidecar).await?;
        let _ = tokio::fs::remove_dir_all(&dir).await;
        Ok(Written { etag, version_id: String::new() })
    }

    async fn abort_multipart(&self, bucket: &str, key: &str, upload_id: &str) -> Result<()> {
        let (dir, _) = self.upload(bucket, key, upload_id).await?;
        tokio::fs::remove_dir_all(&dir).await.map_err(|e| self.io("aborting", e))
    }

    async fn list_uploads(
        &self,
        bucket: &str,
        prefix: &str,
        key_marker: &str,
        upload_id_marker: &str,
        max: i64,
    ) -> Result<Uploads> {
        self.check_bucket(bucket)?;
        let max = if max <= 0 { 1000 } else { max as usize };
        let mut all = Vec::new();
        let mut entries = tokio::fs::read_dir(self.root.join(".layotto/uploads"))
            .await
            .map_err(|e| self.io("listing", e))?;
        while let Some(entry) = entries.next_entry().await.map_err(|e| self.io("listing", e))? {
            let Ok(bytes) = tokio::fs::read(entry.path().join("upload.json")).await else { continue };
            let Ok(upload) = serde_json::from_slice::<Upload>(&bytes) else { continue };
            if upload.bucket == bucket && upload.key.starts_with(prefix) {
                all.push(MultipartUpload {
                    key: upload.key,
                    upload_id: entry.file_name().to_string_lossy().into_owned(),
                    initiated: upload.initiated,
                    storage_class: upload.sidecar.storage_class,
                });
            }
        }
        all.sort_by(|a, b| (&a.key, &a.upload_id).cmp(&(&b.key, &b.upload_id)));
        let after = |u: &MultipartUpload| {
            key_marker.is_empty()
                || u.key.as_str() > key_marker
                || (u.key == key_marker
                    && !upload_id_marker.is_empty()
                    && u.upload_id.as_str() > upload_id_marker)
        };
        let rest: Vec<MultipartUpload> = all.into_iter().filter(after).collect();
        let is_truncated = rest.len() > max;
        let uploads: Vec<MultipartUpload> = rest.into_iter().take(max).collect();
        let (next_key_marker, next_upload_id_marker) = match uploads.last().filter(|_| is_truncated) {
            Some(last) => (last.key.clone(), last.upload_id.clone()),
            None => Default::default(),
        };
        Ok(Uploads {
            uploads,
            common_prefixes: Vec::new(),
            is_truncated,
            next_key_marker,
            next_upload_id_marker,
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
        let (dir, _) = self.upload(bucket, key, upload_id).await?;
        let max = if max <= 0 { 1000 } else { max as usize };
        let mut parts = Vec::new();
        let mut entries = tokio::fs::read_dir(&dir).await.map_err(|e| self.io("listing parts", e))?;
        while let Some(entry) = entries.next_entry().await.map_err(|e| self.io("listing parts", e))? {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(number) = name.strip_prefix("part-").and_then(|n| n.parse::<i64>().ok()) else {
                continue;
            };
            if number <= marker {
                continue;
            }
            let meta = entry.metadata().await.map_err(|e| self.io("listing parts", e))?;
            let etag = tokio::fs::read_to_string(dir.join(format!("{name}.etag"))).await.unwrap_or_default();
            parts.push(Part {
                part_number: number,
                etag,
                size: meta.len() as i64,
                last_modified: unix(meta.modified()),
            });
        }
        parts.sort_by_key(|p| p.part_number);
        let is_truncated = parts.len() > max;
        parts.truncate(max);
        let next_part_number_marker =
            if is_truncated { parts.last().map_or(0, |p| p.part_number) } else { 0 };
        Ok(Parts { parts, is_truncated, next_part_number_marker })
    }

    async fn list_versions(&self, req: ListObjects, _version_id_marker: &str) -> Result<Versions> {
        let listing = self.list_objects(req).await?;
        Ok(Versions {
            versions: listing
                .contents
                .into_iter()
                .map(|o| Version {
                    key: o.key,
                    version_id: "null".into(),
                    is_latest: true,
                    etag: o.etag,
                    size: o.size,
                    last_modified: o.last_modified,
                    storage_class: o.storage_class,
                    delete_marker: false,
                })
                .collect(),
            common_prefixes: listing.common_prefixes,
            is_truncated: listing.is_truncated,
            next_key_marker: listing.next_marker,
            next_version_id_marker: String::new(),
        })
    }

    async fn sign_url(&self, _: &str, _: &str, _: &str, _: u64) -> Result<String> {
        Err(unsupported(&self.name, "SignURL", "a local directory has no HTTP endpoint to sign a URL for"))
    }

    async fn append_object(
        &self,
        bucket: &str,
        key: &str,
        position: i64,
        mut body: ByteStream,
    ) -> Result<i64> {
        let path = self.object_path(bucket, key)?;
        let current = match tokio::fs::metadata(&path).await {
            Ok(meta) => meta.len() as i64,
            Err(_) => 0,
        };
        if position != current {
            return Err(self.invalid(format!(
                "bucket '{}': key '{}': append position {position} is not the object's size {current}",
                clip(bucket),
                clip(key)
            )));
        }
        if current == 0 {
            let written = self
                .put_object(PutObject { bucket: bucket.into(), key: key.into(), ..Default::default() }, body)
                .await;
            written?;
            return Ok(self.info(bucket, key).await?.size);
        }
        let mut file = tokio::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .await
            .map_err(|e| self.io("appending", e))?;
        let mut size = current;
        while let Some(chunk) = body.next().await {
            let chunk: Bytes = chunk?;
            size += chunk.len() as i64;
            file.write_all(&chunk).await.map_err(|e| self.io("appending", e))?;
        }
        file.flush().await.map_err(|e| self.io("appending", e))?;
        // The etag is the md5 of the whole object again.
        let mut md5 = Md5::new();
        let mut reader = tokio::fs::File::open(&path).await.map_err(|e| self.io("appending", e))?;
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = reader.read(&mut buf).await.map_err(|e| self.io("appending", e))?;
            if n == 0 {
                break;
            }
            md5.update(&buf[..n]);
        }
        let mut sidecar = self.read_sidecar(bucket, key).await;
        sidecar.etag = quoted(&md5.finalize());
        self.write_sidecar(bucket, key, &sidecar).await?;
        Ok(size)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn pages_follow_s3s_rules() {
        let names: Vec<String> =
            ["a/1", "a/2", "b", "c/x/1", "c/y"].iter().map(|s| (*s).to_owned()).collect();
        let req = |prefix: &str, delimiter: &str, marker: &str, max: i32| ListObjects {
            bucket: "b".into(),
            prefix: prefix.into(),
            delimiter: delimiter.into(),
            marker: marker.into(),
            max_keys: max,
        };
        let (keys, prefixes, truncated, _) = LocalStore::page(&names, &req("", "/", "", 0));
        assert_eq!(
            (keys, prefixes, truncated),
            (vec!["b".to_owned()], vec!["a/".to_owned(), "c/".to_owned()], false)
        );
        let (keys, prefixes, truncated, next) = LocalStore::page(&names, &req("", "", "", 2));
        assert_eq!((keys.len(), prefixes.len(), truncated, next.as_str()), (2, 0, true, "a/2"));
        let (keys, _, truncated, _) = LocalStore::page(&names, &req("", "", "a/2", 10));
        assert_eq!((keys, truncated), (vec!["b".to_owned(), "c/x/1".to_owned(), "c/y".to_owned()], false));
        let (keys, prefixes, _, _) = LocalStore::page(&names, &req("c/", "/", "", 0));
        assert_eq!((keys, prefixes), (vec!["c/y".to_owned()], vec!["c/x/".to_owned()]));
    }

    #[test]
    fn keys_cannot_leave_the_bucket() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new("l", dir.path()).unwrap();
        for bad in ["../x", "a/../../x", "/etc/passwd", "a//b", "./a", "a/", ""] {
            assert!(store.object_path("b", bad).is_err(), "{bad}");
        }
        for bad in ["..", ".layotto", "a/b", ""] {
            assert!(store.object_path(bad, "k").is_err(), "{bad}");
        }
        std::fs::create_dir_all(dir.path().join("b")).unwrap();
        std::os::unix::fs::symlink("/etc", dir.path().join("b/link")).unwrap();
        let err = store.object_path("b", "link/passwd").unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        assert!(store.object_path("b", "ünïcode/a b/c").is_ok());
    }
}
