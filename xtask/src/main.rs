//! Project automation: `cargo xtask test | ci | bench`.
//!
//! `test` is what README.md and `.ci/run` call: it makes sure the services the
//! tests need are up (Redis, RabbitMQ, PostgreSQL, MariaDB: started when down,
//! installed when missing), then runs
//! formatting, clippy and every test suite. Nothing is skipped silently.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod bench;

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

const REDIS_ADDR: &str = "127.0.0.1:6379";
const RABBITMQ_ADDR: &str = "127.0.0.1:5672";
const POSTGRES_ADDR: &str = "127.0.0.1:5432";
const MARIADB_ADDR: &str = "127.0.0.1:3306";
const ETCD_ADDR: &str = "127.0.0.1:2379";
const ZOOKEEPER_ADDR: &str = "127.0.0.1:2181";
/// The test Redis Cluster: three masters and three replicas on these ports.
const REDIS_CLUSTER_PORTS: [u16; 6] = [7101, 7102, 7103, 7104, 7105, 7106];
/// The S3-compatible server of the object-storage suites (s3s-fs).
pub(crate) const S3_ADDR: &str = "127.0.0.1:9000";
pub(crate) const S3_ACCESS_KEY: &str = "layotto";
pub(crate) const S3_SECRET_KEY: &str = "layotto-secret";
const S3S_FS_VERSION: &str = "0.14.1";
/// Pinned so a clean machine installs what CI ran.
const CARGO_FUZZ_VERSION: &str = "0.13.2";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("test") => test(),
        Some("ci") => ci(),
        Some("ci-extra") => ci_extra(),
        Some("bench") => bench::run(&args[1..]),
        Some("fuzz") => fuzz(&args[1..]),
        Some("services") => ensure_services(),
        _ => {
            eprintln!("usage: cargo xtask <test|ci|bench|services>");
            eprintln!("  test      start what tests need, then fmt, clippy and every test suite");
            eprintln!("  ci        test, plus the slim build without optional features and cargo-deny");
            eprintln!("  ci-extra  only the checks ci adds to test");
            eprintln!("  bench     release build, load generator and same-run baselines (see crates/bench)");
            eprintln!(
                "  fuzz      [--seconds N] [TARGET…]: every fuzz target (fuzz/) for N seconds (default 60)"
            );
            eprintln!("  services  only make sure the backends of the suites are installed and running");
            std::process::exit(2)
        }
    }
}

fn test() -> Result<()> {
    ensure_services()?;
    let python = ensure_python()?;
    let dapr_python = ensure_dapr_python()?;
    cargo(&["fmt", "--all", "--", "--check"]).context("cargo fmt --check failed: run `cargo fmt --all`")?;
    cargo(&["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"])?;
    // Doc tests first, so the suite summary is the last thing printed.
    cargo(&["test", "--workspace", "--doc"])?;
    let redis_url = format!("redis://{REDIS_ADDR}");
    // Conformance cases skipped for a missing capability are listed after the run.
    let skip_log = std::env::current_dir()?.join("target").join("conformance-skipped.txt");
    let _ = std::fs::remove_file(&skip_log);
    // The demo suite runs the example programs, which no test target builds.
    cargo(&["build", "-p", "layotto-examples"])?;
    let runner: &[&str] = if which("cargo-nextest") {
        &["nextest", "run", "--workspace", "--no-fail-fast"]
    } else {
        println!("xtask: cargo-nextest not found, using cargo test");
        &["test", "--workspace", "--no-fail-fast"]
    };
    run(Command::new("cargo")
        .args(runner)
        .env("LAYOTTO_TEST_REDIS", &redis_url)
        .env("LAYOTTO_TEST_RABBITMQ", format!("amqp://guest:guest@{RABBITMQ_ADDR}/%2f"))
        .env("LAYOTTO_TEST_POSTGRES", format!("postgres://postgres@{POSTGRES_ADDR}/test"))
        .env("LAYOTTO_TEST_MYSQL", format!("mysql://root@{MARIADB_ADDR}/test"))
        .env("LAYOTTO_TEST_ETCD", ETCD_ADDR)
        .env("LAYOTTO_TEST_ZOOKEEPER", ZOOKEEPER_ADDR)
        .env("LAYOTTO_TEST_REDIS_CLUSTER", redis_cluster_hosts())
        .env("LAYOTTO_TEST_S3", format!("http://{S3_ADDR}"))
        .env("LAYOTTO_TEST_PYTHON", &python)
        .env("LAYOTTO_TEST_DAPR_PYTHON", &dapr_python)
        .env("LAYOTTO_TEST_PROMETHEUS", "/usr/bin/prometheus")
        .env("LAYOTTO_SKIP_LOG", &skip_log))?;
    // The harness's own self-test skips on purpose; it is not a component.
    let mut skipped: Vec<String> = std::fs::read_to_string(&skip_log)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.starts_with("SKIPPED: layotto-testkit "))
        .map(str::to_owned)
        .collect();
    skipped.sort();
    fuzz(&[])?;
    println!("xtask: {} conformance cases skipped because a component lacks a capability:", skipped.len());
    for line in skipped {
        println!("xtask:   {line}");
    }
    Ok(())
}

