//! One Redis connection setup for every layotto-rs component that talks to
//! Redis (state, lock, sequencer, pub/sub), so they all accept Layotto's
//! metadata keys, reconnect the same way and report an outage the same way.
//!
//! Settings ([`RedisSettings`]): `redisHost` (`host:port` or a `redis://` URL,
//! default `localhost:6379`), `redisUsername`, `redisPassword`, `redisDB`
//! (alias `db`), `enableTLS`, `dialTimeout` and `timeout` (durations such as
//! `5s`), `maxRetryBackoff`, `poolSize`.
//!
//! Redis Cluster: `redisType: cluster` (Dapr's key), several comma-separated
//! nodes in `redisHost` or Layotto's `redisHosts`, or a `redis-cluster://`
//! URL. Any node will do; the client learns the rest, follows MOVED and ASK
//! redirections and re-reads the slot map after a failover.

use std::time::Duration;

use fred::prelude::{
    ClientLike, Config, Error as FredError, ErrorKind as FredKind, ReconnectPolicy, ServerConfig,
};
use layotto_core::{Error, ErrorKind, Health, Result, redact_url, settings};
use serde::Deserialize;

pub use fred;

/// Layotto's Redis metadata keys, shared by every Redis component.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RedisSettings {
    /// `host:port` or a `redis://` URL.
    #[serde(rename = "redisHost", alias = "host", default)]
    pub host: Option<String>,
    #[serde(rename = "redisUsername", default)]
    pub username: Option<String>,
    #[serde(rename = "redisPassword", default)]
    pub password: Option<String>,
    #[serde(rename = "redisDB", alias = "db", default)]
    pub db: Option<u8>,
    #[serde(rename = "enableTLS", default)]
    pub enable_tls: bool,
    #[serde(rename = "dialTimeout", default, deserialize_with = "settings::duration")]
    pub dial_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "settings::duration")]
    pub timeout: Option<Duration>,
    #[serde(rename = "maxRetryBackoff", default, deserialize_with = "settings::duration")]
    pub max_retry_backoff: Option<Duration>,
    #[serde(rename = "poolSize", default)]
    pub pool_size: Option<usize>,
    /// `node` (default) or `cluster`.
    #[serde(rename = "redisType", default)]
    pub redis_type: Option<String>,
    /// Nodes of a Redis Cluster, comma-separated (Layotto's key).
    #[serde(rename = "redisHosts", default)]
    pub hosts: Option<String>,
}

/// What to connect to, from the settings.
enum Topology {
    Node(String),
    Cluster(Vec<String>),
}

impl RedisSettings {
    fn topology(&self, component: &str) -> Result<Topology> {
        let split = |list: &str| -> Vec<String> {
            list.split(',').map(str::trim).filter(|h| !h.is_empty()).map(str::to_owned).collect()
        };
        let host = self.host.clone().filter(|h| !h.trim().is_empty());
        let mut nodes = split(host.as_deref().unwrap_or_default());
        if let Some(hosts) = &self.hosts {
            nodes.extend(split(hosts));
        }
        let kind = self.redis_type.as_deref().map(str::trim).unwrap_or_default().to_ascii_lowercase();
        let several = nodes.len() > 1;
        match kind.as_str() {
            "" if several || self.hosts.is_some() => Ok(Topology::Cluster(nodes)),
            "" => Ok(Topology::Node(nodes.pop().unwrap_or_else(|| "localhost:6379".into()))),
            "node" if several => Err(Error::config(format!(
                "{component}: metadata 'redisType' is 'node' but {} nodes are given: \
                 set 'redisType' to 'cluster' or give one 'redisHost'",
                nodes.len()
            ))),
            "node" => Ok(Topology::Node(nodes.pop().unwrap_or_else(|| "localhost:6379".into()))),
            "cluster" if nodes.is_empty() => Err(Error::config(format!(
                "{component}: metadata 'redisType' is 'cluster' but no node is given in 'redisHost' or 'redisHosts'"
            ))),
            // fred reads every node from a redis-cluster:// URL itself.
            "cluster" if !several && nodes[0].starts_with("redis-cluster://") => {
                Ok(Topology::Node(nodes.remove(0)))
            }
            "cluster" => Ok(Topology::Cluster(nodes)),
            other => Err(Error::config(format!(
                "{component}: metadata 'redisType' must be 'node' or 'cluster', not '{other}'"
            ))),
        }
    }
}

