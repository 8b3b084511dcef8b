//! `postgresql`: items in a table, changes pushed with LISTEN/NOTIFY, as
//! Dapr's PostgreSQL configuration store does; here the component creates
//! the table, the notify function and the trigger itself.
//!
//! Table (`tableName`, default `layotto_configuration`):
//! `(app_id, grp, label, key) PRIMARY KEY, content TEXT, tags JSONB`.
//! An `AFTER INSERT OR UPDATE OR DELETE` trigger sends
//! `{"op", "app_id", "grp", "label", "key"}` on the channel named after the
//! table, so a row changed with `psql` is pushed like one changed through
//! the API. The component reads the row again for each notification (a
//! payload has a size limit; the content has none). After the listening
//! connection is lost and back, everything watched is compared with what was
//! last seen, so changes made meanwhile are pushed too.
//!
//! Metadata: `connectionString` (required), `tableName`, `timeout`, `maxConns`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use layotto_core::{Backoff, ComponentContext, Error, Health, Result};
use layotto_sql::PoolSettings;
use layotto_sql::postgres::PostgresSettings;
use parking_lot::Mutex;
use sqlx::postgres::{PgListener, PgPool};
use sqlx::{AssertSqlSafe, Row, SqlSafeStr, SqlStr};

use crate::{ConfigStore, ConfigurationItem, Hub, SaveRequest, Scope, Subscription, WILDCARD};

const DEFAULT_TABLE: &str = "layotto_configuration";

/// (group, label, key)
type ItemId = (String, String, String);

pub struct PostgresConfigStore {
    inner: Arc<Inner>,
}

struct Inner {
    component: String,
    pool: PgPool,
    timeout: Duration,
    channel: String,
    select: SqlStr,
    upsert: SqlStr,
    delete: SqlStr,
    hub: Hub,
    listening: tokio::sync::OnceCell<()>,
    /// Per watched app, the items as last seen.
    seen: Mutex<HashMap<String, BTreeMap<ItemId, ConfigurationItem>>>,
    diffing: tokio::sync::Mutex<()>,
}

impl PostgresConfigStore {
    pub const TYPE: &'static str = "postgresql";

    pub async fn build(ctx: ComponentContext) -> Result<Arc<dyn ConfigStore>> {
        let component = format!("config store '{}' (postgresql)", ctx.name);
        let pool_settings: PoolSettings = ctx.settings()?;
        let pg: PostgresSettings = ctx.settings()?;
        let table = pool_settings.table(&component, DEFAULT_TABLE)?;
        let options = layotto_sql::postgres::connect_options(&component, &pg)?;
        let timeout = pool_settings.timeout();
        let pool = layotto_sql::open_pool(&component, "PostgreSQL", options, &pool_settings).await?;
        // A channel is an identifier of its own: the table name without its schema.
        let channel = table.rsplit('.').next().unwrap_or(&table).to_owned();
        let function = format!("{table}_notify");
        let setup = format!(
            "CREATE TABLE IF NOT EXISTS {table} (\
               app_id TEXT NOT NULL, grp TEXT NOT NULL, label TEXT NOT NULL, key TEXT NOT NULL, \
               content TEXT NOT NULL, tags JSONB NOT NULL DEFAULT '{{}}', \
               PRIMARY KEY (app_id, grp, label, key)); \
             CREATE OR REPLACE FUNCTION {function}() RETURNS trigger AS $$ \
             DECLARE r RECORD; \
             BEGIN \
               IF TG_OP = 'DELETE' THEN r := OLD; ELSE r := NEW; END IF; \
               PERFORM pg_notify('{channel}', json_build_object('op', TG_OP, 'app_id', r.app_id, \
                 'grp', r.grp, 'label', r.label, 'key', r.key)::text); \
               RETURN NULL; \
             END; $$ LANGUAGE plpgsql; \
             CREATE OR REPLACE TRIGGER {channel}_changed AFTER INSERT OR UPDATE OR DELETE ON {table} \
               FOR EACH ROW EXECUTE FUNCTION {function}();"
        );
        // One transaction under an advisory lock: runtimes starting together would
        // otherwise race on the function and trigger ("tuple concurrently updated").
        let run = async {
            let mut tx: sqlx::Transaction<'_, sqlx::Postgres> = pool.begin().await?;
            sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))").bind(&table).execute(&mut *tx).await?;
            sqlx::raw_sql(AssertSqlSafe(setup)).execute(&mut *tx).await?;
            tx.commit().await
        };
        layotto_sql::create_table(&component, &table, timeout, run).await?;
        let sql = |s: String| AssertSqlSafe(s).into_sql_str();
        let inner = Inner {
            component,
            pool,
            timeout,
            channel,
            select: sql(format!(
                "SELECT grp, label, key, content, tags::text FROM {table} WHERE app_id = $1 \
                 AND ($2 = '*' OR grp = $2) AND ($3 = '*' OR label = $3) ORDER BY grp, label, key"
            )),
            upsert: sql(format!(
                "INSERT INTO {table} (app_id, grp, label, key, content, tags) VALUES ($1, $2, $3, $4, $5, $6::jsonb) \
                 ON CONFLICT (app_id, grp, label, key) DO UPDATE SET content = EXCLUDED.content, tags = EXCLUDED.tags"
            )),
            delete: sql(format!(
                "DELETE FROM {table} WHERE app_id = $1 AND grp = $2 AND label = $3 AND key = $4"
            )),
            hub: Hub::default(),
            listening: tokio::sync::OnceCell::new(),
            seen: Mutex::default(),
            diffing: tokio::sync::Mutex::new(()),
        };
        Ok(Arc::new(Self { inner: Arc::new(inner) }))
    }
}

