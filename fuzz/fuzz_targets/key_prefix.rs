//! Key prefixes (Layotto's `keyPrefix` strategies) on a state store: for any
//! strategy, app id, component name and key, a write is either refused with
//! an error or read back under the same key, also by a bulk get.
#![no_main]

use std::sync::{Arc, OnceLock};

use arbitrary::Arbitrary;
use layotto_core::{KeyPrefix, Metadata};
use layotto_state::{GetRequest, PrefixedStore, SetRequest, StateStore};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    strategy: String,
    app_id: String,
    component: String,
    key: String,
    value: Vec<u8>,
}

fn rt() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap())
}

fuzz_target!(|input: Input| {
    let metadata: Metadata = [("keyPrefix".to_owned(), input.strategy)].into_iter().collect();
    let Ok(strategy) = KeyPrefix::from_metadata(&input.component, &metadata, KeyPrefix::None) else { return };
    let prefix = strategy.resolve(&input.app_id, &input.component);
    let inner: Arc<dyn StateStore> = Arc::new(layotto_state::components::memory::MemoryStore::new("fuzz"));
    let store = PrefixedStore::new(input.component.clone(), prefix, inner);
    rt().block_on(async {
        let set = SetRequest { key: input.key.clone(), value: input.value.clone(), ..Default::default() };
        if store.set(set).await.is_err() {
            return;
        }
        let got = store.get(GetRequest { key: input.key.clone(), ..Default::default() }).await.unwrap();
        assert_eq!(got.map(|v| v.data), Some(input.value.clone()));
        let bulk = store.bulk_get(vec![input.key.clone()], Metadata::new()).await.unwrap();
        assert_eq!(bulk.len(), 1);
        assert_eq!(bulk[0].key, input.key, "bulk get must give back the key as the client wrote it");
    });
});
