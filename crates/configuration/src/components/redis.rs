//! `redis`: the items of one app, group and label are the fields of one hash,
//! `configuration|||<app>||<group>||<label>` (field = key, value = content);
//! their tags are JSON objects in `configuration-tags|||<app>||<group>||<label>`
//! (field = key). `redis-cli HSET 'configuration|||app1||default||default' timeout 5s`
//! changes an item as the API does.
//!
//! Changes are pushed from Redis keyspace notifications, so a change made by
//! another process reaches subscribers too: the component turns on the
//! `K`, `h` and `g` flags of `notify-keyspace-events` (also again after the
//! server restarted). For each notified hash it reads the hash again and
//! pushes what differs from what it last saw; after a reconnection it
//! compares everything it watches, so changes made during an outage are
//! pushed too. Metadata: Layotto's Redis keys (`redisHost`, `redisPassword`, …).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;
use layotto_core::{ComponentContext, Error, ErrorKind, Health, Result};
use layotto_redis::fred::clients::SubscriberClient;
use layotto_redis::fred::prelude::*;
use layotto_redis::{RedisConn, RedisSettings};
use parking_lot::Mutex;

use crate::{ConfigStore, ConfigurationItem, Hub, SaveRequest, Scope, Subscription, WILDCARD};

const ITEMS: &str = "configuration|||";
const TAGS: &str = "configuration-tags|||";
const SEP: &str = "||";
/// The keyspace flags the component needs: keyspace events, hash and generic commands.
const FLAGS: [char; 3] = ['K', 'h', 'g'];

/// (group, label, key)
type ItemId = (String, String, String);

pub struct RedisConfigStore {
    inner: Arc<Inner>,
}

struct Inner {
    component: String,
    conn: RedisConn,
    db: u8,
    hub: Hub,
    subscriber: tokio::sync::OnceCell<SubscriberClient>,
    /// Per watched app, the items as last seen.
    seen: Mutex<HashMap<String, BTreeMap<ItemId, ConfigurationItem>>>,
    /// Diffs of one app run one at a time, so pushes keep their order.
    diffing: tokio::sync::Mutex<()>,
}

fn hash(family: &str, app: &str, group: &str, label: &str) -> String {
    format!("{family}{app}{SEP}{group}{SEP}{label}")
}

/// (app, group, label) of an item or tag hash name.
fn parse_hash(name: &str) -> Option<(String, String, String)> {
    let rest = name.strip_prefix(ITEMS).or_else(|| name.strip_prefix(TAGS))?;
    let mut parts = rest.split(SEP);
    let triple = (parts.next()?.to_owned(), parts.next()?.to_owned(), parts.next()?.to_owned());
    parts.next().is_none().then_some(triple)
}

impl RedisConfigStore {
    pub const TYPE: &'static str = "redis";

    pub async fn build(ctx: ComponentContext) -> Result<Arc<dyn ConfigStore>> {
        let settings: RedisSettings = ctx.settings()?;
        let component = format!("config store '{}' (redis)", ctx.name);
        let conn = RedisConn::connect(&component, &settings, 1).await?;
        if conn.is_cluster() {
            // Keyspace notifications are per node, and items and tags live in two keys.
            return Err(Error::config(format!(
                "{component}: Redis Cluster ('redisType: cluster') is not supported for configuration; \
                 use a single Redis node"
            )));
        }
        let db = settings.db.unwrap_or(0);
        let inner = Arc::new(Inner {
            component,
            conn,
            db,
            hub: Hub::default(),
            subscriber: tokio::sync::OnceCell::new(),
            seen: Mutex::default(),
            diffing: tokio::sync::Mutex::new(()),
        });
        Ok(Arc::new(Self { inner }))
    }
}

impl Inner {
    fn check(&self, field: &str, value: &str) -> Result<()> {
        if value.is_empty() || value.contains(SEP) {
            return Err(Error::invalid_argument(format!(
                "{}: {field} '{}' must be non-empty and must not contain '||'",
                self.component,
                layotto_core::clip(value)
            )));
        }
        Ok(())
    }

    fn fail<'a>(&'a self, what: &'a str) -> impl Fn(layotto_redis::fred::error::Error) -> Error + 'a {
        move |e| self.conn.error(what, e)
    }

    /// The (group, label) pairs of `app` that the scope can match.
    async fn pairs(&self, scope: &Scope) -> Result<Vec<(String, String)>> {
        if scope.group != WILDCARD && scope.label != WILDCARD {
            return Ok(vec![(scope.group.clone(), scope.label.clone())]);
        }
        let client = self.conn.client()?;
        let pattern = format!("{ITEMS}{}{SEP}*", scope.app_id.replace('*', "\\*"));
        let mut keys = client.scan_buffered(pattern, Some(200), None);
        let mut pairs = BTreeSet::new();
        while let Some(key) = keys.next().await {
            let key = key.map_err(self.fail("scanning"))?;
            if let Some((app, group, label)) = key.as_str().and_then(parse_hash)
                && app == scope.app_id
            {
                pairs.insert((group, label));
            }
        }
        Ok(pairs.into_iter().collect())
    }

