//! ListObjects page by page (marker), and grouped by a delimiter.
//!
//! `cargo run -p layotto-examples --bin oss-list` with the runtime running.

use layotto_examples::oss::{self, Target};
use layotto_grpc::pb::s3 as pb;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let target = Target::from_env();
    let mut client = oss::connect().await?;
    for name in ["list/a.txt", "list/b.txt", "list/c.txt", "list/sub/d.txt", "list/sub/e.txt"] {
        oss::put(&mut client, &target, name, name.as_bytes().to_vec()).await?;
    }

    let mut marker = String::new();
    let mut page = 1;
    loop {
        let listing = client
            .list_objects(pb::ListObjectsInput {
                store_name: target.store.clone(),
                bucket: target.bucket.clone(),
                prefix: "list/".into(),
                max_keys: 2,
                marker: marker.clone(),
                ..Default::default()
            })
            .await?
            .into_inner();
        let keys: Vec<&str> = listing.contents.iter().map(|o| o.key.as_str()).collect();
        println!("page {page}: {}", keys.join(" "));
        if !listing.is_truncated {
            break;
        }
        marker = listing.next_marker;
        page += 1;
    }

    let grouped = client
        .list_objects(pb::ListObjectsInput {
            store_name: target.store.clone(),
            bucket: target.bucket.clone(),
            prefix: "list/".into(),
            delimiter: "/".into(),
            ..Default::default()
        })
        .await?
        .into_inner();
    println!("folders: {}", grouped.common_prefixes.join(" "));
    Ok(())
}
