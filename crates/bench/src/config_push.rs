//! Configuration push latency: a change written straight into the backend
//! (as another process would), timed until it reaches a subscriber, one
//! change at a time. Through the runtime the subscriber is a
//! SubscribeConfiguration stream; the baseline is the backend's own watch
//! driven directly in the same run (an etcd watch, Redis keyspace
//! notifications, PostgreSQL LISTEN on the runtime's trigger).

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::ValueEnum;
use fred::clients::SubscriberClient;
use fred::prelude::*;
use fred::types::KeyspaceEvent;
use layotto_etcd::{Etcd, EtcdSettings};
use layotto_grpc::pb::runtime as pb;
use layotto_grpc::pb::runtime::runtime_client::RuntimeClient;

use crate::{Report, histogram};

#[derive(Clone, Copy, ValueEnum)]
pub enum Backend {
    Etcd,
    Redis,
    Postgresql,
}

/// The PostgreSQL table the runtime's bench config store uses.
pub const PG_TABLE: &str = "layotto_configuration_bench";
const APP: &str = "bench-push";

/// Writes one change straight into the backend.
enum Writer {
    Etcd(Etcd),
    Redis(Client),
    Postgres(sqlx::PgPool),
}

impl Writer {
    async fn connect(backend: Backend, url: &str) -> Result<Self> {
        Ok(match backend {
            Backend::Etcd => {
                let settings = EtcdSettings { endpoints: Some(url.to_owned()), ..Default::default() };
                Self::Etcd(Etcd::connect("bench", &settings).await?)
            }
            Backend::Redis => {
                let client = Builder::from_config(Config::from_url(url)?).build()?;
                client.init().await?;
                Self::Redis(client)
            }
            Backend::Postgresql => Self::Postgres(sqlx::PgPool::connect(url).await?),
        })
    }

    async fn write(&self, key: &str, content: &str) -> Result<()> {
        match self {
            Self::Etcd(etcd) => {
                etcd.put(&format!("/{APP}/default/default/{key}"), content.as_bytes(), 0).await?;
            }
            Self::Redis(client) => {
                let hash = format!("configuration|||{APP}||default||default");
                let _: () = client.hset(hash, (key, content)).await?;
            }
            Self::Postgres(pool) => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO {PG_TABLE} (app_id, grp, label, key, content) VALUES ($1, 'default', 'default', $2, $3) \
                     ON CONFLICT (app_id, grp, label, key) DO UPDATE SET content = EXCLUDED.content"
                )))
                .bind(APP)
                .bind(key)
                .bind(content)
                .execute(pool)
                .await?;
            }
        }
        Ok(())
    }
}

/// Something that reports the content of the next change it sees.
enum Watcher {
    Runtime {
        pushes: tonic::Streaming<pb::SubscribeConfigurationResponse>,
        /// Open for as long as we watch: closing it ends the subscription.
        _requests: tokio::sync::mpsc::Sender<pb::SubscribeConfigurationRequest>,
    },
    Etcd(tokio::sync::mpsc::Receiver<layotto_etcd::WatchEvent>),
    Redis {
        /// Holds the subscription's connection.
        _subscriber: SubscriberClient,
        events: tokio::sync::broadcast::Receiver<KeyspaceEvent>,
        reader: Client,
    },
    Postgres(sqlx::postgres::PgListener, sqlx::PgPool),
}

