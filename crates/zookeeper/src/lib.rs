//! What every ZooKeeper component shares: Layotto's metadata keys
//! ([`ZookeeperSettings`]), sessions to the ensemble, node paths for stored
//! keys, and ZooKeeper's errors as our error kinds (connection trouble is
//! `Unavailable`, refused credentials `Unauthenticated`), each message naming
//! the component and the hosts.

use std::time::Duration;

use layotto_core::{Error, ErrorKind, Health, Result, settings};
use serde::Deserialize;

pub use zookeeper_client as zk;

/// Layotto's ZooKeeper metadata keys.
#[derive(Debug, Default, Deserialize)]
pub struct ZookeeperSettings {
    /// `host:port` list separated by `;` (Layotto) or `,`.
    #[serde(rename = "zookeeperHosts", default)]
    pub hosts: Option<String>,
    /// Added to every session as `digest` auth when set.
    #[serde(rename = "zookeeperPassword", default)]
    pub password: Option<String>,
    /// Seconds, default 5. Layotto's code reads `SessionTimeout`, its configs write `sessionTimeout`.
    #[serde(
        rename = "sessionTimeout",
        alias = "SessionTimeout",
        default,
        deserialize_with = "settings::seconds"
    )]
    pub session_timeout: Option<Duration>,
    /// Layotto's log switch; accepted, logging follows `LAYOTTO_LOG`.
    #[serde(rename = "logInfo", alias = "LogInfo", default)]
    pub log_info: Option<String>,
}

/// How to reach one ensemble, for one component.
#[derive(Clone)]
pub struct Zookeeper {
    component: String,
    /// The connect string: `host:port,host:port`.
    hosts: String,
    session_timeout: Duration,
    auth: Option<Vec<u8>>,
}

impl Zookeeper {
    /// Checks the settings; connects nothing yet.
    pub fn new(component: &str, settings: &ZookeeperSettings) -> Result<Self> {
        let bad = |what: String| Error::config(format!("{component}: metadata 'zookeeperHosts' {what}"));
        let raw = settings.hosts.as_deref().map(str::trim).filter(|h| !h.is_empty());
        let raw = raw.ok_or_else(|| bad("is required (host:port, ';'-separated)".to_owned()))?;
        let mut hosts = Vec::new();
        for host in raw.split([';', ',']).map(str::trim).filter(|h| !h.is_empty()) {
            let valid = host.rsplit_once(':').is_some_and(|(name, port)| {
                !name.is_empty() && !name.contains('/') && port.parse::<u16>().is_ok()
            });
            if !valid {
                return Err(bad(format!("has an invalid address '{host}' (want host:port)")));
            }
            hosts.push(host);
        }
        if hosts.is_empty() {
            return Err(bad("names no host".to_owned()));
        }
        Ok(Self {
            component: component.to_owned(),
            hosts: hosts.join(","),
            session_timeout: settings.session_timeout.unwrap_or(Duration::from_secs(5)),
            auth: settings.password.as_deref().filter(|p| !p.is_empty()).map(|p| p.as_bytes().to_vec()),
        })
    }

    pub fn component(&self) -> &str {
        &self.component
    }

    pub fn hosts(&self) -> &str {
        &self.hosts
    }

    pub fn session_timeout(&self) -> Duration {
        self.session_timeout
    }

    /// A new session asking for `timeout` (the server clamps it to its own
    /// bounds); fails `Unavailable` naming the hosts when none answers in time.
    pub async fn session(&self, timeout: Duration) -> Result<zk::Client> {
        let mut connector = zk::Client::connector()
            .with_session_timeout(timeout.max(Duration::from_millis(100)))
            .with_connection_timeout(self.session_timeout.min(Duration::from_secs(2)))
            .with_fail_eagerly();
        if let Some(auth) = &self.auth {
            connector = connector.with_auth("digest", auth);
        }
        let wait = self.session_timeout.max(Duration::from_secs(1));
        match tokio::time::timeout(wait, connector.connect(&self.hosts)).await {
            Ok(Ok(client)) => Ok(client),
            Ok(Err(e)) => Err(self.error("connecting", e)),
            Err(_) => Err(Error::unavailable(format!(
                "{}: cannot connect to ZooKeeper at {}: no session within {wait:?}",
                self.component, self.hosts
            ))),
        }
    }

    /// A ZooKeeper error as ours, naming the component, the hosts and what was done.
    pub fn error(&self, what: &str, e: zk::Error) -> Error {
        let kind = match e {
            zk::Error::NoHosts
            | zk::Error::Timeout
            | zk::Error::ConnectionLoss
            | zk::Error::SessionExpired
            | zk::Error::SessionMoved
            | zk::Error::ClientClosed
            | zk::Error::Throttled
            | zk::Error::NotReadOnly => ErrorKind::Unavailable,
            zk::Error::AuthFailed => ErrorKind::Unauthenticated,
            zk::Error::NoAuth => ErrorKind::PermissionDenied,
            zk::Error::BadArguments(_) => ErrorKind::InvalidArgument,
            _ => ErrorKind::Internal,
        };
        Error::new(kind, format!("{}: ZooKeeper at {}: {what}: {e}", self.component, self.hosts))
    }

