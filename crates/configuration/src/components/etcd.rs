//! `etcd`: Layotto's etcd configuration store layout, so Go Layotto and this
//! runtime can share one etcd: an item is the key `/<app>/<group>/<label>/<key>`
//! holding its content; each tag is a key below it,
//! `/<app>/<group>/<label>/<key>/<tag name>`, holding the tag's value.
//! (Go Layotto writes the tag's *value* as the last segment and the content
//! as the value, losing the tag's name; we keep the name.) App ids, groups,
//! labels and keys must not contain `/`.
//!
//! Metadata: `endpoints` (or Layotto's `address` list; `;`-separated),
//! `timeout` and `dialTimeout` (seconds), `username`, `password`,
//! `tlsCert` / `tlsCertKey` / `tlsCa` (PEM files).
//! Changes are pushed from one etcd watch per subscribed app, which resumes
//! after an outage from the last revision it saw.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
use layotto_core::{ComponentContext, Health, Result};
use layotto_etcd::pb::etcdserverpb as rpc;
use layotto_etcd::{Etcd, EtcdSettings, KeyValue, WatchEvent};
use parking_lot::Mutex;

use crate::{ConfigStore, ConfigurationItem, Hub, SaveRequest, Scope, Subscription, WILDCARD, check_segment};

pub struct EtcdConfigStore {
    component: String,
    etcd: Etcd,
    hub: Arc<Hub>,
    /// Apps whose watch runs.
    watched: Arc<Mutex<BTreeSet<String>>>,
}

/// (group, label, key)
type ItemId = (String, String, String);

fn item_path(app: &str, (group, label, key): &ItemId) -> String {
    format!("/{app}/{group}/{label}/{key}")
}

/// The item or tag a key of app `app` stands for: its id, and the tag name.
fn parse_path(app: &str, path: &[u8]) -> Option<(ItemId, Option<String>)> {
    let path = std::str::from_utf8(path).ok()?;
    let rest = path.strip_prefix('/')?.strip_prefix(app)?.strip_prefix('/')?;
    let mut parts = rest.split('/');
    let id = (parts.next()?.to_owned(), parts.next()?.to_owned(), parts.next()?.to_owned());
    let tag = parts.next().map(str::to_owned);
    (parts.next().is_none() && !id.2.is_empty()).then_some((id, tag))
}

/// Items from the keys of one app.
fn items_of(app: &str, kvs: Vec<KeyValue>) -> BTreeMap<ItemId, ConfigurationItem> {
    let mut items: BTreeMap<ItemId, ConfigurationItem> = BTreeMap::new();
    let mut tags: Vec<(ItemId, String, String)> = Vec::new();
    for kv in kvs {
        let Some((id, tag)) = parse_path(app, &kv.key) else { continue };
        let value = String::from_utf8_lossy(&kv.value).into_owned();
        match tag {
            None => {
                items.insert(id.clone(), ConfigurationItem::new(&id.0, &id.1, &id.2, &value));
            }
            Some(tag) => tags.push((id, tag, value)),
        }
    }
    for (id, tag, value) in tags {
        if let Some(item) = items.get_mut(&id) {
            item.tags.insert(tag, value);
        }
    }
    items
}

impl EtcdConfigStore {
    pub const TYPE: &'static str = "etcd";

    pub async fn build(ctx: ComponentContext) -> Result<Arc<dyn ConfigStore>> {
        let settings: EtcdSettings = ctx.settings()?;
        let component = format!("config store '{}' (etcd)", ctx.name);
        let etcd = Etcd::connect(&component, &settings).await?;
        Ok(Arc::new(Self { component, etcd, hub: Arc::default(), watched: Arc::default() }))
    }

    fn check(&self, app: &str, group: &str, label: &str, key: &str) -> Result<()> {
        check_segment(&self.component, "app_id", app)?;
        check_segment(&self.component, "group", group)?;
        check_segment(&self.component, "label", label)?;
        check_segment(&self.component, "key", key)
    }

    /// The narrowest prefix holding the scope's items.
    fn prefix(scope: &Scope) -> String {
        match (scope.group.as_str(), scope.label.as_str()) {
            (WILDCARD, _) => format!("/{}/", scope.app_id),
            (group, WILDCARD) => format!("/{}/{group}/", scope.app_id),
            (group, label) => format!("/{}/{group}/{label}/", scope.app_id),
        }
    }

    async fn read(&self, scope: &Scope) -> Result<Vec<ConfigurationItem>> {
        check_segment(&self.component, "app_id", &scope.app_id)?;
        let (kvs, _) = self.etcd.get_prefix(&Self::prefix(scope)).await?;
        Ok(items_of(&scope.app_id, kvs)
            .into_values()
            .filter(|item| scope.matches(&scope.app_id, item))
            .collect())
    }

