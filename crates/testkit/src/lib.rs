//! Test helpers: the conformance harness every API suite uses
//! ([`conformance`]), and for outage tests, which must never stop the shared
//! services, a private `redis-server` a test may kill and restart and a TCP
//! proxy in front of any shared server whose connections a test may cut.

#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod conformance;

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

/// A port the OS considers free now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A private Redis server on a free port, killed when dropped: the one
/// way tests start a Redis of their own.
pub struct PrivateRedis {
    pub port: u16,
    args: Vec<String>,
    child: Option<Child>,
    /// The data directory of a durable server, removed when dropped.
    _dir: Option<tempfile::TempDir>,
}

impl PrivateRedis {
    /// Keeps nothing on disk.
    pub fn start() -> Self {
        Self::start_with(&["--save", "", "--appendonly", "no"])
    }

    /// Fsyncs every write to an append-only file in a private directory,
    /// so what it acknowledged survives [`PrivateRedis::restart`].
    pub fn durable() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_str().unwrap().to_owned();
        let args = ["--save", "", "--appendonly", "yes", "--appendfsync", "always", "--dir", &path];
        let mut redis = Self::start_with(&args);
        redis._dir = Some(dir);
        redis
    }

    /// With extra `redis-server` arguments (e.g. an AOF with `appendfsync always`).
    pub fn start_with(args: &[&str]) -> Self {
        let mut redis = Self {
            port: free_port(),
            args: args.iter().map(|a| a.to_string()).collect(),
            child: None,
            _dir: None,
        };
        redis.restart();
        redis
    }

    /// `host:port`, as `redisHost` takes it.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts the server again (after [`PrivateRedis::kill`]) on the same port and data.
    pub fn restart(&mut self) {
        self.kill();
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(&self.args)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server must be installed for the outage tests");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "private redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's process id, e.g. to SIGSTOP it (a backend that hangs).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A private etcd on free ports with its data in a temporary directory,
/// killed when dropped: tests kill and restart it to make an outage.
pub struct PrivateEtcd {
    pub port: u16,
    peer_port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl PrivateEtcd {
    pub fn start() -> Self {
        let mut etcd = Self {
            port: free_port(),
            peer_port: free_port(),
            dir: tempfile::tempdir().unwrap(),
            child: None,
        };
        etcd.restart();
        etcd
    }

    /// `host:port`, as `endpoints` takes it.
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts the server again (after [`PrivateEtcd::kill`]) on the same port and data.
    pub fn restart(&mut self) {
        self.kill();
        let client = format!("http://127.0.0.1:{}", self.port);
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let child = Command::new("etcd")
            .args(["--name", "private", "--data-dir"])
            .arg(self.dir.path())
            .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("private={peer}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("etcd must be installed (Debian's etcd-server) for the etcd tests");
        self.child = Some(child);
        // The port opens before etcd serves: wait for its health answer.
        let deadline = Instant::now() + Duration::from_secs(20);
        while !answers(self.port, b"GET /health HTTP/1.0\r\n\r\n", "\"health\":\"true\"") {
            assert!(Instant::now() < deadline, "private etcd did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateEtcd {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether the server on `port` answers `request` with text containing `expect`.
fn answers(port: u16, request: &[u8], expect: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    if stream.write_all(request).is_err() {
        return false;
    }
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).contains(expect)
}

/// Where Debian's `zookeeper` package puts the server.
pub const ZOOKEEPER_CLASSPATH: &str = "/etc/zookeeper/conf:/usr/share/java/zookeeper.jar";

/// A private ZooKeeper on a free port with its data in a temporary directory,
/// killed when dropped: tests kill and restart it to make an outage.
pub struct PrivateZookeeper {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl PrivateZookeeper {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        // A short tick lets sessions be as short as 0.4 s.
        let config = format!(
            "tickTime=200\ndataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\n\
             admin.enableServer=false\nforceSync=no\nmaxClientCnxns=0\n",
            dir.path().join("data").display()
        );
        std::fs::write(dir.path().join("zoo.cfg"), config).unwrap();
        let mut zookeeper = Self { port, dir, child: None };
        zookeeper.restart();
        zookeeper
    }

    /// `host:port`, as `zookeeperHosts` takes it.
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts the server again (after [`PrivateZookeeper::kill`]) on the same port and data.
    pub fn restart(&mut self) {
        self.kill();
        let child = Command::new("java")
            .args(["-cp", ZOOKEEPER_CLASSPATH, "org.apache.zookeeper.server.quorum.QuorumPeerMain"])
            .arg(self.dir.path().join("zoo.cfg"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("java and Debian's zookeeper package must be installed for the ZooKeeper tests");
        self.child = Some(child);
        // The port opens before sessions are served: wait for its `srvr` answer.
        let deadline = Instant::now() + Duration::from_secs(30);
        while !answers(self.port, b"srvr", "Mode:") {
            assert!(Instant::now() < deadline, "private ZooKeeper did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateZookeeper {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A TCP proxy in front of a shared server: `set(false)` cuts every
/// connection and refuses new ones (an outage), `set(true)` ends it.
pub struct TcpProxy {
    pub port: u16,
    up: Arc<AtomicBool>,
    links: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl TcpProxy {
    /// Proxies to `upstream` (`host:port`); call inside a tokio runtime.
    pub async fn start(upstream: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let links: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (up2, links2, upstream) = (up.clone(), links.clone(), upstream.to_owned());
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else { return };
                if !up2.load(Ordering::SeqCst) {
                    continue; // dropped at once: the server is "down"
                }
                let upstream = upstream.clone();
                links2.lock().unwrap().push(tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                }));
            }
        });
        Self { port, up, links }
    }

    pub fn set(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
        if !up {
            for link in self.links.lock().unwrap().drain(..) {
                link.abort();
            }
        }
    }

    /// `url` with its `upstream` address replaced by this proxy's.
    pub fn via(&self, url: &str, upstream: &str) -> String {
        url.replacen(upstream, &format!("127.0.0.1:{}", self.port), 1)
    }
}

/// The `host:port` of a `scheme://user@host:port/…` URL.
pub fn upstream_of(url: &str, default: &str) -> String {
    url.split('@').nth(1).and_then(|rest| rest.split('/').next()).unwrap_or(default).to_owned()
}
