//! CopyObject, object tags, DeleteObjects and IsObjectExist.
//!
//! `cargo run -p layotto-examples --bin oss-copy-tag-delete` with the runtime running.

use layotto_examples::oss::{self, Target};
use layotto_grpc::pb::s3 as pb;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let target = Target::from_env();
    let mut client = oss::connect().await?;
    oss::put(&mut client, &target, "report.csv", b"month,total\njan,42\n".to_vec()).await?;

    client
        .copy_object(pb::CopyObjectInput {
            store_name: target.store.clone(),
            bucket: target.bucket.clone(),
            key: "archive/report.csv".into(),
            copy_source: Some(pb::CopySource {
                copy_source_bucket: target.bucket.clone(),
                copy_source_key: "report.csv".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await?;
    println!("copied report.csv to archive/report.csv");

    client
        .put_object_tagging(pb::PutObjectTaggingInput {
            store_name: target.store.clone(),
            bucket: target.bucket.clone(),
            key: "archive/report.csv".into(),
            tags: [("retention".to_owned(), "1y".to_owned())].into(),
            ..Default::default()
        })
        .await?;
    let tags = client
        .get_object_tagging(pb::GetObjectTaggingInput {
            store_name: target.store.clone(),
            bucket: target.bucket.clone(),
            key: "archive/report.csv".into(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .tags;
    println!("tags retention={}", tags.get("retention").map(String::as_str).unwrap_or("-"));

    let objects = ["report.csv", "archive/report.csv"]
        .into_iter()
        .map(|key| pb::ObjectIdentifier { key: key.into(), ..Default::default() })
        .collect();
    let deleted = client
        .delete_objects(pb::DeleteObjectsInput {
            store_name: target.store.clone(),
            bucket: target.bucket.clone(),
            delete: Some(pb::Delete { objects, quiet: false }),
            ..Default::default()
        })
        .await?
        .into_inner();
    println!("deleted {} objects", deleted.deleted.len());

    let exists = client
        .is_object_exist(pb::IsObjectExistInput {
            store_name: target.store.clone(),
            bucket: target.bucket.clone(),
            key: "report.csv".into(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .file_exist;
    println!("report.csv exists: {exists}");
    Ok(())
}