    /// Starts the watch of `app` unless it runs.
    async fn watch(&self, app: &str) -> Result<()> {
        if !self.watched.lock().insert(app.to_owned()) {
            return Ok(());
        }
        let prefix = format!("/{app}/");
        let revision = match self.etcd.revision().await {
            Ok(revision) => revision,
            Err(e) => {
                self.watched.lock().remove(app);
                return Err(e);
            }
        };
        let mut events = self.etcd.watch_prefix(&prefix, revision + 1);
        let (etcd, hub, watched, app) =
            (self.etcd.clone(), self.hub.clone(), self.watched.clone(), app.to_owned());
        tokio::spawn(async move {
            while let Some(first) = events.recv().await {
                // Everything that arrived together is one change: read each item once.
                let mut batch = vec![first];
                while let Ok(more) = events.try_recv() {
                    batch.push(more);
                }
                if !hub.has_subscribers(&app) {
                    break;
                }
                let resync = batch.contains(&WatchEvent::Resync);
                let changed: BTreeSet<ItemId> = batch
                    .iter()
                    .filter_map(|event| match event {
                        WatchEvent::Put(kv) | WatchEvent::Delete(kv) => parse_path(&app, &kv.key),
                        WatchEvent::Resync => None,
                    })
                    .map(|(id, _)| id)
                    .collect();
                let pushed = if resync {
                    // Changes may have been missed: everything the app has is news.
                    etcd.get_prefix(&prefix).await.map(|(kvs, _)| items_of(&app, kvs).into_values().collect())
                } else {
                    current(&etcd, &app, changed).await
                };
                match pushed {
                    Ok(items) => hub.publish(&app, &items),
                    Err(e) => tracing::warn!(app = %app, error = %e, "cannot read changed configuration"),
                }
            }
            watched.lock().remove(&app);
        });
        Ok(())
    }
}

/// Each changed item as it stands now, or as deleted.
async fn current(etcd: &Etcd, app: &str, changed: BTreeSet<ItemId>) -> Result<Vec<ConfigurationItem>> {
    let mut items = Vec::with_capacity(changed.len());
    for id in changed {
        let path = item_path(app, &id);
        let (kvs, _) = etcd.get_prefix(&path).await?;
        let kvs: Vec<KeyValue> = kvs
            .into_iter()
            .filter(|kv| kv.key == path.as_bytes() || kv.key.starts_with(format!("{path}/").as_bytes()))
            .collect();
        let mut found = items_of(app, kvs);
        items.push(found.remove(&id).unwrap_or_else(|| ConfigurationItem::deleted(&id.0, &id.1, &id.2)));
    }
    Ok(items)
}

fn put(key: String, value: &str) -> rpc::RequestOp {
    rpc::RequestOp {
        request: Some(rpc::request_op::Request::RequestPut(rpc::PutRequest {
            key: key.into_bytes(),
            value: value.as_bytes().to_vec(),
            ..Default::default()
        })),
    }
}

fn delete(key: String) -> rpc::RequestOp {
    rpc::RequestOp {
        request: Some(rpc::request_op::Request::RequestDeleteRange(rpc::DeleteRangeRequest {
            key: key.into_bytes(),
            ..Default::default()
        })),
    }
}

#[async_trait]
impl ConfigStore for EtcdConfigStore {
    async fn get(&self, scope: &Scope) -> Result<Vec<ConfigurationItem>> {
        self.read(scope).await
    }

    async fn set(&self, req: SaveRequest) -> Result<()> {
        let mut ops = Vec::new();
        for item in &req.items {
            self.check(&req.app_id, &item.group, &item.label, &item.key)?;
            for tag in item.tags.keys() {
                check_segment(&self.component, "tag name", tag)?;
            }
            let id = (item.group.clone(), item.label.clone(), item.key.clone());
            let path = item_path(&req.app_id, &id);
            // Tags the item no longer has go; the rest are written over.
            let (old, _) = self.etcd.get_prefix(&format!("{path}/")).await?;
            for kv in old {
                if let Some((_, Some(tag))) = parse_path(&req.app_id, &kv.key)
                    && !item.tags.contains_key(&tag)
                {
                    ops.push(delete(format!("{path}/{tag}")));
                }
            }
            ops.push(put(path.clone(), &item.content));
            for (tag, value) in &item.tags {
                ops.push(put(format!("{path}/{tag}"), value));
            }
        }
        if ops.is_empty() {
            return Ok(());
        }
        // One transaction, so subscribers see the items change together.
        self.etcd.txn(rpc::TxnRequest { compare: Vec::new(), success: ops, failure: Vec::new() }).await?;
        Ok(())
    }

    async fn delete(&self, scope: &Scope) -> Result<()> {
        for item in self.read(scope).await? {
            let path = item_path(&scope.app_id, &(item.group, item.label, item.key));
            self.etcd.delete(&format!("{path}/"), true).await?;
            self.etcd.delete(&path, false).await?;
        }
        Ok(())
    }

    async fn subscribe(&self, scope: Scope) -> Result<Subscription> {
        check_segment(&self.component, "app_id", &scope.app_id)?;
        let subscription = self.hub.subscribe(scope.clone());
        self.watch(&scope.app_id).await?;
        Ok(subscription)
    }

    async fn health(&self) -> Health {
        self.etcd.health().await
    }
}

impl std::fmt::Debug for EtcdConfigStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdConfigStore").field("component", &self.component).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse_into_items_and_tags() {
        let id = ("g".to_owned(), "l".to_owned(), "k".to_owned());
        assert_eq!(parse_path("app", b"/app/g/l/k"), Some((id.clone(), None)));
        assert_eq!(parse_path("app", b"/app/g/l/k/env"), Some((id, Some("env".into()))));
        assert_eq!(parse_path("app", b"/app/g/l"), None);
        assert_eq!(parse_path("app", b"/application/g/l/k"), None);
        assert_eq!(parse_path("app", b"/app/g/l/k/t/x"), None);
    }
}
