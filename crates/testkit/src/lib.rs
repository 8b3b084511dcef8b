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

/// The shared test Redis Cluster's nodes (`LAYOTTO_TEST_REDIS_CLUSTER`,
/// which `cargo xtask test` starts), comma-separated.
pub fn redis_cluster_hosts() -> String {
    std::env::var("LAYOTTO_TEST_REDIS_CLUSTER")
        .unwrap_or_else(|_| (7101..=7106).map(|p| format!("127.0.0.1:{p}")).collect::<Vec<_>>().join(","))
}

/// A private Redis Cluster of three masters with one replica each, six
/// `redis-server` processes on free ports with their files in a temporary
/// directory, killed when dropped.
pub struct PrivateRedisCluster {
    pub nodes: Vec<PrivateRedis>,
    _dir: tempfile::TempDir,
}

impl PrivateRedisCluster {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let nodes: Vec<PrivateRedis> = (0..6)
            .map(|i| {
                let conf = dir.path().join(format!("nodes-{i}.conf"));
                let bus = free_port().to_string();
                PrivateRedis::start_with(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    conf.to_str().unwrap(),
                    "--cluster-port",
                    &bus,
                    "--cluster-node-timeout",
                    "2000",
                    "--dir",
                    dir.path().to_str().unwrap(),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ])
            })
            .collect();
        let hosts: Vec<String> = nodes.iter().map(PrivateRedis::host).collect();
        let created = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&hosts)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdout(Stdio::null())
            .status()
            .expect("redis-cli must be installed for the Redis Cluster tests");
        assert!(created.success(), "redis-cli --cluster create failed");
        let cluster = Self { nodes, _dir: dir };
        cluster.wait_until_settled();
        cluster
    }

    /// Every node's address, comma-separated, as `redisHost` takes a cluster.
    pub fn hosts(&self) -> String {
        self.nodes.iter().map(PrivateRedis::host).collect::<Vec<_>>().join(",")
    }

    /// What `redis-cli` prints for `args` sent to the node on `port`.
    pub fn cli(port: u16, args: &[&str]) -> String {
        let out = Command::new("redis-cli").args(["-p", &port.to_string()]).args(args).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Ports of the nodes whose role is `master` or `slave`.
    pub fn ports_with_role(&self, role: &str) -> Vec<u16> {
        self.nodes
            .iter()
            .filter(|n| Self::cli(n.port, &["role"]).lines().next() == Some(role))
            .map(|n| n.port)
            .collect()
    }

    /// Waits until every node sees every slot served and each replica is in
    /// sync with its master.
    pub fn wait_until_settled(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ok = self.nodes.iter().all(|n| {
                let info = Self::cli(n.port, &["cluster", "info"]);
                let replication = Self::cli(n.port, &["info", "replication"]);
                info.contains("cluster_state:ok")
                    && (replication.contains("role:master") || replication.contains("master_link_status:up"))
            });
            if ok && self.ports_with_role("master").len() == 3 {
                return;
            }
            assert!(Instant::now() < deadline, "private Redis Cluster did not settle");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A manual failover (`CLUSTER FAILOVER` on a replica, which first
    /// catches up with its master): returns the port of the promoted node
    /// once it serves as master.
    pub fn failover(&self) -> u16 {
        let replica = self.ports_with_role("slave")[0];
        let answer = Self::cli(replica, &["cluster", "failover"]);
        assert!(answer.trim() == "OK", "CLUSTER FAILOVER answered {answer}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while Self::cli(replica, &["role"]).lines().next() != Some("master") {
            assert!(Instant::now() < deadline, "the replica on {replica} was not promoted");
            std::thread::sleep(Duration::from_millis(50));
        }
        self.wait_until_settled();
        replica
    }
}

/// A private etcd on free ports with its data in a temporary directory,
/// killed when dropped: tests kill and restart it to make an outage.
pub struct PrivateEtcd {
    pub port: u16,
    peer_port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// Serves TLS with these and asks clients for a certificate.
    tls: Option<TestCerts>,
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, made
/// with the `openssl` command in a temporary directory.
#[derive(Clone)]
pub struct TestCerts {
    pub ca: std::path::PathBuf,
    pub server_cert: std::path::PathBuf,
    pub server_key: std::path::PathBuf,
    pub client_cert: std::path::PathBuf,
    pub client_key: std::path::PathBuf,
    _dir: Arc<tempfile::TempDir>,
}

impl TestCerts {
    pub fn generate() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = |name: &str| dir.path().join(name);
        let openssl = |args: &[&str]| {
            let ok = Command::new("openssl")
                .args(args)
                .current_dir(dir.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("openssl must be installed for the TLS tests");
            assert!(ok.success(), "openssl {args:?} failed");
        };
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
        openssl(
            &[
                &["req", "-x509"][..],
                &ec,
                &["-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=layotto-test-ca"],
            ]
            .concat(),
        );
        std::fs::write(
            path("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        std::fs::write(path("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
        for who in ["server", "client"] {
            let (key, csr, pem, ext) =
                (format!("{who}.key"), format!("{who}.csr"), format!("{who}.pem"), format!("{who}.ext"));
            openssl(
                &[
                    &["req"][..],
                    &ec,
                    &["-keyout", &key, "-out", &csr, "-subj", &format!("/CN=layotto-test-{who}")],
                ]
                .concat(),
            );
            openssl(&[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &pem,
                "-days",
                "2",
                "-extfile",
                &ext,
            ]);
        }
        Self {
            ca: path("ca.pem"),
            server_cert: path("server.pem"),
            server_key: path("server.key"),
            client_cert: path("client.pem"),
            client_key: path("client.key"),
            _dir: Arc::new(dir),
        }
    }
}

impl PrivateEtcd {
    pub fn start() -> Self {
        let mut etcd = Self {
            port: free_port(),
            peer_port: free_port(),
            dir: tempfile::tempdir().unwrap(),
            child: None,
            tls: None,
        };
        etcd.restart();
        etcd
    }

    /// Serving TLS only, with client-certificate auth (`--client-cert-auth`).
    pub fn start_tls(certs: &TestCerts) -> Self {
        let mut etcd = Self {
            port: free_port(),
            peer_port: free_port(),
            dir: tempfile::tempdir().unwrap(),
            child: None,
            tls: Some(certs.clone()),
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
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let client = format!("{scheme}://127.0.0.1:{}", self.port);
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let mut command = Command::new("etcd");
        if let Some(certs) = &self.tls {
            command
                .arg("--cert-file")
                .arg(&certs.server_cert)
                .arg("--key-file")
                .arg(&certs.server_key)
                .arg("--trusted-ca-file")
                .arg(&certs.ca)
                .arg("--client-cert-auth");
        }
        let child = command
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
        // The port opens before etcd serves: wait for its health answer (over
        // TLS, the open port: a TLS client retries until etcd answers).
        let deadline = Instant::now() + Duration::from_secs(20);
        while !(if self.tls.is_some() {
            std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
        } else {
            answers(self.port, b"GET /health HTTP/1.0\r\n\r\n", "\"health\":\"true\"")
        }) {
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
