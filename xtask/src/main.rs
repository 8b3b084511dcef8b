//! Project automation: `cargo xtask test | ci | bench`.
//!
//! `test` is what README.md and `.ci/run` call: it makes sure the services the
//! tests need are up (installing and starting Redis when missing), then runs
//! formatting, clippy and every test suite. Nothing is skipped silently.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod bench;

use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

const REDIS_ADDR: &str = "127.0.0.1:6379";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("test") => test(),
        Some("ci") => ci(),
        Some("ci-extra") => ci_extra(),
        Some("bench") => bench::run(&args[1..]),
        Some("services") => ensure_services(),
        _ => {
            eprintln!("usage: cargo xtask <test|ci|bench|services>");
            eprintln!("  test      start what tests need, then fmt, clippy and every test suite");
            eprintln!("  ci        test, plus the slim build without optional features and cargo-deny");
            eprintln!("  ci-extra  only the checks ci adds to test");
            eprintln!("  bench     release build, load generator and same-run baselines (see crates/bench)");
            eprintln!("  services  only make sure Redis is installed and running");
            std::process::exit(2)
        }
    }
}

fn test() -> Result<()> {
    ensure_services()?;
    cargo(&["fmt", "--all", "--", "--check"]).context("cargo fmt --check failed: run `cargo fmt --all`")?;
    cargo(&["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"])?;
    // Doc tests first, so the suite summary is the last thing printed.
    cargo(&["test", "--workspace", "--doc"])?;
    let redis_url = format!("redis://{REDIS_ADDR}");
    let runner: &[&str] = if which("cargo-nextest") {
        &["nextest", "run", "--workspace", "--no-fail-fast"]
    } else {
        println!("xtask: cargo-nextest not found, using cargo test");
        &["test", "--workspace", "--no-fail-fast"]
    };
    run(Command::new("cargo").args(runner).env("LAYOTTO_TEST_REDIS", &redis_url))?;
    Ok(())
}

fn ci() -> Result<()> {
    test()?;
    ci_extra()
}

/// What CI checks beyond `test`.
fn ci_extra() -> Result<()> {
    // A slim runtime: no optional component at all.
    cargo(&["build", "-p", "layotto", "--no-default-features"])?;
    if which("cargo-deny") {
        cargo(&["deny", "--offline", "check", "bans", "licenses", "sources"])?;
    } else {
        println!(
            "xtask: NOTE cargo-deny is not installed, so deny.toml was not checked (cargo install cargo-deny)"
        );
    }
    Ok(())
}

/// Redis on 127.0.0.1:6379 for the state suites, and `redis-server` on PATH
/// for the outage tests, which start private servers on other ports.
fn ensure_services() -> Result<()> {
    if !which("redis-server") {
        println!("xtask: redis-server not found, installing it with apt-get");
        run(Command::new("apt-get").arg("update").arg("-q"))?;
        run(Command::new("apt-get")
            .args(["install", "-y", "-q", "redis-server"])
            .env("DEBIAN_FRONTEND", "noninteractive"))?;
    }
    if redis_answers() {
        println!("xtask: Redis is up on {REDIS_ADDR}");
        return Ok(());
    }
    println!("xtask: starting Redis on {REDIS_ADDR}");
    std::fs::create_dir_all("/var/lib/redis").ok();
    std::fs::create_dir_all("/var/log/redis").ok();
    run(Command::new("redis-server").args([
        "--daemonize",
        "yes",
        "--bind",
        "127.0.0.1",
        "-::1",
        "--port",
        "6379",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        "/var/lib/redis",
        "--logfile",
        "/var/log/redis/ci.log",
    ]))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if redis_answers() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("Redis did not come up on {REDIS_ADDR}")
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