/// The fuzz targets in fuzz/fuzz_targets, each run for a bounded time from
/// its committed corpus (fuzz/corpus/TARGET). What a run finds goes to
/// target/fuzz-corpus/TARGET; `--merge` adds the inputs that reach new code
/// to the committed corpus. A crash fails the run, its input saved under
/// fuzz/artifacts/TARGET.
fn fuzz(args: &[String]) -> Result<()> {
    let mut seconds = 60u64;
    let mut merge = false;
    let mut only = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => {
                seconds = args.next().context("--seconds needs a number")?.parse().context("--seconds")?
            }
            "--merge" => merge = true,
            target => only.push(target.to_owned()),
        }
    }
    if !which("cargo-fuzz") {
        println!("xtask: cargo-fuzz not found, installing it");
        cargo(&["install", "cargo-fuzz", "--locked", "--version", CARGO_FUZZ_VERSION])?;
    }
    let mut targets: Vec<String> = std::fs::read_dir("fuzz/fuzz_targets")
        .context("reading fuzz/fuzz_targets")?
        .filter_map(|e| e.ok()?.path().file_stem()?.to_str().map(str::to_owned))
        .filter(|t| only.is_empty() || only.contains(t))
        .collect();
    targets.sort();
    let fuzz_run = |target: &str, dirs: &[&str], flags: &[String]| {
        // No sanitizer: safe Rust needs none, and `none` builds on the stable
        // toolchain (RUSTC_BOOTSTRAP lets cargo-fuzz pass its few -Z flags).
        run(Command::new("cargo")
            .args(["fuzz", "run", "--sanitizer", "none", target])
            .args(dirs)
            .arg("--")
            .args(flags)
            .env("RUSTC_BOOTSTRAP", "1"))
    };
    for target in &targets {
        let committed = format!("fuzz/corpus/{target}");
        let found = format!("target/fuzz-corpus/{target}");
        std::fs::create_dir_all(&committed)?;
        std::fs::create_dir_all(&found)?;
        let flags = [
            format!("-max_total_time={seconds}"),
            "-timeout=20".to_owned(),
            "-rss_limit_mb=4096".to_owned(),
            "-print_final_stats=1".to_owned(),
        ];
        // libFuzzer writes new inputs to the first directory only.
        fuzz_run(target, &[&found, &committed], &flags)
            .with_context(|| format!("fuzz target {target} crashed: see fuzz/artifacts/{target}"))?;
        if merge {
            // Edges only: counters and value profiles would keep thousands of near-copies.
            let flags = ["-merge=1", "-use_counters=0", "-use_value_profile=0"].map(str::to_owned);
            fuzz_run(target, &[&committed, &found], &flags)?;
        }
    }
    println!("xtask: fuzzed {} targets for {seconds} s each without a crash", targets.len());
    Ok(())
}