impl Inner {
    async fn run<T>(&self, what: &str, call: impl Future<Output = sqlx::Result<T>>) -> Result<T> {
        layotto_sql::run(&self.component, what, self.timeout, call).await
    }

    async fn read(&self, scope: &Scope) -> Result<Vec<ConfigurationItem>> {
        let query =
            sqlx::query(self.select.clone()).bind(&scope.app_id).bind(&scope.group).bind(&scope.label);
        let rows = self.run("reading", query.fetch_all(&self.pool)).await?;
        let mut items = Vec::with_capacity(rows.len());
        for row in rows {
            let get = |i: usize| -> Result<String> {
                row.try_get(i).map_err(|e| layotto_sql::sql_error(&self.component, "reading", e))
            };
            let mut item = ConfigurationItem::new(&get(0)?, &get(1)?, &get(2)?, &get(3)?);
            item.tags = serde_json::from_str(&get(4)?).unwrap_or_default();
            if scope.matches(&scope.app_id, &item) {
                items.push(item);
            }
        }
        Ok(items)
    }

    /// Reads `scope` and pushes what changed since it was last seen.
    async fn diff(&self, scope: &Scope) -> Result<()> {
        let _one_at_a_time = self.diffing.lock().await;
        let now: BTreeMap<ItemId, ConfigurationItem> = self
            .read(scope)
            .await?
            .into_iter()
            .map(|item| ((item.group.clone(), item.label.clone(), item.key.clone()), item))
            .collect();
        let changes = {
            let mut seen = self.seen.lock();
            let Some(before) = seen.get_mut(&scope.app_id) else { return Ok(()) };
            let in_scope =
                |id: &ItemId| scope.matches(&scope.app_id, &ConfigurationItem::new(&id.0, &id.1, &id.2, ""));
            let gone: Vec<ItemId> =
                before.keys().filter(|id| in_scope(id) && !now.contains_key(*id)).cloned().collect();
            let mut changes = Vec::new();
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
        self.hub.publish(&scope.app_id, &changes);
        Ok(())
    }

    async fn watch(self: &Arc<Self>, app: &str) -> Result<()> {
        self.listening.get_or_try_init(|| self.listen()).await?;
        let _snapshot_first = self.diffing.lock().await;
        if self.seen.lock().contains_key(app) {
            return Ok(());
        }
        let items = self.read(&Scope::new(app, WILDCARD, WILDCARD, Vec::new())).await?;
        let items =
            items.into_iter().map(|i| ((i.group.clone(), i.label.clone(), i.key.clone()), i)).collect();
        self.seen.lock().insert(app.to_owned(), items);
        Ok(())
    }

    /// LISTENs on the table's channel for as long as the component lives.
    async fn listen(self: &Arc<Self>) -> Result<()> {
        let mut listener = PgListener::connect_with(&self.pool)
            .await
            .map_err(|e| layotto_sql::sql_error(&self.component, "listening for changes", e))?;
        listener
            .listen(&self.channel)
            .await
            .map_err(|e| layotto_sql::sql_error(&self.component, "listening for changes", e))?;
        let this = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(500));
            loop {
                let next = listener.try_recv().await;
                let Some(this) = this.upgrade() else { return };
                match next {
                    Ok(Some(notification)) => {
                        backoff.reset();
                        #[derive(serde::Deserialize)]
                        struct Change {
                            app_id: String,
                            grp: String,
                            label: String,
                            key: String,
                        }
                        let Ok(change) = serde_json::from_str::<Change>(notification.payload()) else {
                            continue;
                        };
                        if !this.seen.lock().contains_key(&change.app_id) {
                            continue;
                        }
                        let scope = Scope::new(&change.app_id, &change.grp, &change.label, vec![change.key]);
                        if let Err(e) = this.diff(&scope).await {
                            tracing::warn!(component = %this.component, error = %e, "cannot read a changed configuration");
                        }
                    }
                    // The connection was lost; it comes back on the next call.
                    // What changed meanwhile sent no notification: compare.
                    Ok(None) | Err(_) => {
                        if next.is_err() {
                            tokio::time::sleep(backoff.next_delay()).await;
                        }
                        let apps: BTreeSet<String> = this.seen.lock().keys().cloned().collect();
                        for app in apps {
                            let _ = this.diff(&Scope::new(&app, WILDCARD, WILDCARD, Vec::new())).await;
                        }
                    }
                }
            }
        });
        Ok(())
    }
}