impl Watcher {
    async fn open(backend: Backend, url: &str, target: Option<&str>, store: &str) -> Result<Self> {
        if let Some(target) = target {
            let mut client = RuntimeClient::connect(target.to_owned()).await?;
            let (tx, rx) = tokio::sync::mpsc::channel(4);
            tx.send(pb::SubscribeConfigurationRequest {
                store_name: store.to_owned(),
                app_id: APP.to_owned(),
                ..Default::default()
            })
            .await?;
            let stream =
                client.subscribe_configuration(tokio_stream::wrappers::ReceiverStream::new(rx)).await?;
            return Ok(Self::Runtime { pushes: stream.into_inner(), _requests: tx });
        }
        Ok(match backend {
            Backend::Etcd => {
                let settings = EtcdSettings { endpoints: Some(url.to_owned()), ..Default::default() };
                let etcd = Etcd::connect("bench", &settings).await?;
                Self::Etcd(etcd.watch_prefix(&format!("/{APP}/"), 0))
            }
            Backend::Redis => {
                let config = Config::from_url(url)?;
                let subscriber = Builder::from_config(config.clone()).build_subscriber_client()?;
                subscriber.init().await?;
                let events = subscriber.keyspace_event_rx();
                let _: () = subscriber.config_set("notify-keyspace-events", "Khg").await?;
                subscriber.psubscribe(format!("__keyspace@0__:configuration|||{APP}||*")).await?;
                let reader = Builder::from_config(config).build()?;
                reader.init().await?;
                Self::Redis { _subscriber: subscriber, events, reader }
            }
            Backend::Postgresql => {
                let pool = sqlx::PgPool::connect(url).await?;
                let mut listener = sqlx::postgres::PgListener::connect_with(&pool).await?;
                listener.listen(PG_TABLE).await?;
                Self::Postgres(listener, pool)
            }
        })
    }

    /// Waits until the change to `content` is seen (the baselines read the
    /// value back, as the runtime does for a notification).
    async fn seen(&mut self, key: &str, content: &str) -> Result<()> {
        loop {
            match self {
                Self::Runtime { pushes, .. } => {
                    let push = pushes.message().await?.context("the subscription ended")?;
                    if push.items.iter().any(|i| i.key == key && i.content == content) {
                        return Ok(());
                    }
                }
                Self::Etcd(events) => {
                    if let layotto_etcd::WatchEvent::Put(kv) =
                        events.recv().await.context("the watch ended")?
                        && kv.value == content.as_bytes()
                    {
                        return Ok(());
                    }
                }
                Self::Redis { events, reader, .. } => {
                    let event = events.recv().await?;
                    let hash = event.key.as_str().unwrap_or_default().to_owned();
                    let value: Option<String> = reader.hget(hash, key).await?;
                    if value.as_deref() == Some(content) {
                        return Ok(());
                    }
                }
                Self::Postgres(listener, pool) => {
                    listener.recv().await?;
                    let value: Option<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                        "SELECT content FROM {PG_TABLE} WHERE app_id = $1 AND key = $2"
                    )))
                    .bind(APP)
                    .bind(key)
                    .fetch_optional(&*pool)
                    .await?;
                    if value.is_some_and(|(v,)| v == content) {
                        return Ok(());
                    }
                }
            }
        }
    }
}

pub async fn run(
    backend: Backend,
    url: &str,
    target: Option<&str>,
    store: &str,
    changes: usize,
) -> Result<Report> {
    if changes == 0 {
        bail!("--changes must be at least 1");
    }
    let writer = Writer::connect(backend, url).await.context("connecting the writer")?;
    let mut watcher = Watcher::open(backend, url, target, store).await.context("opening the watch")?;
    // Until the first change is seen the watch may not be in place yet.
    let warm = tokio::time::timeout(Duration::from_secs(30), async {
        for n in 0.. {
            let content = format!("warmup-{n}");
            writer.write("warmup", &content).await?;
            if tokio::time::timeout(Duration::from_millis(500), watcher.seen("warmup", &content))
                .await
                .is_ok()
            {
                return Ok::<_, anyhow::Error>(());
            }
        }
        Ok(())
    });
    warm.await.context("no change was pushed within 30 s")??;
    let mut hist = histogram()?;
    let started = Instant::now();
    for n in 0..changes {
        let content = format!("v{n}");
        let begin = Instant::now();
        writer.write("k", &content).await?;
        tokio::time::timeout(Duration::from_secs(10), watcher.seen("k", &content))
            .await
            .with_context(|| format!("change {n} was not pushed within 10 s"))??;
        hist.saturating_record(begin.elapsed().as_nanos().max(1) as u64);
    }
    let secs = started.elapsed().as_secs_f64();
    Ok(Report {
        ops_per_sec: changes as f64 / secs,
        p50_us: hist.value_at_quantile(0.50) as f64 / 1000.0,
        p99_us: hist.value_at_quantile(0.99) as f64 / 1000.0,
        ops: hist.len(),
        errors: 0,
    })
}