/// `host:port` (port 6379 when absent) as fred takes it.
fn host_port(component: &str, key: &str, host: &str) -> Result<(String, u16)> {
    match host.rsplit_once(':') {
        Some((h, p)) => {
            let port = p.parse::<u16>().map_err(|_| {
                Error::config(format!("{component}: metadata '{key}' has an invalid port: '{host}'"))
            })?;
            if h.is_empty() {
                return Err(Error::config(format!("{component}: metadata '{key}' has no host: '{host}'")));
            }
            Ok((h.to_owned(), port))
        }
        None => Ok((host.to_owned(), 6379)),
    }
}

/// A pool of connections that reconnects forever and fails fast while down.
pub struct RedisConn {
    /// How messages name the component, e.g. "lock store 'x' (redis)".
    component: String,
    /// The address without credentials.
    host: String,
    pool: fred::prelude::Pool,
    /// How the pool was built, for a subscriber client with the same settings.
    builder: fred::types::Builder,
    cluster: bool,
}

impl RedisConn {
    /// Connects with Layotto's settings. `default_pool` is the pool size
    /// when `poolSize` is absent.
    pub async fn connect(component: &str, redis: &RedisSettings, default_pool: usize) -> Result<Self> {
        let (host, mut config) = match redis.topology(component)? {
            Topology::Node(host) if host.contains("://") => {
                let config = Config::from_url(&host).map_err(|_| {
                    Error::config(format!(
                        "{component}: metadata 'redisHost' is not a valid Redis URL: {}",
                        redact_url(&host)
                    ))
                })?;
                (host, config)
            }
            Topology::Node(host) => {
                let (h, port) = host_port(component, "redisHost", &host)?;
                (host, Config { server: ServerConfig::new_centralized(h, port), ..Default::default() })
            }
            Topology::Cluster(nodes) => {
                let key = if redis.hosts.is_some() { "redisHosts" } else { "redisHost" };
                let mut hosts = Vec::with_capacity(nodes.len());
                for node in &nodes {
                    if node.contains("://") {
                        return Err(Error::config(format!(
                            "{component}: metadata '{key}' lists cluster nodes as host:port, not URLs: '{}'",
                            redact_url(node)
                        )));
                    }
                    hosts.push(host_port(component, key, node)?);
                }
                if redis.db.is_some_and(|db| db != 0) {
                    return Err(Error::config(format!(
                        "{component}: metadata 'redisDB' must be 0 in Redis Cluster, which has one database"
                    )));
                }
                (nodes.join(","), Config { server: ServerConfig::new_clustered(hosts), ..Default::default() })
            }
        };
        if let Some(user) = redis.username.clone().filter(|u| !u.is_empty()) {
            config.username = Some(user);
        }
        if let Some(password) = redis.password.clone().filter(|p| !p.is_empty()) {
            config.password = Some(password);
        }
        if let Some(db) = redis.db.filter(|_| !config.server.is_clustered()) {
            config.database = Some(db);
        }
        if redis.enable_tls {
            let connector = fred::types::config::TlsConnector::default_rustls()
                .map_err(|e| Error::config(format!("{component}: cannot set up TLS: {e}")))?;
            config.tls = Some(connector.into());
        }
        let cluster = config.server.is_clustered();
        config.fail_fast = true;
        let dial_timeout = redis.dial_timeout.unwrap_or(Duration::from_secs(5));
        let command_timeout = redis.timeout.unwrap_or(Duration::from_secs(5));
        // Short, so calls work again soon after Redis is back (go-redis uses 512 ms too).
        let max_backoff = redis.max_retry_backoff.unwrap_or(Duration::from_millis(500));
        let pool_size = redis.pool_size.unwrap_or(default_pool).clamp(1, 256);

        let mut builder = fred::types::Builder::from_config(config);
        builder
            .with_connection_config(|c| {
                c.tcp = fred::types::config::TcpConfig { nodelay: Some(true), ..Default::default() };
                c.connection_timeout = dial_timeout;
                c.internal_command_timeout = dial_timeout;
                // A command in flight when the connection drops fails instead of
                // being replayed later, so a caller never gets a late surprise write.
                c.max_command_attempts = 1;
            })
            .with_performance_config(|p| p.default_command_timeout = command_timeout)
            // Reconnect forever: the component comes back by itself when Redis does.
            .set_policy(ReconnectPolicy::new_exponential(0, 50, max_backoff.as_millis() as u32, 2));
        let pool = builder.build_pool(pool_size).map_err(|e| Error::config(format!("{component}: {e}")))?;
        pool.init().await.map_err(|e| {
            Error::unavailable(format!("{component}: cannot connect to Redis at {}: {e}", redact_url(&host)))
        })?;
        Ok(Self { component: component.to_owned(), host: redact_url(&host), pool, builder, cluster })
    }

