//! `spec.proto.extension.v1.s3.ObjectStorageService` on the shared API
//! layer, and the bodies both it and the File API stream: client streams
//! become a component's [`ByteStream`] chunk by chunk, component streams go
//! back in chunks of at most 1 MiB through a channel of two, so a slow
//! reader holds the producer back instead of filling memory.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};
use layotto_oss::{ByteStream, CopyObject, GetObject, ListObjects, ObjectBody, PutObject, unsupported};
use tonic::{Request, Response, Status, Streaming};

use crate::api::{ApiError, Apis};
use crate::pb::s3 as pb;
use crate::pb::s3::object_storage_service_server::ObjectStorageService;
use crate::status::to_status;

type Reply<T> = Result<Response<T>, Status>;
type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// The chunk of a body sent back (Layotto allows up to 1 MiB; smaller
/// chunks keep less in flight per stream).
pub(crate) const CHUNK: usize = 256 * 1024;

/// Layotto's words: an unknown store is "not supported store type".
pub(crate) fn oss_wording(e: ApiError) -> Status {
    match e {
        ApiError::Lookup(lookup) => {
            let name = match lookup {
                crate::api::Lookup::NotFound { name, .. } => layotto_core::clip(&name).into_owned(),
                _ => String::new(),
            };
            Status::invalid_argument(format!("not supported store type: {name}"))
        }
        ApiError::Call(e) => to_status(e),
    }
}

/// The bodies of a client stream after its first message, as a [`ByteStream`];
/// a stream that breaks off is an error, so nothing half-sent is kept.
pub(crate) fn body_stream<M: Send + 'static>(
    first: Bytes,
    rest: Streaming<M>,
    body: fn(M) -> Vec<u8>,
) -> ByteStream {
    let first = futures::stream::iter((!first.is_empty()).then(|| Ok(first)));
    let rest = rest.map(move |m| match m {
        Ok(m) => Ok(Bytes::from(body(m))),
        Err(status) => Err(layotto_core::Error::unavailable(format!(
            "the client's stream broke off: {}",
            status.message()
        ))),
    });
    first.chain(rest).boxed()
}

/// Sends `body` back as messages of at most `chunk` bytes made by `message`.
pub(crate) fn stream_back<T: Send + 'static>(
    mut body: ByteStream,
    chunk: usize,
    message: impl Fn(Vec<u8>) -> T + Send + 'static,
) -> BoxStream<T> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<T, Status>>(2);
    tokio::spawn(async move {
        let mut buffer = BytesMut::new();
        loop {
            let next = tokio::select! {
                next = body.next() => next,
                _ = tx.closed() => return,
            };
            match next {
                Some(Ok(bytes)) => {
                    buffer.extend_from_slice(&bytes);
                    while buffer.len() >= chunk {
                        if tx.send(Ok(message(buffer.split_to(chunk).to_vec()))).await.is_err() {
                            return;
                        }
                    }
                }
                Some(Err(e)) => {
                    let _ = tx.send(Err(to_status(e))).await;
                    return;
                }
                None => break,
            }
        }
        if !buffer.is_empty() {
            let _ = tx.send(Ok(message(buffer.to_vec()))).await;
        }
    });
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}

fn map(m: std::collections::HashMap<String, String>) -> BTreeMap<String, String> {
    m.into_iter().collect()
}

#[derive(Clone)]
pub struct ObjectStorage {
    apis: Arc<Apis>,
}

impl ObjectStorage {
    pub fn new(apis: Arc<Apis>) -> Self {
        Self { apis }
    }
}

fn get_output(body: &ObjectBody, chunk: Vec<u8>) -> pb::GetObjectOutput {
    let info = &body.info;
    pb::GetObjectOutput {
        body: chunk,
        cache_control: info.cache_control.clone(),
        content_disposition: info.content_disposition.clone(),
        content_encoding: info.content_encoding.clone(),
        content_length: body.content_length,
        content_range: body.content_range.clone(),
        content_type: info.content_type.clone(),
        etag: info.etag.clone(),
        last_modified: info.last_modified,
        version_id: info.version_id.clone(),
        tag_count: info.tag_count,
        storage_class: info.storage_class.clone(),
        metadata: info.metadata.clone().into_iter().collect(),
        ..Default::default()
    }
}