#[async_trait]
impl ConfigStore for PostgresConfigStore {
    async fn get(&self, scope: &Scope) -> Result<Vec<ConfigurationItem>> {
        self.inner.read(scope).await
    }

    async fn set(&self, req: SaveRequest) -> Result<()> {
        let inner = &self.inner;
        let mut tx = inner.run("writing", inner.pool.begin()).await?;
        for item in &req.items {
            let tags = serde_json::to_string(&item.tags).map_err(|e| Error::internal(e.to_string()))?;
            let query = sqlx::query(inner.upsert.clone())
                .bind(&req.app_id)
                .bind(&item.group)
                .bind(&item.label)
                .bind(&item.key)
                .bind(&item.content)
                .bind(tags);
            inner.run("writing", query.execute(&mut *tx)).await?;
        }
        inner.run("writing", tx.commit()).await
    }

    async fn delete(&self, scope: &Scope) -> Result<()> {
        let inner = &self.inner;
        for item in inner.read(scope).await? {
            let query = sqlx::query(inner.delete.clone())
                .bind(&scope.app_id)
                .bind(&item.group)
                .bind(&item.label)
                .bind(&item.key);
            inner.run("deleting", query.execute(&inner.pool)).await?;
        }
        Ok(())
    }

    async fn subscribe(&self, scope: Scope) -> Result<Subscription> {
        self.inner.watch(&scope.app_id).await?;
        Ok(self.inner.hub.subscribe(scope))
    }

    async fn health(&self) -> Health {
        layotto_sql::health("PostgreSQL", async {
            sqlx::query("SELECT 1").execute(&self.inner.pool).await.map(drop)
        })
        .await
    }
}
