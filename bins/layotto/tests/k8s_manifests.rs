//! Every manifest in deploy/kubernetes reads as its Kubernetes type
//! (k8s-openapi), and nothing in it is dropped on the way: a misspelled
//! field fails here rather than being ignored by the API server.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use serde::de::DeserializeOwned;

fn round_trip<T: DeserializeOwned + serde::Serialize>(doc: &serde_json::Value, file: &str) -> T {
    let typed: T = serde_json::from_value(doc.clone()).unwrap_or_else(|e| panic!("{file}: {e}"));
    let back = serde_json::to_value(&typed).unwrap();
    assert_eq!(&back, doc, "{file}: a field was not understood (a typo?)");
    typed
}

#[test]
fn every_manifest_is_a_valid_kubernetes_object() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/kubernetes");
    let mut kinds = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|x| x != "yaml") {
            continue;
        }
        let file = path.display().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        for document in serde_yaml::Deserializer::from_str(&text) {
            let doc: serde_json::Value = serde::Deserialize::deserialize(document).unwrap();
            let kind = doc["kind"].as_str().unwrap_or_default().to_owned();
            match kind.as_str() {
                "Deployment" => {
                    let d: Deployment = round_trip(&doc, &file);
                    let pod = d.spec.unwrap().template.spec.unwrap();
                    let sidecar =
                        pod.containers.iter().find(|c| c.name == "layotto").expect("a layotto container");
                    let probe = |p: &Option<k8s_openapi::api::core::v1::Probe>| {
                        p.as_ref()
                            .and_then(|p| p.http_get.as_ref())
                            .map(|g| g.path.clone().unwrap_or_default())
                    };
                    assert_eq!(probe(&sidecar.liveness_probe).as_deref(), Some("/actuator/health/liveness"));
                    assert_eq!(
                        probe(&sidecar.readiness_probe).as_deref(),
                        Some("/actuator/health/readiness")
                    );
                    assert!(
                        sidecar.lifecycle.as_ref().and_then(|l| l.pre_stop.as_ref()).is_some(),
                        "a preStop"
                    );
                    assert!(pod.termination_grace_period_seconds.unwrap() > 10, "longer than the drain");
                }
                "ConfigMap" => {
                    let c: ConfigMap = round_trip(&doc, &file);
                    let config = c.data.unwrap()["config.toml"].clone();
                    let tmp = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
                    std::fs::write(tmp.path(), config).unwrap();
                    let loaded = layotto_runtime::Config::load(Some(tmp.path()));
                    assert!(loaded.is_ok(), "{file}: the runtime refuses config.toml: {:?}", loaded.err());
                }
                "Secret" => drop(round_trip::<Secret>(&doc, &file)),
                "Service" => drop(round_trip::<Service>(&doc, &file)),
                other => panic!("{file}: no check for kind '{other}'"),
            }
            kinds.push(kind);
        }
    }
    kinds.sort();
    assert_eq!(kinds, ["ConfigMap", "Deployment", "Secret", "Service"]);
}
