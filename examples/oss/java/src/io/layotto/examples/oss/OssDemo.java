package io.layotto.examples.oss;

import com.google.protobuf.ByteString;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.stub.StreamObserver;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;
import spec.proto.extension.v1.s3.CompleteMultipartUploadInput;
import spec.proto.extension.v1.s3.CompletedMultipartUpload;
import spec.proto.extension.v1.s3.CompletedPart;
import spec.proto.extension.v1.s3.CopyObjectInput;
import spec.proto.extension.v1.s3.CopySource;
import spec.proto.extension.v1.s3.CreateMultipartUploadInput;
import spec.proto.extension.v1.s3.Delete;
import spec.proto.extension.v1.s3.DeleteObjectsInput;
import spec.proto.extension.v1.s3.DeleteObjectsOutput;
import spec.proto.extension.v1.s3.GetObjectInput;
import spec.proto.extension.v1.s3.GetObjectOutput;
import spec.proto.extension.v1.s3.GetObjectTaggingInput;
import spec.proto.extension.v1.s3.HeadObjectInput;
import spec.proto.extension.v1.s3.HeadObjectOutput;
import spec.proto.extension.v1.s3.IsObjectExistInput;
import spec.proto.extension.v1.s3.ListObjectsInput;
import spec.proto.extension.v1.s3.ListObjectsOutput;
import spec.proto.extension.v1.s3.ObjectIdentifier;
import spec.proto.extension.v1.s3.ObjectStorageServiceGrpc;
import spec.proto.extension.v1.s3.PutObjectInput;
import spec.proto.extension.v1.s3.PutObjectTaggingInput;
import spec.proto.extension.v1.s3.UploadPartInput;
import spec.proto.extension.v1.s3.UploadPartOutput;

/**
 * Layotto's object storage API from Java: put, list, head, get, copy, tag and
 * delete an object, and a multipart upload, through the runtime.
 *
 * <p>Environment: LAYOTTO_ADDR (default 127.0.0.1:34904), OSS_STORE (default
 * oss_demo, the runtime's embedded local store), OSS_BUCKET (default
 * demo-bucket).
 */
public final class OssDemo {
  private static final int CHUNK = 256 * 1024;

  private final ObjectStorageServiceGrpc.ObjectStorageServiceBlockingStub blocking;
  private final ObjectStorageServiceGrpc.ObjectStorageServiceStub async;
  private final String store;
  private final String bucket;

  private OssDemo(ManagedChannel channel, String store, String bucket) {
    this.blocking = ObjectStorageServiceGrpc.newBlockingStub(channel);
    this.async = ObjectStorageServiceGrpc.newStub(channel);
    this.store = store;
    this.bucket = bucket;
  }

  public static void main(String[] args) throws Exception {
    String address = env("LAYOTTO_ADDR", "127.0.0.1:34904");
    ManagedChannel channel = ManagedChannelBuilder.forTarget(address).usePlaintext().build();
    try {
      new OssDemo(channel, env("OSS_STORE", "oss_demo"), env("OSS_BUCKET", "demo-bucket")).run();
    } finally {
      channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }
  }