fn owner() -> Option<pb::Owner> {
    None
}

#[tonic::async_trait]
impl ObjectStorageService for ObjectStorage {
    async fn put_object(
        &self,
        request: Request<Streaming<pb::PutObjectInput>>,
    ) -> Reply<pb::PutObjectOutput> {
        let mut stream = request.into_inner();
        let Some(first) = stream.message().await? else {
            return Err(Status::invalid_argument("PutObject: the stream has no message"));
        };
        let oss = &self.apis.oss;
        let store =
            oss.object_store(&first.store_name, &first.bucket, Some(&first.key)).map_err(oss_wording)?;
        let req = PutObject {
            bucket: first.bucket,
            key: first.key,
            content_type: String::new(),
            cache_control: first.cache_control,
            content_disposition: first.content_disposition,
            content_encoding: first.content_encoding,
            acl: first.acl,
            storage_class: first.storage_class,
            metadata: map(first.meta),
            tagging: map(first.tagging),
            content_length: first.content_length,
        };
        let body = body_stream(Bytes::from(first.body), stream, |m: pb::PutObjectInput| m.body);
        let written = store.put_object(req, body).await.map_err(to_status)?;
        Ok(Response::new(pb::PutObjectOutput {
            etag: written.etag,
            version_id: written.version_id,
            ..Default::default()
        }))
    }

    type GetObjectStream = BoxStream<pb::GetObjectOutput>;

    async fn get_object(&self, request: Request<pb::GetObjectInput>) -> Reply<Self::GetObjectStream> {
        let req = request.into_inner();
        let oss = &self.apis.oss;
        let store = oss.object_store(&req.store_name, &req.bucket, Some(&req.key)).map_err(oss_wording)?;
        let range = (req.start > 0 || req.end > 0).then(|| {
            (
                u64::try_from(req.start).unwrap_or(0),
                (req.end > 0).then(|| u64::try_from(req.end).unwrap_or(0)),
            )
        });
        let get = GetObject { bucket: req.bucket, key: req.key, version_id: req.version_id, range };
        let (meta, body) = oss.call(&req.store_name, store.get_object(get)).await.map_err(oss_wording)?;
        if meta.content_length == 0 {
            // An empty object is one message with its headers.
            return Ok(Response::new(Box::pin(futures::stream::iter([Ok(get_output(&meta, Vec::new()))]))));
        }
        Ok(Response::new(stream_back(body, CHUNK, move |chunk| get_output(&meta, chunk))))
    }

    async fn delete_object(&self, request: Request<pb::DeleteObjectInput>) -> Reply<pb::DeleteObjectOutput> {
        let req = request.into_inner();
        let oss = &self.apis.oss;
        let store = oss.object_store(&req.store_name, &req.bucket, Some(&req.key)).map_err(oss_wording)?;
        let deleted = oss
            .call(&req.store_name, store.delete_object(&req.bucket, &req.key, &req.version_id))
            .await
            .map_err(oss_wording)?;
        Ok(Response::new(pb::DeleteObjectOutput {
            delete_marker: deleted.delete_marker,
            version_id: deleted.version_id,
            ..Default::default()
        }))
    }

    async fn copy_object(&self, request: Request<pb::CopyObjectInput>) -> Reply<pb::CopyObjectOutput> {
        let req = request.into_inner();
        let oss = &self.apis.oss;
        let store = oss.object_store(&req.store_name, &req.bucket, Some(&req.key)).map_err(oss_wording)?;
        let source = req.copy_source.unwrap_or_default();
        if source.copy_source_bucket.is_empty() || source.copy_source_key.is_empty() {
            return Err(Status::invalid_argument(format!(
                "oss store '{}': copy_source needs copy_source_bucket and copy_source_key",
                req.store_name
            )));
        }
        let copy = CopyObject {
            bucket: req.bucket,
            key: req.key,
            source_bucket: source.copy_source_bucket,
            source_key: source.copy_source_key,
            source_version_id: source.copy_source_version_id,
            metadata_directive: req.metadata_directive,
            metadata: map(req.metadata),
            tagging: map(req.tagging),
        };
        let written = oss.call(&req.store_name, store.copy_object(copy)).await.map_err(oss_wording)?;
        Ok(Response::new(pb::CopyObjectOutput {
            copy_object_result: Some(pb::CopyObjectResult { etag: written.etag, last_modified: 0 }),
            version_id: written.version_id,
            ..Default::default()
        }))
    }

