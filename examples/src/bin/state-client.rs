//! A Rust app using layotto-rs's State API over gRPC.
//!
//! Start the runtime (`cargo run --release`), then:
//! `cargo run -p layotto-examples --bin state-client [http://127.0.0.1:34904] [store]`

use layotto_grpc::pb::runtime as pb;
use layotto_grpc::pb::runtime::runtime_client::RuntimeClient;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let target = args.next().unwrap_or_else(|| "http://127.0.0.1:34904".to_owned());
    let store = args.next().unwrap_or_else(|| "state_demo".to_owned());
    let mut client = RuntimeClient::connect(target.clone()).await?;

    let item =
        pb::StateItem { key: "greeting".into(), value: b"hello from Rust".to_vec(), ..Default::default() };
    client.save_state(pb::SaveStateRequest { store_name: store.clone(), states: vec![item] }).await?;
    println!("saved 'greeting' in {store} via {target}");

    let got = client
        .get_state(pb::GetStateRequest {
            store_name: store.clone(),
            key: "greeting".into(),
            ..Default::default()
        })
        .await?
        .into_inner();
    println!("got '{}' (etag {})", String::from_utf8_lossy(&got.data), got.etag);

    // Optimistic concurrency: update only if nobody changed it since we read it.
    let update = pb::StateItem {
        key: "greeting".into(),
        value: b"updated".to_vec(),
        etag: Some(pb::Etag { value: got.etag.clone() }),
        ..Default::default()
    };
    client.save_state(pb::SaveStateRequest { store_name: store.clone(), states: vec![update] }).await?;
    let stale = pb::StateItem {
        key: "greeting".into(),
        value: b"lost update".to_vec(),
        etag: Some(pb::Etag { value: got.etag }),
        ..Default::default()
    };
    match client.save_state(pb::SaveStateRequest { store_name: store.clone(), states: vec![stale] }).await {
        Err(status) => println!("stale etag rejected as expected: {:?} {}", status.code(), status.message()),
        Ok(_) => anyhow::bail!("a stale etag was accepted"),
    }

    client
        .delete_state(pb::DeleteStateRequest {
            store_name: store,
            key: "greeting".into(),
            ..Default::default()
        })
        .await?;
    println!("deleted 'greeting'");
    Ok(())
}