  private void run() throws Exception {
    String key = "greetings/hello.txt";

    // PutObject is a client stream: the first message names the object and
    // carries its metadata; every message carries a chunk of the body.
    List<PutObjectInput> put = new ArrayList<>();
    put.add(PutObjectInput.newBuilder()
        .setStoreName(store).setBucket(bucket).setKey(key)
        .putMeta("owner", "demo")
        .setBody(ByteString.copyFromUtf8("hello from Java"))
        .build());
    clientStream(async::putObject, put);
    System.out.println("put " + key);

    ListObjectsOutput listing = blocking.listObjects(ListObjectsInput.newBuilder()
        .setStoreName(store).setBucket(bucket).setPrefix("greetings/").build());
    // The message is named Object, hence the full name beside java.lang.Object.
    List<String> keys = new ArrayList<>();
    for (spec.proto.extension.v1.s3.Object object : listing.getContentsList()) {
      keys.add(object.getKey());
    }
    System.out.println("list " + String.join(" ", keys));

    HeadObjectOutput head = blocking.headObject(HeadObjectInput.newBuilder()
        .setStoreName(store).setBucket(bucket).setKey(key).build());
    System.out.println("head size=" + head.getResultMetadataOrDefault("Content-Length", "?")
        + " owner=" + head.getResultMetadataOrDefault("x-amz-meta-owner", "?"));

    // GetObject is a server stream of chunks.
    Iterator<GetObjectOutput> chunks = blocking.getObject(GetObjectInput.newBuilder()
        .setStoreName(store).setBucket(bucket).setKey(key).build());
    ByteString body = ByteString.EMPTY;
    while (chunks.hasNext()) {
      body = body.concat(chunks.next().getBody());
    }
    System.out.println("get " + body.toString(StandardCharsets.UTF_8));

    blocking.copyObject(CopyObjectInput.newBuilder()
        .setStoreName(store).setBucket(bucket).setKey("archive/hello.txt")
        .setCopySource(CopySource.newBuilder().setCopySourceBucket(bucket).setCopySourceKey(key))
        .build());
    System.out.println("copied " + key + " to archive/hello.txt");

    blocking.putObjectTagging(PutObjectTaggingInput.newBuilder()
        .setStoreName(store).setBucket(bucket).setKey("archive/hello.txt")
        .putTags("retention", "1y").build());
    String retention = blocking.getObjectTagging(GetObjectTaggingInput.newBuilder()
        .setStoreName(store).setBucket(bucket).setKey("archive/hello.txt").build())
        .getTagsOrDefault("retention", "-");
    System.out.println("tags retention=" + retention);

    multipart("uploads/big.bin");

    DeleteObjectsOutput deleted = blocking.deleteObjects(DeleteObjectsInput.newBuilder()
        .setStoreName(store).setBucket(bucket)
        .setDelete(Delete.newBuilder()
            .addObjects(ObjectIdentifier.newBuilder().setKey(key))
            .addObjects(ObjectIdentifier.newBuilder().setKey("archive/hello.txt"))
            .addObjects(ObjectIdentifier.newBuilder().setKey("uploads/big.bin")))
        .build());
    System.out.println("deleted " + deleted.getDeletedCount() + " objects");

    boolean exists = blocking.isObjectExist(IsObjectExistInput.newBuilder()
        .setStoreName(store).setBucket(bucket).setKey(key).build()).getFileExist();
    System.out.println(key + " exists: " + exists);
  }

  /** Two parts: S3 wants every part but the last to be at least 5 MiB. */
  private void multipart(String key) throws Exception {
    String uploadId = blocking.createMultipartUpload(CreateMultipartUploadInput.newBuilder()
        .setStoreName(store).setBucket(bucket).setKey(key).build()).getUploadId();
    System.out.println("upload started");
    CompletedMultipartUpload.Builder completed = CompletedMultipartUpload.newBuilder();
    int[] sizes = {5 * 1024 * 1024, 1024 * 1024};
    for (int i = 0; i < sizes.length; i++) {
      int partNumber = i + 1;
      byte[] data = new byte[sizes[i]];
      java.util.Arrays.fill(data, (byte) 'x');
      List<UploadPartInput> messages = new ArrayList<>();
      for (int offset = 0; offset < data.length; offset += CHUNK) {
        messages.add(UploadPartInput.newBuilder()
            .setStoreName(store).setBucket(bucket).setKey(key)
            .setUploadId(uploadId).setPartNumber(partNumber).setContentLength(data.length)
            .setBody(ByteString.copyFrom(data, offset, Math.min(CHUNK, data.length - offset)))
            .build());
      }
      UploadPartOutput part = clientStream(async::uploadPart, messages);
      System.out.println("part " + partNumber + ": " + data.length + " bytes");
      completed.addParts(CompletedPart.newBuilder().setEtag(part.getEtag()).setPartNumber(partNumber));
    }
    blocking.completeMultipartUpload(CompleteMultipartUploadInput.newBuilder()
        .setStoreName(store).setBucket(bucket).setKey(key).setUploadId(uploadId)
        .setMultipartUpload(completed).build());
    HeadObjectOutput head = blocking.headObject(HeadObjectInput.newBuilder()
        .setStoreName(store).setBucket(bucket).setKey(key).build());
    System.out.println("completed " + key + ": "
        + head.getResultMetadataOrDefault("Content-Length", "?") + " bytes");
  }

  /**
   * Sends every message of a client-streaming call and waits for its reply.
   * (Sending a large file this way buffers it; stream from disk with
   * ClientCallStreamObserver#setOnReadyHandler instead.)
   */
  private static <I, O> O clientStream(
      Function<StreamObserver<O>, StreamObserver<I>> call, List<I> messages) throws Exception {
    CompletableFuture<O> reply = new CompletableFuture<>();
    StreamObserver<I> requests = call.apply(new StreamObserver<O>() {
      @Override public void onNext(O value) {
        reply.complete(value);
      }

      @Override public void onError(Throwable error) {
        reply.completeExceptionally(error);
      }

      @Override public void onCompleted() {}
    });
    for (I message : messages) {
      requests.onNext(message);
    }
    requests.onCompleted();
    return reply.get(60, TimeUnit.SECONDS);
  }

  private static String env(String name, String fallback) {
    String value = System.getenv(name);
    return value == null || value.isEmpty() ? fallback : value;
  }
}