    /// A client for SUBSCRIBE / PSUBSCRIBE with the pool's settings; it
    /// reconnects forever and subscribes again to what it had.
    pub async fn subscriber(&self) -> Result<fred::clients::SubscriberClient> {
        let client = self
            .builder
            .build_subscriber_client()
            .map_err(|e| Error::config(format!("{}: {e}", self.component)))?;
        client.init().await.map_err(|e| self.error("connecting a subscriber", e))?;
        client.manage_subscriptions();
        Ok(client)
    }

    /// Whether this is a Redis Cluster, where a script or a transaction may
    /// only touch keys of one hash slot.
    pub fn is_cluster(&self) -> bool {
        self.cluster
    }

    /// The address, without credentials.
    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn pool(&self) -> &fred::prelude::Pool {
        &self.pool
    }

    /// A connected member of the pool, or UNAVAILABLE at once when none is:
    /// calls fail fast during an outage instead of queueing.
    pub fn client(&self) -> Result<&fred::prelude::Client> {
        let client = self.pool.next_connected();
        if client.is_connected() {
            Ok(client)
        } else {
            Err(Error::unavailable(format!("{}: not connected to Redis at {}", self.component, self.host)))
        }
    }

    /// A Redis error as one of ours; `what` names the key or field at fault.
    pub fn error(&self, what: &str, e: FredError) -> Error {
        Error::new(error_kind(&e), format!("{}: {what}: {e}", self.component))
    }

    pub async fn health(&self) -> Health {
        let client = match self.client() {
            Ok(client) => client,
            Err(_) => return Health::down(format!("not connected to Redis at {}", self.host)),
        };
        match tokio::time::timeout(Duration::from_secs(2), client.ping::<String>(None)).await {
            Ok(Ok(_)) => Health::up(),
            Ok(Err(e)) => Health::down(format!("PING to Redis at {} failed: {e}", self.host)),
            Err(_) => Health::down(format!("PING to Redis at {} timed out", self.host)),
        }
    }
}

/// Connection trouble is UNAVAILABLE (retry later); anything else is internal.
pub fn error_kind(e: &FredError) -> ErrorKind {
    match e.kind() {
        FredKind::IO
        | FredKind::Canceled
        | FredKind::Timeout
        | FredKind::Backpressure
        | FredKind::Routing => ErrorKind::Unavailable,
        // fred's answer to a command sent just as the connection dropped.
        FredKind::Unknown if e.details().starts_with("Failed to route command") => ErrorKind::Unavailable,
        _ => ErrorKind::Internal,
    }
}

/// The reply of `redis.error_reply` in a script; Redis 7 puts `ERR ` before it.
pub fn script_error(e: &FredError) -> &str {
    e.details().trim_start_matches("ERR ")
}

#[cfg(test)]
mod tests {
    use super::error_kind;
    use fred::prelude::{Error as FredError, ErrorKind as FredKind};
    use layotto_core::ErrorKind;

    #[test]
    fn connection_trouble_is_unavailable() {
        let routed = FredError::new(FredKind::Unknown, "Failed to route command.");
        assert_eq!(error_kind(&routed), ErrorKind::Unavailable);
        assert_eq!(error_kind(&FredError::new(FredKind::Routing, "x")), ErrorKind::Unavailable);
        assert_eq!(error_kind(&FredError::new(FredKind::IO, "reset")), ErrorKind::Unavailable);
        assert_eq!(error_kind(&FredError::new(FredKind::Unknown, "WRONGTYPE")), ErrorKind::Internal);
    }
}