    async fn delete_objects(
        &self,
        request: Request<pb::DeleteObjectsInput>,
    ) -> Reply<pb::DeleteObjectsOutput> {
        let req = request.into_inner();
        let oss = &self.apis.oss;
        let store = oss.object_store(&req.store_name, &req.bucket, None).map_err(oss_wording)?;
        let objects: Vec<(String, String)> =
            req.delete.unwrap_or_default().objects.into_iter().map(|o| (o.key, o.version_id)).collect();
        oss.limits
            .check_bulk(|| format!("oss store '{}'", req.store_name), "objects", objects.len())
            .map_err(to_status)?;
        let deleted = oss
            .call(&req.store_name, store.delete_objects(&req.bucket, objects))
            .await
            .map_err(oss_wording)?;
        Ok(Response::new(pb::DeleteObjectsOutput {
            deleted: deleted
                .into_iter()
                .map(|d| pb::DeletedObject {
                    delete_marker: d.delete_marker,
                    key: d.key,
                    version_id: d.version_id,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }))
    }

    async fn list_objects(&self, request: Request<pb::ListObjectsInput>) -> Reply<pb::ListObjectsOutput> {
        let req = request.into_inner();
        let oss = &self.apis.oss;
        let store = oss.object_store(&req.store_name, &req.bucket, None).map_err(oss_wording)?;
        let list = ListObjects {
            bucket: req.bucket.clone(),
            prefix: req.prefix.clone(),
            delimiter: req.delimiter.clone(),
            marker: req.marker.clone(),
            max_keys: req.max_keys,
        };
        let listing = oss.call(&req.store_name, store.list_objects(list)).await.map_err(oss_wording)?;
        Ok(Response::new(pb::ListObjectsOutput {
            common_prefixes: listing.common_prefixes,
            contents: listing
                .contents
                .into_iter()
                .map(|o| pb::Object {
                    etag: o.etag,
                    key: o.key,
                    last_modified: o.last_modified,
                    owner: owner(),
                    size: o.size,
                    storage_class: o.storage_class,
                    r#type: String::new(),
                })
                .collect(),
            delimiter: req.delimiter,
            encoding_type: req.encoding_type,
            is_truncated: listing.is_truncated,
            marker: req.marker,
            max_keys: if req.max_keys > 0 { req.max_keys } else { 1000 },
            name: req.bucket,
            next_marker: listing.next_marker,
            prefix: req.prefix,
            metadata: Default::default(),
        }))
    }

    async fn head_object(&self, request: Request<pb::HeadObjectInput>) -> Reply<pb::HeadObjectOutput> {
        let req = request.into_inner();
        let oss = &self.apis.oss;
        let store = oss.object_store(&req.store_name, &req.bucket, Some(&req.key)).map_err(oss_wording)?;
        let info = oss
            .call(&req.store_name, store.head_object(&req.bucket, &req.key, &req.version_id))
            .await
            .map_err(oss_wording)?;
        // The object's S3 response headers.
        let mut result_metadata: std::collections::HashMap<String, String> = [
            ("Content-Length", info.size.to_string()),
            ("Content-Type", info.content_type),
            ("ETag", info.etag),
            ("Last-Modified", info.last_modified.to_string()),
            ("x-amz-version-id", info.version_id),
            ("x-amz-storage-class", info.storage_class),
            ("Cache-Control", info.cache_control),
            ("Content-Disposition", info.content_disposition),
            ("Content-Encoding", info.content_encoding),
        ]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        result_metadata.extend(info.metadata.into_iter().map(|(k, v)| (format!("x-amz-meta-{k}"), v)));
        Ok(Response::new(pb::HeadObjectOutput { result_metadata }))
    }

    async fn is_object_exist(
        &self,
        request: Request<pb::IsObjectExistInput>,
    ) -> Reply<pb::IsObjectExistOutput> {
        let req = request.into_inner();
        let oss = &self.apis.oss;
        let store = oss.object_store(&req.store_name, &req.bucket, Some(&req.key)).map_err(oss_wording)?;
        let exists = match oss
            .call(&req.store_name, store.head_object(&req.bucket, &req.key, &req.version_id))
            .await
        {
            Ok(_) => true,
            Err(ApiError::Call(e)) if e.kind() == layotto_core::ErrorKind::NotFound => false,
            Err(e) => return Err(oss_wording(e)),
        };
        Ok(Response::new(pb::IsObjectExistOutput { file_exist: exists, metadata: Default::default() }))
    }

    async fn put_object_tagging(
        &self,
        request: Request<pb::PutObjectTaggingInput>,
    ) -> Reply<pb::PutObjectTaggingOutput> {
        let req = request.into_inner();
        let oss = &self.apis.oss;
        let store = oss.object_store(&req.store_name, &req.bucket, Some(&req.key)).map_err(oss_wording)?;
        let version_id = oss
            .call(&req.store_name, store.put_tagging(&req.bucket, &req.key, &req.version_id, map(req.tags)))
            .await
            .map_err(oss_wording)?;
        Ok(Response::new(pb::PutObjectTaggingOutput { version_id, result_metadata: Default::default() }))
    }

    async fn delete_object_tagging(
        &self,
        request: Request<pb::DeleteObjectTaggingInput>,
    ) -> Reply<pb::DeleteObjectTaggingOutput> {
        let req = request.into_inner();
        let oss = &self.apis.oss;
        let store = oss.object_store(&req.store_name, &req.bucket, Some(&req.key)).map_err(oss_wording)?;
        let version_id = oss
            .call(&req.store_name, store.delete_tagging(&req.bucket, &req.key, &req.version_id))
            .await
            .map_err(oss_wording)?;
        Ok(Response::new(pb::DeleteObjectTaggingOutput { version_id, result_metadata: Default::default() }))
    }

    async fn get_object_tagging(
        &self,
        request: Request<pb::GetObjectTaggingInput>,
    ) -> Reply<pb::GetObjectTaggingOutput> {
        let req = request.into_inner();
        let oss = &self.apis.oss;
        let store = oss.object_store(&req.store_name, &req.bucket, Some(&req.key)).map_err(oss_wording)?;
        let tags = oss
            .call(&req.store_name, store.get_tagging(&req.bucket, &req.key, &req.version_id))
            .await
            .map_err(oss_wording)?;
        Ok(Response::new(pb::GetObjectTaggingOutput {
            tags: tags.into_iter().collect(),
            version_id: req.version_id,
            result_metadata: Default::default(),
        }))
    }

    async fn get_object_canned_acl(
        &self,
        request: Request<pb::GetObjectCannedAclInput>,
    ) -> Reply<pb::GetObjectCannedAclOutput> {
        let req = request.into_inner();
        let oss = &self.apis.oss;
        let store = oss.object_store(&req.store_name, &req.bucket, Some(&req.key)).map_err(oss_wording)?;
        let canned_acl =
            oss.call(&req.store_name, store.get_acl(&req.bucket, &req.key)).await.map_err(oss_wording)?;
        Ok(Response::new(pb::GetObjectCannedAclOutput { canned_acl, ..Default::default() }))
    }

    async fn put_object_canned_acl(
        &self,
        request: Request<pb::PutObjectCannedAclInput>,
    ) -> Reply<pb::PutObjectCannedAclOutput> {
        let req = request.into_inner();
        let oss = &self.apis.oss;
        let store = oss.object_store(&req.store_name, &req.bucket, Some(&req.key)).map_err(oss_wording)?;
        oss.call(&req.store_name, store.put_acl(&req.bucket, &req.key, &req.acl))
            .await
            .map_err(oss_wording)?;
        Ok(Response::new(pb::PutObjectCannedAclOutput::default()))
    }

    async fn create_multipart_upload(
        &self,
        request: Request<pb::CreateMultipartUploadInput>,
    ) -> Reply<pb::CreateMultipartUploadOutput> {
        let req = request.into_inner();
        let oss = &self.apis.oss;
        let store = oss.object_store(&req.store_name, &req.bucket, Some(&req.key)).map_err(oss_wording)?;
        let put = PutObject {
            bucket: req.bucket.clone(),
            key: req.key.clone(),
            content_type: req.content_type,
            cache_control: req.cache_control,
            content_disposition: req.content_disposition,
            content_encoding: req.content_encoding,
            acl: req.acl,
            storage_class: req.storage_class,
            metadata: map(req.meta_data),
            tagging: map(req.tagging),
            content_length: 0,
        };
        let upload_id = oss.call(&req.store_name, store.create_multipart(put)).await.map_err(oss_wording)?;
        Ok(Response::new(pb::CreateMultipartUploadOutput {
            bucket: req.bucket,
            key: req.key,
            upload_id,
            ..Default::default()
        }))
    }

    async fn upload_part(
        &self,
        request: Request<Streaming<pb::UploadPartInput>>,
    ) -> Reply<pb::UploadPartOutput> {
        let mut stream = request.into_inner();
        let Some(first) = stream.message().await? else {
            return Err(Status::invalid_argument("UploadPart: the stream has no message"));
        };
        let oss = &self.apis.oss;
        let store =
            oss.object_store(&first.store_name, &first.bucket, Some(&first.key)).map_err(oss_wording)?;
        let body = body_stream(Bytes::from(first.body), stream, |m: pb::UploadPartInput| m.body);
        let etag = store
            .upload_part(
                &first.bucket,
                &first.key,
                &first.upload_id,
                first.part_number,
                first.content_length,
                body,
            )
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::UploadPartOutput { etag, ..Default::default() }))
    }