    /// Whether a session can be opened and the root read within two seconds.
    pub async fn health(&self, client: Option<&zk::Client>) -> Health {
        let probe = async {
            match client {
                Some(client) => {
                    client.check_stat("/").await.map(drop).map_err(|e| self.error("reading /", e))
                }
                None => self.session(Duration::from_secs(2)).await.map(drop),
            }
        };
        match tokio::time::timeout(Duration::from_secs(2), probe).await {
            Ok(Ok(())) => Health::up(),
            Ok(Err(e)) => Health::down(e.to_string()),
            Err(_) => Health::down(format!("ZooKeeper at {} did not answer within 2s", self.hosts)),
        }
    }
}

/// Long-lived sessions of a component, used in turn (ZooKeeper answers one
/// session's requests one after another, so one session caps throughput),
/// each opened again when the server ended it (after an outage longer than
/// the session timeout).
pub struct SharedSession {
    zk: Zookeeper,
    clients: Vec<tokio::sync::Mutex<Option<zk::Client>>>,
    next: std::sync::atomic::AtomicUsize,
}

impl SharedSession {
    /// Opens `sessions` sessions now, so a wrong address fails startup.
    /// ZooKeeper orders reads after writes only within one session, so a
    /// component that reads what it wrote takes one; writes alone may spread.
    pub async fn open(zk: Zookeeper, sessions: usize) -> Result<Self> {
        let mut clients = Vec::with_capacity(sessions.max(1));
        for _ in 0..sessions.max(1) {
            clients.push(tokio::sync::Mutex::new(Some(zk.session(zk.session_timeout()).await?)));
        }
        Ok(Self { zk, clients, next: std::sync::atomic::AtomicUsize::new(0) })
    }

    pub fn zookeeper(&self) -> &Zookeeper {
        &self.zk
    }

    /// The next session, opened again if it has ended.
    pub async fn get(&self) -> Result<zk::Client> {
        let turn = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % self.clients.len().max(1);
        let Some(slot) = self.clients.get(turn) else {
            return self.zk.session(self.zk.session_timeout()).await;
        };
        let mut client = slot.lock().await;
        if let Some(current) = client.as_ref()
            && !current.state().is_terminated()
        {
            return Ok(current.clone());
        }
        let fresh = self.zk.session(self.zk.session_timeout()).await?;
        *client = Some(fresh.clone());
        Ok(fresh)
    }

    pub async fn health(&self) -> Health {
        match self.get().await {
            Ok(client) => self.zk.health(Some(&client)).await,
            Err(e) => Health::down(e.to_string()),
        }
    }
}

/// The node of a stored key: `/<key>` as Go Layotto makes it, with what a
/// node name cannot hold percent-encoded (`%`, `/`, control characters, and
/// characters ZooKeeper refuses such as those outside the BMP), so any key is
/// one node; a key without them is the very node Go Layotto uses.
pub fn node_path(key: &str) -> String {
    let mut path = String::with_capacity(key.len() + 1);
    path.push('/');
    if key == "." || key == ".." {
        key.bytes().for_each(|b| path.push_str(&format!("%{b:02X}")));
        return path;
    }
    for c in key.chars() {
        let refused = matches!(c, '%' | '/' | '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' | '\u{e000}'..='\u{f8ff}')
            || u32::from(c) >= 0xfff0;
        if refused {
            let mut bytes = [0; 4];
            for b in c.encode_utf8(&mut bytes).bytes() {
                path.push_str(&format!("%{b:02X}"));
            }
        } else {
            path.push(c);
        }
    }
    path
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn paths_escape_only_what_zookeeper_cannot_hold() {
        assert_eq!(node_path("lock|||app||order"), "/lock|||app||order");
        assert_eq!(node_path("a/b%c"), "/a%2Fb%25c");
        assert_eq!(node_path("ключ-🔑"), "/ключ-%F0%9F%94%91");
        assert_eq!(node_path(".."), "/%2E%2E");
    }

    #[test]
    fn hosts_are_checked_and_joined() {
        let settings = |h: &str| ZookeeperSettings { hosts: Some(h.into()), ..Default::default() };
        let zk = Zookeeper::new("c", &settings("127.0.0.1:2181;10.0.0.2:2181")).unwrap();
        assert_eq!(zk.hosts(), "127.0.0.1:2181,10.0.0.2:2181");
        for bad in ["", "localhost", "h:port", ":2181", "a:1/chroot"] {
            let err = Zookeeper::new("c", &settings(bad)).err().unwrap();
            assert!(err.to_string().contains("zookeeperHosts"), "{bad}: {err}");
        }
    }
}