    /// Every item of one app, group and label.
    async fn read_pair(&self, app: &str, group: &str, label: &str) -> Result<Vec<ConfigurationItem>> {
        let client = self.conn.client()?;
        let (contents, tags): (HashMap<String, String>, HashMap<String, String>) = tokio::try_join!(
            client.hgetall(hash(ITEMS, app, group, label)),
            client.hgetall(hash(TAGS, app, group, label)),
        )
        .map_err(self.fail("reading"))?;
        let mut items: Vec<ConfigurationItem> = contents
            .into_iter()
            .map(|(key, content)| {
                let mut item = ConfigurationItem::new(group, label, &key, &content);
                if let Some(json) = tags.get(&key) {
                    item.tags = serde_json::from_str(json).unwrap_or_default();
                }
                item
            })
            .collect();
        items.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(items)
    }

    async fn read(&self, scope: &Scope) -> Result<Vec<ConfigurationItem>> {
        let mut items = Vec::new();
        for (group, label) in self.pairs(scope).await? {
            items.extend(
                self.read_pair(&scope.app_id, &group, &label)
                    .await?
                    .into_iter()
                    .filter(|item| scope.matches(&scope.app_id, item)),
            );
        }
        Ok(items)
    }

    /// Makes sure Redis sends the keyspace notifications the watch needs.
    async fn enable_notifications(&self) -> Result<()> {
        let client = self.conn.client()?;
        let current: HashMap<String, String> = client
            .config_get("notify-keyspace-events")
            .await
            .map_err(self.fail("reading notify-keyspace-events"))?;
        let mut flags = current.get("notify-keyspace-events").cloned().unwrap_or_default();
        let has = |flags: &str, f: char| flags.contains(f) || (f != 'K' && flags.contains('A'));
        if FLAGS.iter().all(|f| has(&flags, *f)) {
            return Ok(());
        }
        for f in FLAGS {
            if !has(&flags, f) {
                flags.push(f);
            }
        }
        client.config_set("notify-keyspace-events", flags.as_str()).await.map_err(|e| {
            Error::new(
                ErrorKind::Unsupported,
                format!(
                    "{}: cannot watch: Redis keyspace notifications are off and CONFIG SET is refused ({e}); \
                     set notify-keyspace-events to include Khg",
                    self.component
                ),
            )
        })
    }

    /// Reads `app` (all of it, or one group and label) and pushes what
    /// changed since it was last seen.
    async fn diff(&self, app: &str, pair: Option<(&str, &str)>) -> Result<()> {
        let _one_at_a_time = self.diffing.lock().await;
        let scope = match pair {
            Some((group, label)) => Scope::new(app, group, label, Vec::new()),
            None => Scope::new(app, WILDCARD, WILDCARD, Vec::new()),
        };
        let now: BTreeMap<ItemId, ConfigurationItem> = self
            .read(&scope)
            .await?
            .into_iter()
            .map(|item| ((item.group.clone(), item.label.clone(), item.key.clone()), item))
            .collect();
        let changes = {
            let mut seen = self.seen.lock();
            let Some(before) = seen.get_mut(app) else { return Ok(()) };
            let mut changes = Vec::new();
            let gone: Vec<ItemId> = before
                .keys()
                .filter(|id| pair.is_none_or(|(g, l)| id.0 == g && id.1 == l) && !now.contains_key(*id))
                .cloned()
                .collect();
            for id in gone {
                before.remove(&id);
                changes.push(ConfigurationItem::deleted(&id.0, &id.1, &id.2));
            }
            for (id, item) in now {
                if before.get(&id) != Some(&item) {
                    changes.push(item.clone());
                    before.insert(id, item);
                }
            }
            changes
        };
        self.hub.publish(app, &changes);
        Ok(())
    }

    /// Compares every watched app with what was last seen.
    async fn diff_all(&self) {
        let apps: Vec<String> = self.seen.lock().keys().cloned().collect();
        for app in apps {
            if let Err(e) = self.diff(&app, None).await {
                tracing::warn!(component = %self.component, error = %e, "cannot compare the configuration");
            }
        }
    }

    /// Starts watching `app` unless it is watched.
    async fn watch(self: &Arc<Self>, app: &str) -> Result<()> {
        // Notifications that arrive meanwhile wait for the first snapshot.
        let _snapshot_first = self.diffing.lock().await;
        if self.seen.lock().contains_key(app) {
            return Ok(());
        }
        self.enable_notifications().await?;
        let subscriber = self
            .subscriber
            .get_or_try_init(|| async {
                let subscriber = self.conn.subscriber().await?;
                self.listen(&subscriber);
                Ok::<_, Error>(subscriber)
            })
            .await?;
        let patterns: Vec<String> = [ITEMS, TAGS]
            .iter()
            .map(|family| format!("__keyspace@{}__:{family}{}{SEP}*", self.db, app.replace('*', "\\*")))
            .collect();
        subscriber.psubscribe(patterns).await.map_err(self.fail("subscribing to keyspace notifications"))?;
        let items = self.read(&Scope::new(app, WILDCARD, WILDCARD, Vec::new())).await?;
        let items =
            items.into_iter().map(|i| ((i.group.clone(), i.label.clone(), i.key.clone()), i)).collect();
        self.seen.lock().entry(app.to_owned()).or_insert(items);
        Ok(())
    }