    async fn upload_part_copy(
        &self,
        request: Request<pb::UploadPartCopyInput>,
    ) -> Reply<pb::UploadPartCopyOutput> {
        let req = request.into_inner();
        let oss = &self.apis.oss;
        let store = oss.object_store(&req.store_name, &req.bucket, Some(&req.key)).map_err(oss_wording)?;
        let source = req.copy_source.unwrap_or_default();
        let range = (req.part_size > 0).then(|| {
            let start = u64::try_from(req.start_position).unwrap_or(0);
            (start, start + u64::try_from(req.part_size).unwrap_or(1) - 1)
        });
        let etag = store
            .upload_part_copy(
                &req.bucket,
                &req.key,
                &req.upload_id,
                req.part_number,
                (&source.copy_source_bucket, &source.copy_source_key, &source.copy_source_version_id),
                range,
            )
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::UploadPartCopyOutput {
            copy_part_result: Some(pb::CopyPartResult { etag, last_modified: 0 }),
            ..Default::default()
        }))
    }

    async fn complete_multipart_upload(
        &self,
        request: Request<pb::CompleteMultipartUploadInput>,
    ) -> Reply<pb::CompleteMultipartUploadOutput> {
        let req = request.into_inner();
        let oss = &self.apis.oss;
        let store = oss.object_store(&req.store_name, &req.bucket, Some(&req.key)).map_err(oss_wording)?;
        let parts = req
            .multipart_upload
            .unwrap_or_default()
            .parts
            .into_iter()
            .map(|p| (p.part_number, p.etag))
            .collect();
        let written = store
            .complete_multipart(&req.bucket, &req.key, &req.upload_id, parts)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::CompleteMultipartUploadOutput {
            bucket: req.bucket.clone(),
            key: req.key.clone(),
            etag: written.etag,
            location: format!("{}/{}", req.bucket, req.key),
            version_id: written.version_id,
            ..Default::default()
        }))
    }

    async fn abort_multipart_upload(
        &self,
        request: Request<pb::AbortMultipartUploadInput>,
    ) -> Reply<pb::AbortMultipartUploadOutput> {
        let req = request.into_inner();
        let oss = &self.apis.oss;
        let store = oss.object_store(&req.store_name, &req.bucket, Some(&req.key)).map_err(oss_wording)?;
        oss.call(&req.store_name, store.abort_multipart(&req.bucket, &req.key, &req.upload_id))
            .await
            .map_err(oss_wording)?;
        Ok(Response::new(pb::AbortMultipartUploadOutput::default()))
    }

    async fn list_multipart_uploads(
        &self,
        request: Request<pb::ListMultipartUploadsInput>,
    ) -> Reply<pb::ListMultipartUploadsOutput> {
        let req = request.into_inner();
        let oss = &self.apis.oss;
        let store = oss.object_store(&req.store_name, &req.bucket, None).map_err(oss_wording)?;
        let uploads = oss
            .call(
                &req.store_name,
                store.list_uploads(
                    &req.bucket,
                    &req.prefix,
                    &req.key_marker,
                    &req.upload_id_marker,
                    req.max_uploads,
                ),
            )
            .await
            .map_err(oss_wording)?;
        Ok(Response::new(pb::ListMultipartUploadsOutput {
            bucket: req.bucket,
            common_prefixes: uploads.common_prefixes,
            delimiter: req.delimiter,
            encoding_type: req.encoding_type,
            is_truncated: uploads.is_truncated,
            key_marker: req.key_marker,
            max_uploads: i32::try_from(req.max_uploads).unwrap_or(i32::MAX),
            next_key_marker: uploads.next_key_marker,
            next_upload_id_marker: uploads.next_upload_id_marker,
            prefix: req.prefix,
            upload_id_marker: req.upload_id_marker,
            uploads: uploads
                .uploads
                .into_iter()
                .map(|u| pb::MultipartUpload {
                    initiated: u.initiated,
                    key: u.key,
                    storage_class: u.storage_class,
                    upload_id: u.upload_id,
                    ..Default::default()
                })
                .collect(),
            metadata: Default::default(),
        }))
    }

    async fn list_parts(&self, request: Request<pb::ListPartsInput>) -> Reply<pb::ListPartsOutput> {
        let req = request.into_inner();
        let oss = &self.apis.oss;
        let store = oss.object_store(&req.store_name, &req.bucket, Some(&req.key)).map_err(oss_wording)?;
        let parts = oss
            .call(
                &req.store_name,
                store.list_parts(
                    &req.bucket,
                    &req.key,
                    &req.upload_id,
                    req.part_number_marker,
                    req.max_parts,
                ),
            )
            .await
            .map_err(oss_wording)?;
        Ok(Response::new(pb::ListPartsOutput {
            bucket: req.bucket,
            key: req.key,
            upload_id: req.upload_id,
            next_part_number_marker: parts.next_part_number_marker.to_string(),
            max_parts: req.max_parts,
            is_truncated: parts.is_truncated,
            parts: parts
                .parts
                .into_iter()
                .map(|p| pb::Part {
                    etag: p.etag,
                    last_modified: p.last_modified,
                    part_number: p.part_number,
                    size: p.size,
                })
                .collect(),
            metadata: Default::default(),
        }))
    }

    async fn list_object_versions(
        &self,
        request: Request<pb::ListObjectVersionsInput>,
    ) -> Reply<pb::ListObjectVersionsOutput> {
        let req = request.into_inner();
        let oss = &self.apis.oss;
        let store = oss.object_store(&req.store_name, &req.bucket, None).map_err(oss_wording)?;
        let list = ListObjects {
            bucket: req.bucket.clone(),
            prefix: req.prefix.clone(),
            delimiter: req.delimiter.clone(),
            marker: req.key_marker.clone(),
            max_keys: i32::try_from(req.max_keys).unwrap_or(i32::MAX),
        };
        let versions = oss
            .call(&req.store_name, store.list_versions(list, &req.version_id_marker))
            .await
            .map_err(oss_wording)?;
        let (markers, objects): (Vec<_>, Vec<_>) =
            versions.versions.into_iter().partition(|v| v.delete_marker);
        Ok(Response::new(pb::ListObjectVersionsOutput {
            common_prefixes: versions.common_prefixes,
            delete_markers: markers
                .into_iter()
                .map(|m| pb::DeleteMarkerEntry {
                    is_latest: m.is_latest,
                    key: m.key,
                    last_modified: m.last_modified,
                    owner: owner(),
                    version_id: m.version_id,
                })
                .collect(),
            delimiter: req.delimiter,
            encoding_type: req.encoding_type,
            is_truncated: versions.is_truncated,
            key_marker: req.key_marker,
            max_keys: req.max_keys,
            name: req.bucket,
            next_key_marker: versions.next_key_marker,
            next_version_id_marker: versions.next_version_id_marker,
            prefix: req.prefix,
            version_id_marker: req.version_id_marker,
            versions: objects
                .into_iter()
                .map(|v| pb::ObjectVersion {
                    etag: v.etag,
                    is_latest: v.is_latest,
                    key: v.key,
                    last_modified: v.last_modified,
                    owner: owner(),
                    size: v.size,
                    storage_class: v.storage_class,
                    version_id: v.version_id,
                })
                .collect(),
            metadata: Default::default(),
        }))
    }

    async fn sign_url(&self, request: Request<pb::SignUrlInput>) -> Reply<pb::SignUrlOutput> {
        let req = request.into_inner();
        let oss = &self.apis.oss;
        let store = oss.object_store(&req.store_name, &req.bucket, Some(&req.key)).map_err(oss_wording)?;
        let expires = u64::try_from(req.expired_in_sec).unwrap_or(0);
        if expires == 0 {
            return Err(Status::invalid_argument(format!(
                "oss store '{}': expired_in_sec must be positive",
                req.store_name
            )));
        }
        let signed_url = oss
            .call(&req.store_name, store.sign_url(&req.bucket, &req.key, &req.method, expires))
            .await
            .map_err(oss_wording)?;
        Ok(Response::new(pb::SignUrlOutput { signed_url }))
    }

    async fn update_download_bandwidth_rate_limit(
        &self,
        request: Request<pb::UpdateBandwidthRateLimitInput>,
    ) -> Reply<()> {
        let store = request.into_inner().store_name;
        self.apis.oss.store(&store).map_err(oss_wording)?;
        Err(to_status(unsupported(
            &store,
            "UpdateDownloadBandwidthRateLimit",
            "S3 has no bandwidth limits to set",
        )))
    }

    async fn update_upload_bandwidth_rate_limit(
        &self,
        request: Request<pb::UpdateBandwidthRateLimitInput>,
    ) -> Reply<()> {
        let store = request.into_inner().store_name;
        self.apis.oss.store(&store).map_err(oss_wording)?;
        Err(to_status(unsupported(
            &store,
            "UpdateUploadBandwidthRateLimit",
            "S3 has no bandwidth limits to set",
        )))
    }

    async fn append_object(
        &self,
        request: Request<Streaming<pb::AppendObjectInput>>,
    ) -> Reply<pb::AppendObjectOutput> {
        let mut stream = request.into_inner();
        let Some(first) = stream.message().await? else {
            return Err(Status::invalid_argument("AppendObject: the stream has no message"));
        };
        let oss = &self.apis.oss;
        let store =
            oss.object_store(&first.store_name, &first.bucket, Some(&first.key)).map_err(oss_wording)?;
        let body = body_stream(Bytes::from(first.body), stream, |m: pb::AppendObjectInput| m.body);
        let append_position =
            store.append_object(&first.bucket, &first.key, first.position, body).await.map_err(to_status)?;
        Ok(Response::new(pb::AppendObjectOutput { append_position, metadata: Default::default() }))
    }

    async fn restore_object(
        &self,
        request: Request<pb::RestoreObjectInput>,
    ) -> Reply<pb::RestoreObjectOutput> {
        let req = request.into_inner();
        self.apis.oss.object_store(&req.store_name, &req.bucket, Some(&req.key)).map_err(oss_wording)?;
        Err(to_status(unsupported(
            &req.store_name,
            "RestoreObject",
            "objects are never archived here (the servers this runtime speaks to have no archive tiers)",
        )))
    }
}