fn ci() -> Result<()> {
    test()?;
    ci_extra()
}

/// What CI checks beyond `test`.
fn ci_extra() -> Result<()> {
    // A slim runtime: no optional component at all; then each optional
    // component alone, so no feature relies on another being on (type
    // checking is enough for that, and far quicker on two cores).
    cargo(&["build", "-p", "layotto", "--no-default-features"])?;
    for feature in binary_features()? {
        cargo(&["check", "-p", "layotto", "--no-default-features", "--features", &feature])?;
    }
    if which("cargo-deny") {
        // cargo-deny reads the metadata of every locked crate, other platforms' too.
        cargo(&["fetch", "--locked"])?;
        cargo(&["deny", "--offline", "check", "bans", "licenses", "sources"])?;
    } else {
        println!(
            "xtask: NOTE cargo-deny is not installed, so deny.toml was not checked (cargo install cargo-deny)"
        );
    }
    Ok(())
}

/// The optional features of the `layotto` binary, from its Cargo.toml.
fn binary_features() -> Result<Vec<String>> {
    let manifest =
        std::fs::read_to_string("bins/layotto/Cargo.toml").context("reading bins/layotto/Cargo.toml")?;
    let section = manifest.split("[features]").nth(1).context("bins/layotto/Cargo.toml has no [features]")?;
    let section = section.split("\n[").next().unwrap_or_default();
    Ok(section
        .lines()
        .filter_map(|line| line.split_once('=').map(|(name, _)| name.trim().to_owned()))
        .filter(|name| {
            !name.is_empty() && name != "default" && !name.starts_with('#') && !name.starts_with('"')
        })
        .collect())
}

/// A backend the suites use, how to tell it is up, and how to start it with
/// the command this machine kind uses (never stopped by us).
struct Service {
    name: &'static str,
    addr: &'static str,
    /// The program that must exist for `start`, with the Debian package that has it.
    program: &'static str,
    package: &'static str,
    start: &'static str,
}

