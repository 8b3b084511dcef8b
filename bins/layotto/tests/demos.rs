//! The object-storage demos in examples/oss (Rust, Java, Python) run against
//! the real binary on its embedded defaults, and print what they should.
//!
//! The Rust demos are the `layotto-examples` binaries, found next to this
//! package's binary: `cargo xtask test` builds them before the suites (or
//! `cargo build -p layotto-examples`). The Java demo needs Debian's grpc-java
//! packages and the Python demo grpcio-tools in `LAYOTTO_TEST_PYTHON`; the
//! test command installs both. None of them is skipped when missing: the
//! test fails saying what to install.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::Runtime;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs a demo with the runtime's address and a bucket of its own; its
/// output, or the test fails with everything it printed.
fn run_demo(mut cmd: Command, runtime: &Runtime, bucket: &str) -> String {
    let out = cmd
        .env("LAYOTTO_ADDR", format!("127.0.0.1:{}", runtime.grpc))
        .env("OSS_STORE", "oss_demo")
        .env("OSS_BUCKET", bucket)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn bucket(language: &str) -> String {
    format!("demo-{language}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

/// What the Java and Python demos both print, but for the greeting.
fn full_demo_output(greeting: &str) -> String {
    format!(
        "put greetings/hello.txt
list greetings/hello.txt
head size={} owner=demo
get {greeting}
copied greetings/hello.txt to archive/hello.txt
tags retention=1y
upload started
part 1: 5242880 bytes
part 2: 1048576 bytes
completed uploads/big.bin: 6291456 bytes
deleted 3 objects
greetings/hello.txt exists: false
",
        greeting.len()
    )
}

#[test]
fn the_rust_demos() {
    let runtime = Runtime::start(common::command());
    let bin_dir = Path::new(common::BIN).parent().unwrap();
    let bucket = bucket("rust");
    let expected = [
        ("oss-put-get", "put greetings/hello.txt\nhead size=15 owner=demo\nget hello from Rust\n"),
        (
            "oss-list",
            "page 1: list/a.txt list/b.txt\npage 2: list/c.txt list/sub/d.txt\npage 3: list/sub/e.txt\nfolders: list/sub/\n",
        ),
        (
            "oss-copy-tag-delete",
            "copied report.csv to archive/report.csv\ntags retention=1y\ndeleted 2 objects\nreport.csv exists: false\n",
        ),
        (
            "oss-multipart",
            "upload started\npart 1: 5242880 bytes\npart 2: 1048576 bytes\nparts listed: 2\ncompleted uploads/big.bin: 6291456 bytes\n",
        ),
    ];
    for (demo, output) in expected {
        let path = bin_dir.join(demo);
        assert!(
            path.is_file(),
            "{} is not built: run `cargo build -p layotto-examples` (cargo xtask test does)",
            path.display()
        );
        assert_eq!(run_demo(Command::new(&path), &runtime, &bucket), output, "{demo}");
    }
}

#[test]
fn the_java_demo() {
    let runtime = Runtime::start(common::command());
    let mut cmd = Command::new("sh");
    cmd.arg(repo().join("examples/oss/java/run.sh"))
        .env("BUILD_DIR", Path::new(env!("CARGO_TARGET_TMPDIR")).join("java-oss-demo"));
    assert_eq!(run_demo(cmd, &runtime, &bucket("java")), full_demo_output("hello from Java"));
}

#[test]
fn the_python_demo() {
    let runtime = Runtime::start(common::command());
    let python = std::env::var("LAYOTTO_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let mut cmd = Command::new("sh");
    cmd.arg(repo().join("examples/oss/python/run.sh"))
        .env("PYTHON", python)
        .env("BUILD_DIR", Path::new(env!("CARGO_TARGET_TMPDIR")).join("python-oss-demo"));
    assert_eq!(run_demo(cmd, &runtime, &bucket("python")), full_demo_output("hello from Python"));
}
