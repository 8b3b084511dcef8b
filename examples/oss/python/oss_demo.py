"""Layotto's object storage API from Python: put, list, head, get, copy, tag
and delete an object, and a multipart upload, through the runtime.

Environment: LAYOTTO_ADDR (default 127.0.0.1:34904), OSS_STORE (default
oss_demo, the runtime's embedded local store), OSS_BUCKET (default
demo-bucket). Run it with run.sh, which generates the stubs first.
"""

import os

import grpc

from spec.proto.extension.v1.s3 import oss_pb2 as pb
from spec.proto.extension.v1.s3 import oss_pb2_grpc

CHUNK = 256 * 1024


def put_messages(store, bucket, key, data, meta=None):
    """PutObject is a client stream: the first message names the object and
    carries its metadata; every message carries a chunk of the body."""
    yield pb.PutObjectInput(store_name=store, bucket=bucket, key=key, meta=meta or {}, body=data[:CHUNK])
    for offset in range(CHUNK, len(data), CHUNK):
        yield pb.PutObjectInput(body=data[offset:offset + CHUNK])


def part_messages(store, bucket, key, upload_id, part_number, data):
    for offset in range(0, len(data), CHUNK):
        yield pb.UploadPartInput(
            store_name=store, bucket=bucket, key=key, upload_id=upload_id,
            part_number=part_number, content_length=len(data), body=data[offset:offset + CHUNK])


def multipart(oss, store, bucket, key):
    """Two parts: S3 wants every part but the last to be at least 5 MiB."""
    upload_id = oss.CreateMultipartUpload(
        pb.CreateMultipartUploadInput(store_name=store, bucket=bucket, key=key)).upload_id
    print("upload started")
    completed = []
    for part_number, size in ((1, 5 * 1024 * 1024), (2, 1024 * 1024)):
        reply = oss.UploadPart(part_messages(store, bucket, key, upload_id, part_number, b"x" * size))
        print(f"part {part_number}: {size} bytes")
        completed.append(pb.CompletedPart(etag=reply.etag, part_number=part_number))
    oss.CompleteMultipartUpload(pb.CompleteMultipartUploadInput(
        store_name=store, bucket=bucket, key=key, upload_id=upload_id,
        multipart_upload=pb.CompletedMultipartUpload(parts=completed)))
    head = oss.HeadObject(pb.HeadObjectInput(store_name=store, bucket=bucket, key=key))
    print(f"completed {key}: {head.result_metadata.get('Content-Length', '?')} bytes")


def main():
    address = os.environ.get("LAYOTTO_ADDR") or "127.0.0.1:34904"
    store = os.environ.get("OSS_STORE") or "oss_demo"
    bucket = os.environ.get("OSS_BUCKET") or "demo-bucket"
    key = "greetings/hello.txt"

    with grpc.insecure_channel(address) as channel:
        oss = oss_pb2_grpc.ObjectStorageServiceStub(channel)

        oss.PutObject(put_messages(store, bucket, key, b"hello from Python", {"owner": "demo"}))
        print(f"put {key}")

        listing = oss.ListObjects(pb.ListObjectsInput(store_name=store, bucket=bucket, prefix="greetings/"))
        print("list " + " ".join(o.key for o in listing.contents))

        head = oss.HeadObject(pb.HeadObjectInput(store_name=store, bucket=bucket, key=key))
        meta = head.result_metadata
        print(f"head size={meta.get('Content-Length', '?')} owner={meta.get('x-amz-meta-owner', '?')}")

        # GetObject is a server stream of chunks.
        chunks = oss.GetObject(pb.GetObjectInput(store_name=store, bucket=bucket, key=key))
        print("get " + b"".join(c.body for c in chunks).decode())

        oss.CopyObject(pb.CopyObjectInput(
            store_name=store, bucket=bucket, key="archive/hello.txt",
            copy_source=pb.CopySource(copy_source_bucket=bucket, copy_source_key=key)))
        print(f"copied {key} to archive/hello.txt")

        oss.PutObjectTagging(pb.PutObjectTaggingInput(
            store_name=store, bucket=bucket, key="archive/hello.txt", tags={"retention": "1y"}))
        tags = oss.GetObjectTagging(pb.GetObjectTaggingInput(
            store_name=store, bucket=bucket, key="archive/hello.txt")).tags
        print(f"tags retention={tags.get('retention', '-')}")

        multipart(oss, store, bucket, "uploads/big.bin")

        objects = [pb.ObjectIdentifier(key=k) for k in (key, "archive/hello.txt", "uploads/big.bin")]
        deleted = oss.DeleteObjects(pb.DeleteObjectsInput(
            store_name=store, bucket=bucket, delete=pb.Delete(objects=objects)))
        print(f"deleted {len(deleted.deleted)} objects")

        exists = oss.IsObjectExist(pb.IsObjectExistInput(store_name=store, bucket=bucket, key=key)).file_exist
        print(f"{key} exists: {str(exists).lower()}")


if __name__ == "__main__":
    main()
