//! What the example programs share: where the runtime is and a client for it.
//!
//! Every example reads `LAYOTTO_ADDR` (default `127.0.0.1:34904`, the
//! runtime's port on its embedded defaults).

pub mod oss {
    use layotto_grpc::pb::s3 as pb;
    use layotto_grpc::pb::s3::object_storage_service_client::ObjectStorageServiceClient;
    use tonic::transport::Channel;

    pub type Client = ObjectStorageServiceClient<Channel>;

    /// The `oss` component and bucket the examples use: `OSS_STORE`
    /// (default `oss_demo`, the embedded local store) and `OSS_BUCKET`
    /// (default `demo-bucket`; the local store creates it on first write).
    pub struct Target {
        pub store: String,
        pub bucket: String,
    }

    impl Target {
        pub fn from_env() -> Self {
            let var = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_owned());
            Self { store: var("OSS_STORE", "oss_demo"), bucket: var("OSS_BUCKET", "demo-bucket") }
        }
    }

    pub async fn connect() -> anyhow::Result<Client> {
        let addr = std::env::var("LAYOTTO_ADDR").unwrap_or_else(|_| "127.0.0.1:34904".to_owned());
        Ok(Client::connect(format!("http://{addr}")).await?)
    }

    /// PutObject streams its body: the first message names the object, every
    /// message carries up to `chunk` bytes.
    pub async fn put(
        client: &mut Client,
        target: &Target,
        key: &str,
        data: Vec<u8>,
    ) -> anyhow::Result<pb::PutObjectOutput> {
        const CHUNK: usize = 64 * 1024;
        let mut messages = Vec::new();
        for (i, part) in data.chunks(CHUNK).enumerate() {
            let mut message = pb::PutObjectInput { body: part.to_vec(), ..Default::default() };
            if i == 0 {
                message.store_name = target.store.clone();
                message.bucket = target.bucket.clone();
                message.key = key.to_owned();
            }
            messages.push(message);
        }
        if messages.is_empty() {
            messages.push(pb::PutObjectInput {
                store_name: target.store.clone(),
                bucket: target.bucket.clone(),
                key: key.to_owned(),
                ..Default::default()
            });
        }
        Ok(client.put_object(tokio_stream::iter(messages)).await?.into_inner())
    }

    /// GetObject streams the object back in chunks.
    pub async fn get(client: &mut Client, target: &Target, key: &str) -> anyhow::Result<Vec<u8>> {
        let request = pb::GetObjectInput {
            store_name: target.store.clone(),
            bucket: target.bucket.clone(),
            key: key.to_owned(),
            ..Default::default()
        };
        let mut stream = client.get_object(request).await?.into_inner();
        let mut data = Vec::new();
        while let Some(chunk) = stream.message().await? {
            data.extend_from_slice(&chunk.body);
        }
        Ok(data)
    }
}