    /// Handles notifications, and after a reconnection compares everything
    /// watched (notifications sent while disconnected are lost).
    fn listen(self: &Arc<Self>, subscriber: &SubscriberClient) {
        // fred hands keyspace notifications to their own channel, parsed.
        let mut events = subscriber.keyspace_event_rx();
        let this = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let event = events.recv().await;
                let Some(this) = this.upgrade() else { return };
                let event = match event {
                    Ok(event) => event,
                    // Notifications were missed: compare everything watched.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        this.diff_all().await;
                        continue;
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                };
                let Some((app, group, label)) = event.key.as_str().and_then(parse_hash) else { continue };
                if let Err(e) = this.diff(&app, Some((&group, &label))).await {
                    tracing::warn!(component = %this.component, error = %e, "cannot read a changed configuration");
                }
            }
        });
        let mut reconnects = subscriber.reconnect_rx();
        let this = Arc::downgrade(self);
        tokio::spawn(async move {
            while reconnects.recv().await.is_ok() {
                // A restarted server forgot the notification flags. The
                // subscriber may be back before the connections that set them,
                // so try until they take.
                let mut warned = false;
                loop {
                    let Some(this) = this.upgrade() else { return };
                    match this.enable_notifications().await {
                        Ok(()) => break,
                        Err(e) if !warned => {
                            warned = true;
                            tracing::warn!(component = %this.component, error = %e, "keyspace notifications");
                        }
                        Err(_) => {}
                    }
                    drop(this);
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
                let Some(this) = this.upgrade() else { return };
                this.diff_all().await;
                // fred subscribes again on its own after announcing the
                // reconnection: a change notified before that lands is lost,
                // so compare once more when the subscription surely stands.
                let later = Arc::downgrade(&this);
                tokio::spawn(async move {
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    if let Some(this) = later.upgrade() {
                        this.diff_all().await;
                    }
                });
            }
        });
    }
}

#[async_trait]
impl ConfigStore for RedisConfigStore {
    async fn get(&self, scope: &Scope) -> Result<Vec<ConfigurationItem>> {
        self.inner.read(scope).await
    }

    async fn set(&self, req: SaveRequest) -> Result<()> {
        let inner = &self.inner;
        inner.check("app_id", &req.app_id)?;
        let client = inner.conn.client()?;
        let transaction = client.multi();
        for item in &req.items {
            inner.check("group", &item.group)?;
            inner.check("label", &item.label)?;
            let items = hash(ITEMS, &req.app_id, &item.group, &item.label);
            let tags = hash(TAGS, &req.app_id, &item.group, &item.label);
            let _: () = transaction
                .hset(&items, (item.key.as_str(), item.content.as_str()))
                .await
                .map_err(inner.fail("writing"))?;
            if item.tags.is_empty() {
                let _: () =
                    transaction.hdel(&tags, item.key.as_str()).await.map_err(inner.fail("writing"))?;
            } else {
                let json = serde_json::to_string(&item.tags).map_err(|e| Error::internal(e.to_string()))?;
                let _: () = transaction
                    .hset(&tags, (item.key.as_str(), json.as_str()))
                    .await
                    .map_err(inner.fail("writing"))?;
            }
        }
        let _: Value = transaction.exec(true).await.map_err(inner.fail("writing"))?;
        Ok(())
    }

    async fn delete(&self, scope: &Scope) -> Result<()> {
        let inner = &self.inner;
        let client = inner.conn.client()?;
        for item in inner.read(scope).await? {
            let _: () = client
                .hdel(hash(ITEMS, &scope.app_id, &item.group, &item.label), item.key.as_str())
                .await
                .map_err(inner.fail("deleting"))?;
            let _: () = client
                .hdel(hash(TAGS, &scope.app_id, &item.group, &item.label), item.key.as_str())
                .await
                .map_err(inner.fail("deleting"))?;
        }
        Ok(())
    }

    async fn subscribe(&self, scope: Scope) -> Result<Subscription> {
        self.inner.check("app_id", &scope.app_id)?;
        self.inner.watch(&scope.app_id).await?;
        Ok(self.inner.hub.subscribe(scope))
    }

    async fn health(&self) -> Health {
        self.inner.conn.health().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_names_round_trip() {
        let name = hash(ITEMS, "app", "g", "l");
        assert_eq!(name, "configuration|||app||g||l");
        assert_eq!(parse_hash(&name), Some(("app".into(), "g".into(), "l".into())));
        assert_eq!(parse_hash(&hash(TAGS, "app", "g", "l")), Some(("app".into(), "g".into(), "l".into())));
        assert_eq!(parse_hash("configuration|||app||g"), None);
        assert_eq!(parse_hash("other|||app||g||l"), None);
    }
}