const SERVICES: &[Service] = &[
    Service {
        name: "Redis",
        addr: REDIS_ADDR,
        program: "redis-server",
        package: "redis-server",
        start: "mkdir -p /var/lib/redis /var/log/redis && redis-server --daemonize yes --bind 127.0.0.1 -::1 \
                --port 6379 --save '' --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log",
    },
    Service {
        name: "RabbitMQ",
        addr: RABBITMQ_ADDR,
        program: "rabbitmq-server",
        package: "rabbitmq-server",
        start: "rabbitmq-server -detached",
    },
    Service {
        name: "PostgreSQL",
        addr: POSTGRES_ADDR,
        program: "pg_ctlcluster",
        package: "postgresql",
        start: "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    },
    Service {
        name: "etcd",
        addr: ETCD_ADDR,
        program: "etcd",
        package: "etcd-server",
        // Its data in a temporary directory of its own; never another etcd's.
        start: "dir=$(mktemp -d /tmp/layotto-etcd.XXXXXX) && \
                nohup etcd --name layotto-test --data-dir \"$dir\" \
                --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
                --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
                --initial-cluster layotto-test=http://127.0.0.1:2380 > \"$dir.log\" 2>&1 &",
    },
    Service {
        name: "MariaDB",
        addr: MARIADB_ADDR,
        program: "mariadbd",
        package: "mariadb-server",
        start: "start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd",
    },
];

/// Every backend of the suites up on loopback (started if down, installed
/// if missing), and `redis-server` on PATH for the outage tests, which
/// start private servers on other ports.
fn ensure_services() -> Result<()> {
    for service in SERVICES {
        if !which(service.program) && !std::path::Path::new("/usr/sbin").join(service.program).is_file() {
            println!("xtask: {} not found, installing {} with apt-get", service.program, service.package);
            apt_install(service.package)?;
        }
        if answers(service.addr) {
            println!("xtask: {} is up on {}", service.name, service.addr);
            continue;
        }
        println!("xtask: starting {} on {}", service.name, service.addr);
        run(Command::new("sh").args(["-c", service.start]))?;
        // RabbitMQ takes a few seconds to boot.
        let deadline = Instant::now() + Duration::from_secs(60);
        while !answers(service.addr) {
            if Instant::now() > deadline {
                bail!("{} did not come up on {}", service.name, service.addr);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    if !redis_answers() {
        bail!("something answers on {REDIS_ADDR} but it is not Redis");
    }
    // Tools the tests drive: the configuration tests change keys the way another
    // process would, the metrics test scrapes the runtime with a real Prometheus.
    for (program, package) in [
        ("etcdctl", "etcd-client"),
        ("redis-cli", "redis-tools"),
        ("psql", "postgresql-client"),
        ("prometheus", "prometheus"),
        // The WebAssembly functions of examples/faas are C, built by the tests.
        ("clang", "clang"),
        ("wasm-ld", "lld"),
    ] {
        if !which(program) {
            println!("xtask: {program} not found, installing {package} with apt-get");
            apt_install(package)?;
        }
    }
    ensure_s3()?;
    ensure_java()?;
    ensure_zookeeper()?;
    ensure_redis_cluster()?;
    prepare_databases()
}

pub(crate) fn redis_cluster_hosts() -> String {
    REDIS_CLUSTER_PORTS.map(|p| format!("127.0.0.1:{p}")).join(",")
}

fn redis_cluster_ok() -> bool {
    REDIS_CLUSTER_PORTS.iter().all(|port| {
        Command::new("redis-cli")
            .args(["-p", &port.to_string(), "cluster", "info"])
            .output()
            .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains("cluster_state:ok"))
    })
}

/// A Redis Cluster of six daemonized redis-servers (private files in a
/// temporary directory), created with `redis-cli --cluster create`.
fn ensure_redis_cluster() -> Result<()> {
    let hosts = redis_cluster_hosts();
    if redis_cluster_ok() {
        println!("xtask: Redis Cluster is up on {hosts}");
        return Ok(());
    }
    if REDIS_CLUSTER_PORTS.iter().any(|p| answers(&format!("127.0.0.1:{p}"))) {
        bail!("something answers on the Redis Cluster ports {hosts} but it is not a healthy cluster");
    }
    println!("xtask: starting a Redis Cluster on {hosts}");
    let dir = std::env::temp_dir().join(format!("layotto-redis-cluster.{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    for port in REDIS_CLUSTER_PORTS {
        run(Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--daemonize", "yes"])
            .args(["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"])
            .arg("--cluster-config-file")
            .arg(dir.join(format!("nodes-{port}.conf")))
            .arg("--dir")
            .arg(&dir)
            .arg("--logfile")
            .arg(dir.join(format!("{port}.log")))
            .args(["--save", "", "--appendonly", "no"]))?;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while !REDIS_CLUSTER_PORTS.iter().all(|p| answers(&format!("127.0.0.1:{p}"))) {
        if Instant::now() > deadline {
            bail!("the Redis Cluster nodes did not start on {hosts}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    run(Command::new("redis-cli")
        .args(["--cluster", "create"])
        .args(hosts.split(','))
        .args(["--cluster-replicas", "1", "--cluster-yes"])
        .stdout(std::process::Stdio::null()))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !redis_cluster_ok() {
        if Instant::now() > deadline {
            bail!("the Redis Cluster on {hosts} did not reach cluster_state:ok");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// ZooKeeper from Debian's `zookeeper` package (it runs on the JDK that
/// `ensure_java` installs), started on loopback with its data in a temporary directory.
fn ensure_zookeeper() -> Result<()> {
    if answers(ZOOKEEPER_ADDR) {
        println!("xtask: ZooKeeper is up on {ZOOKEEPER_ADDR}");
        return Ok(());
    }
    if !std::path::Path::new("/usr/share/java/zookeeper.jar").is_file() {
        println!("xtask: ZooKeeper not found, installing zookeeper with apt-get");
        apt_install("zookeeper")?;
    }
    println!("xtask: starting ZooKeeper on {ZOOKEEPER_ADDR}");
    let (host, port) = ZOOKEEPER_ADDR.split_once(':').context("ZOOKEEPER_ADDR")?;
    let start = format!(
        "dir=$(mktemp -d /tmp/layotto-zk.XXXXXX) && \
         printf 'tickTime=200\\ndataDir=%s/data\\nclientPort={port}\\nclientPortAddress={host}\\nadmin.enableServer=false\\nmaxClientCnxns=0\\n' \"$dir\" > \"$dir/zoo.cfg\" && \
         nohup java -cp /etc/zookeeper/conf:/usr/share/java/zookeeper.jar \
         org.apache.zookeeper.server.quorum.QuorumPeerMain \"$dir/zoo.cfg\" > \"$dir.log\" 2>&1 &"
    );
    run(Command::new("sh").args(["-c", &start]))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !answers(ZOOKEEPER_ADDR) {
        if Instant::now() > deadline {
            bail!("ZooKeeper did not come up on {ZOOKEEPER_ADDR}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// s3s-fs, a small S3 server over a directory, installed with cargo when
/// missing and started on loopback with its data in a temporary directory.
fn ensure_s3() -> Result<()> {
    if answers(S3_ADDR) {
        println!("xtask: S3 (s3s-fs) is up on {S3_ADDR}");
        return Ok(());
    }
    if !which("s3s-fs") {
        println!("xtask: s3s-fs not found, installing it with cargo (about two minutes)");
        cargo(&["install", "s3s-fs", "--locked", "--version", S3S_FS_VERSION, "--features", "binary"])?;
    }
    println!("xtask: starting s3s-fs on {S3_ADDR}");
    let (host, port) = S3_ADDR.split_once(':').context("S3_ADDR")?;
    let start = format!(
        "dir=$(mktemp -d /tmp/layotto-s3.XXXXXX) && nohup s3s-fs --host {host} --port {port} \
         --access-key {S3_ACCESS_KEY} --secret-key {S3_SECRET_KEY} \"$dir\" > \"$dir.log\" 2>&1 &"
    );
    run(Command::new("sh").args(["-c", &start]))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !answers(S3_ADDR) {
        if Instant::now() > deadline {
            bail!("s3s-fs did not come up on {S3_ADDR}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// Dapr's Python SDK, unmodified, in a virtual environment of its own under
/// target/ (it needs newer grpcio and protobuf than the OSS demo pins).
fn ensure_dapr_python() -> Result<PathBuf> {
    let venv = std::env::current_dir()?.join("target").join("py-dapr");
    let python = venv.join("bin").join("python");
    let has_sdk = Command::new(&python)
        .args(["-c", "import dapr.clients, dapr.ext.grpc, importlib.metadata as m; assert m.version('dapr') == '1.19.0'"])
        .status()
        .is_ok_and(|s| s.success());
    if has_sdk {
        return Ok(python);
    }
    println!("xtask: setting up {} with the Dapr Python SDK (dapr[grpc]==1.19.0)", venv.display());
    if !python.is_file() {
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    }
    run(Command::new(&python).args(["-m", "pip", "install", "-q", "dapr[grpc]==1.19.0"]))?;
    Ok(python)
}

/// The Python packages the tests drive (aiosmtpd, the SMTP server of the
/// email tests; grpcio-tools for the Python demo), in a virtual environment
/// under target/; its interpreter.
pub(crate) fn ensure_python() -> Result<PathBuf> {
    let venv = std::env::current_dir()?.join("target").join("py");
    let python = venv.join("bin").join("python");
    let has = |module: &str| {
        Command::new(&python).args(["-c", &format!("import {module}")]).status().is_ok_and(|s| s.success())
    };
    if has("aiosmtpd") && has("grpc_tools") {
        return Ok(python);
    }
    println!("xtask: setting up {} with aiosmtpd and grpcio-tools", venv.display());
    if !python.is_file() {
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    }
    run(Command::new(&python).args(["-m", "pip", "install", "-q", "aiosmtpd==1.4.6"]))?;
    run(Command::new(&python).args([
        "-m",
        "pip",
        "install",
        "-q",
        "-r",
        "examples/oss/python/requirements.txt",
    ]))?;
    Ok(python)
}

/// What the Java demo (examples/oss/java) builds with: javac, protoc, the
/// grpc-java plugin and Debian's grpc-java, protobuf-java and netty jars.
fn ensure_java() -> Result<()> {
    const PACKAGES: &[&str] = &[
        "default-jdk-headless",
        "protobuf-compiler",
        "protobuf-compiler-grpc-java-plugin",
        "libgrpc-java",
        "libprotobuf-java",
        "libnetty-java",
        "libperfmark-java",
        "libgeronimo-annotation-1.3-spec-java",
    ];
    let jars =
        ["grpc-netty", "netty-codec-http2", "perfmark-api", "protobuf", "geronimo-annotation-1.3-spec"];
    let present = which("javac")
        && which("protoc")
        && std::path::Path::new("/usr/bin/grpc_java_plugin").is_file()
        && jars.iter().all(|jar| std::path::Path::new(&format!("/usr/share/java/{jar}.jar")).is_file());
    if !present {
        println!("xtask: installing the Java demo's toolchain with apt-get: {}", PACKAGES.join(" "));
        for package in PACKAGES {
            apt_install(package)?;
        }
    }
    Ok(())
}

/// The `test` databases the SQL suites use.
fn prepare_databases() -> Result<()> {
    if which("psql") {
        let exists = Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-tAc",
                "SELECT 1 FROM pg_database WHERE datname='test'",
            ])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "1")
            .unwrap_or(false);
        if !exists {
            run(Command::new("psql").args([
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-c",
                "CREATE DATABASE test",
            ]))?;
        }
    }
    if which("mariadb") {
        run(Command::new("mariadb").args([
            "-h",
            "127.0.0.1",
            "-u",
            "root",
            "-e",
            "CREATE DATABASE IF NOT EXISTS test",
        ]))?;
    }
    Ok(())
}

/// Installs a Debian package, refreshing the package lists first if that is what it takes.
fn apt_install(package: &str) -> Result<()> {
    let install = || {
        Command::new("apt-get")
            .args(["install", "-y", "-q", package])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success())
    };
    if install() {
        return Ok(());
    }
    run(Command::new("apt-get").arg("update").arg("-q"))?;
    if !install() {
        bail!("cannot install {package} with apt-get");
    }
    Ok(())
}

fn answers(addr: &str) -> bool {
    addr.parse().is_ok_and(|a| TcpStream::connect_timeout(&a, Duration::from_secs(1)).is_ok())
}

fn redis_answers() -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = TcpStream::connect_timeout(&REDIS_ADDR.parse().unwrap(), Duration::from_secs(1))
    else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let mut reply = [0u8; 7];
    stream.write_all(b"PING\r\n").is_ok() && stream.read_exact(&mut reply).is_ok() && &reply == b"+PONG\r\n"
}

fn which(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

fn cargo(args: &[&str]) -> Result<()> {
    run(Command::new("cargo").args(args))
}

fn run(cmd: &mut Command) -> Result<()> {
    println!("xtask: running {cmd:?}");
    let status = cmd.status().with_context(|| format!("cannot run {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}
