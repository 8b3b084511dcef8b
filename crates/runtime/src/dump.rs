//! Traffic dump (Layotto's `tcpcopy`): the bytes of sampled gRPC
//! connections, both directions, written to rotating files for replay or
//! inspection (`layotto dump show FILE`).
//!
//! Connections are sampled (`sample_rate`); with `interval_seconds` set,
//! bytes are kept only during windows of `duration_seconds` every interval,
//! as Layotto samples. A guard pauses dumping while the process uses more
//! CPU or memory than allowed, and records never wait: when the writer
//! falls behind they are dropped and counted. Switched on and off at run
//! time with `POST /actuator/dump {"switch": "ON" | "OFF"}`.
//!
//! File format: the header `LAYOTTO-DUMP 1\n`, then records of
//! `u64` microseconds since the epoch, `u64` connection id, `u8` direction
//! (0 from the client, 1 to it), `u32` length (all big-endian) and the bytes.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::server::StartError;

const MAGIC: &[u8] = b"LAYOTTO-DUMP 1\n";
const QUEUE: usize = 4096;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DumpConfig {
    #[serde(default)]
    pub enabled: bool,
    /// Where dump files go (default: `layotto-dump` in the temp directory).
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// The share of connections dumped, 0 to 1.
    #[serde(default = "one")]
    pub sample_rate: f64,
    /// 0: dump all the time; else a window of `duration_seconds` every this many seconds.
    #[serde(default)]
    pub interval_seconds: u64,
    #[serde(default = "default_duration")]
    pub duration_seconds: u64,
    #[serde(default = "default_file_bytes")]
    pub max_file_bytes: u64,
    #[serde(default = "default_files")]
    pub max_files: usize,
    /// Pause while the process uses more CPU than this (percent of the machine).
    #[serde(default = "default_cpu")]
    pub cpu_max_percent: f64,
    /// Pause while the process's RSS is more than this share of the machine's memory.
    #[serde(default = "default_mem")]
    pub mem_max_percent: f64,
}

fn one() -> f64 {
    1.0
}
fn default_duration() -> u64 {
    1
}
fn default_file_bytes() -> u64 {
    64 * 1024 * 1024
}
fn default_files() -> usize {
    8
}
fn default_cpu() -> f64 {
    80.0
}
fn default_mem() -> f64 {
    70.0
}

impl Default for DumpConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            dir: None,
            sample_rate: one(),
            interval_seconds: 0,
            duration_seconds: default_duration(),
            max_file_bytes: default_file_bytes(),
            max_files: default_files(),
            cpu_max_percent: default_cpu(),
            mem_max_percent: default_mem(),
        }
    }
}

struct Record {
    micros: u64,
    connection: u64,
    outbound: bool,
    bytes: Vec<u8>,
}

pub struct Dump {
    on: AtomicBool,
    window: AtomicBool,
    paused: AtomicBool,
    next_connection: AtomicU64,
    /// Every how many connections one is dumped.
    sample_every: u64,
    dropped: AtomicU64,
    tx: mpsc::Sender<Record>,
    dir: PathBuf,
}

impl Dump {
    /// Checks the directory is writable and starts the writer (and, when
    /// configured, the sampling windows and the guard).
    pub fn start(config: &DumpConfig) -> Result<Arc<Self>, StartError> {
        if !(config.sample_rate > 0.0 && config.sample_rate <= 1.0) {
            return Err(StartError(format!(
                "traffic_dump.sample_rate must be in (0, 1], got {}",
                config.sample_rate
            )));
        }
        if config.interval_seconds > 0 && !(1..config.interval_seconds).contains(&config.duration_seconds) {
            return Err(StartError(format!(
                "traffic_dump.duration_seconds must be at least 1 and less than interval_seconds ({}), got {}",
                config.interval_seconds, config.duration_seconds
            )));
        }
        let dir = config.dir.clone().unwrap_or_else(|| std::env::temp_dir().join("layotto-dump"));
        std::fs::create_dir_all(&dir)
            .and_then(|()| tempfile_probe(&dir))
            .map_err(|e| StartError(format!("traffic_dump.dir {} is not writable: {e}", dir.display())))?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let dump = Arc::new(Self {
            on: AtomicBool::new(config.enabled),
            window: AtomicBool::new(config.interval_seconds == 0),
            paused: AtomicBool::new(false),
            next_connection: AtomicU64::new(0),
            sample_every: (1.0 / config.sample_rate).round().max(1.0) as u64,
            dropped: AtomicU64::new(0),
            tx,
            dir: dir.clone(),
        });
        let writer = Writer {
            dir,
            max_file_bytes: config.max_file_bytes.max(1024),
            max_files: config.max_files.max(1),
        };
        std::thread::Builder::new()
            .name("traffic-dump".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| StartError(format!("traffic dump writer: {e}")))?;
        if config.interval_seconds > 0 {
            let (dump, every, open) = (
                Arc::downgrade(&dump),
                Duration::from_secs(config.interval_seconds),
                Duration::from_secs(config.duration_seconds),
            );
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    let Some(d) = dump.upgrade() else { return };
                    d.window.store(true, Ordering::Release);
                    drop(d);
                    tokio::time::sleep(open).await;
                    let Some(d) = dump.upgrade() else { return };
                    d.window.store(false, Ordering::Release);
                }
            });
        }
        let (weak, cpu_max, mem_max) =
            (Arc::downgrade(&dump), config.cpu_max_percent, config.mem_max_percent);
        tokio::spawn(async move {
            let mut usage = Usage::default();
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let Some(dump) = weak.upgrade() else { return };
                let (cpu, mem) = usage.sample();
                let over = cpu > cpu_max || mem > mem_max;
                if over != dump.paused.swap(over, Ordering::AcqRel) {
                    if over {
                        tracing::warn!(
                            cpu_percent = cpu,
                            mem_percent = mem,
                            "traffic dump paused: the process is over its CPU or memory limit"
                        );
                    } else {
                        tracing::info!("traffic dump resumed");
                    }
                }
            }
        });
        tracing::info!(dir = %dump.dir.display(), on = config.enabled, "traffic dump ready");
        Ok(dump)
    }

    pub fn set(&self, on: bool) {
        self.on.store(on, Ordering::Release);
        tracing::info!(on, dir = %self.dir.display(), "traffic dump switched");
    }

    pub fn is_on(&self) -> bool {
        self.on.load(Ordering::Acquire)
    }

    /// Records dropped because the writer fell behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// A tap for a new connection when it is sampled.
    pub fn connection(self: &Arc<Self>) -> Option<Tap> {
        let id = self.next_connection.fetch_add(1, Ordering::Relaxed);
        id.is_multiple_of(self.sample_every).then(|| Tap { id, dump: self.clone() })
    }

    fn recording(&self) -> bool {
        self.on.load(Ordering::Relaxed)
            && self.window.load(Ordering::Relaxed)
            && !self.paused.load(Ordering::Relaxed)
    }
}

fn tempfile_probe(dir: &Path) -> std::io::Result<()> {
    let probe = dir.join(format!(".probe-{}", std::process::id()));
    std::fs::write(&probe, b"")?;
    std::fs::remove_file(probe)
}

/// One dumped connection's side of the copy.
pub struct Tap {
    id: u64,
    dump: Arc<Dump>,
}

impl Tap {
    pub fn record(&self, outbound: bool, bytes: &[u8]) {
        if bytes.is_empty() || !self.dump.recording() {
            return;
        }
        let micros = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_micros() as u64;
        let record = Record { micros, connection: self.id, outbound, bytes: bytes.to_vec() };
        if self.dump.tx.try_send(record).is_err() {
            self.dump.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

struct Writer {
    dir: PathBuf,
    max_file_bytes: u64,
    max_files: usize,
}

impl Writer {
    fn run(self, mut rx: mpsc::Receiver<Record>) {
        let mut current: Option<(std::io::BufWriter<std::fs::File>, u64)> = None;
        let mut sequence = 0u64;
        while let Some(record) = rx.blocking_recv() {
            if current.as_ref().is_none_or(|(_, size)| *size >= self.max_file_bytes) {
                current = self.open(&mut sequence);
            }
            let Some((file, size)) = current.as_mut() else { continue };
            let mut head = Vec::with_capacity(21);
            head.extend_from_slice(&record.micros.to_be_bytes());
            head.extend_from_slice(&record.connection.to_be_bytes());
            head.push(u8::from(record.outbound));
            head.extend_from_slice(&(record.bytes.len() as u32).to_be_bytes());
            if file.write_all(&head).and_then(|()| file.write_all(&record.bytes)).is_err() {
                tracing::warn!(dir = %self.dir.display(), "cannot write the traffic dump; starting a new file");
                current = None;
                continue;
            }
            *size += (head.len() + record.bytes.len()) as u64;
            if rx.is_empty() {
                let _ = file.flush();
            }
        }
        if let Some((mut file, _)) = current {
            let _ = file.flush();
        }
    }

    /// A new file, removing the oldest beyond `max_files`.
    fn open(&self, sequence: &mut u64) -> Option<(std::io::BufWriter<std::fs::File>, u64)> {
        *sequence += 1;
        let micros = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_micros();
        let path = self.dir.join(format!("dump-{micros:020}-{sequence:06}.ldump"));
        let mut file = match std::fs::File::create(&path) {
            Ok(file) => std::io::BufWriter::new(file),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot create a traffic dump file");
                return None;
            }
        };
        file.write_all(MAGIC).ok()?;
        let mut files = dump_files(&self.dir);
        while files.len() > self.max_files {
            let _ = std::fs::remove_file(files.remove(0));
        }
        Some((file, MAGIC.len() as u64))
    }
}

/// The dump files in `dir`, oldest first.
pub fn dump_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "ldump"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// The process's CPU (percent of the machine) and RSS (percent of its memory) from /proc.
#[derive(Default)]
struct Usage {
    last: Option<(std::time::Instant, f64)>,
}

impl Usage {
    fn sample(&mut self) -> (f64, f64) {
        let stat = layotto_core::metrics::ProcessStat::read().unwrap_or_default();
        let (cpu_seconds, rss_bytes) = (stat.cpu_seconds, stat.rss_bytes);
        let now = std::time::Instant::now();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let cpu = match self.last.replace((now, cpu_seconds)) {
            Some((then, before)) => {
                let wall = now.duration_since(then).as_secs_f64().max(1e-3);
                (cpu_seconds - before) / wall / cores * 100.0
            }
            None => 0.0,
        };
        let total = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find(|l| l.starts_with("MemTotal:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
            })
            .map_or(f64::MAX, |kib| kib * 1024.0);
        (cpu, rss_bytes / total * 100.0)
    }
}

/// One record read back from a dump file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpRecord {
    pub micros: u64,
    pub connection: u64,
    pub outbound: bool,
    pub bytes: Vec<u8>,
}

/// Reads a dump file; a file cut short (the runtime stopped mid-write) gives what is whole.
pub fn read(path: &Path) -> Result<Vec<DumpRecord>, String> {
    let data = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut rest = data.strip_prefix(MAGIC).ok_or_else(|| {
        format!("{}: not a layotto traffic dump (no '{}' header)", path.display(), "LAYOTTO-DUMP 1")
    })?;
    let mut records = Vec::new();
    while rest.len() >= 21 {
        let u64_at = |at: usize| u64::from_be_bytes(rest[at..at + 8].try_into().unwrap_or_default());
        let len = u32::from_be_bytes(rest[17..21].try_into().unwrap_or_default()) as usize;
        if rest.len() < 21 + len {
            break;
        }
        records.push(DumpRecord {
            micros: u64_at(0),
            connection: u64_at(8),
            outbound: rest[16] == 1,
            bytes: rest[21..21 + len].to_vec(),
        });
        rest = &rest[21 + len..];
    }
    Ok(records)
}

/// A readable listing: each record, and the HTTP/2 frames each direction of
/// each connection carries (type, stream, length; gRPC message lengths in DATA).
pub fn show(path: &Path) -> Result<String, String> {
    use std::collections::HashMap;
    use std::fmt::Write as _;
    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let records = read(path)?;
    let mut out = String::new();
    let mut pending: HashMap<(u64, bool), Vec<u8>> = HashMap::new();
    for r in &records {
        let direction = if r.outbound { "out" } else { "in " };
        let _ = writeln!(out, "{} conn {} {direction} {} bytes", r.micros, r.connection, r.bytes.len());
        let buffer = pending.entry((r.connection, r.outbound)).or_default();
        buffer.extend_from_slice(&r.bytes);
        if !r.outbound && buffer.starts_with(PREFACE) {
            buffer.drain(..PREFACE.len());
            let _ = writeln!(out, "    HTTP/2 client preface");
        }
        while buffer.len() >= 9 {
            let len = (usize::from(buffer[0]) << 16) | (usize::from(buffer[1]) << 8) | usize::from(buffer[2]);
            if buffer.len() < 9 + len {
                break;
            }
            let kind = match buffer[3] {
                0 => "DATA",
                1 => "HEADERS",
                2 => "PRIORITY",
                3 => "RST_STREAM",
                4 => "SETTINGS",
                5 => "PUSH_PROMISE",
                6 => "PING",
                7 => "GOAWAY",
                8 => "WINDOW_UPDATE",
                9 => "CONTINUATION",
                _ => "UNKNOWN",
            };
            let stream = u32::from_be_bytes([buffer[5] & 0x7f, buffer[6], buffer[7], buffer[8]]);
            let mut line = format!("    {kind} stream {stream} length {len}");
            if buffer[3] == 0 && len >= 5 {
                let message = u32::from_be_bytes([buffer[10], buffer[11], buffer[12], buffer[13]]);
                let _ = write!(line, " (gRPC message of {message} bytes)");
            }
            let _ = writeln!(out, "{line}");
            buffer.drain(..9 + len);
        }
    }
    Ok(out)
}

/// `POST /actuator/dump` with `{"switch": "ON" | "OFF"}` (Layotto's words);
/// `GET` tells whether it is on. 500 naming the reason otherwise.
pub fn router(dump: Option<Arc<Dump>>) -> axum::Router {
    use axum::Json;
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    use serde_json::json;
    axum::Router::new().route(
        "/actuator/dump",
        axum::routing::any(move |method: axum::http::Method, body: axum::body::Bytes| {
            let dump = dump.clone();
            async move {
                let Some(dump) = dump else {
                    let error = "the traffic dump is not configured: add a [traffic_dump] section";
                    return (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({"error": error}))).into_response();
                };
                if method == axum::http::Method::POST {
                    let wanted = serde_json::from_slice::<serde_json::Value>(&body)
                        .ok()
                        .and_then(|v| v.get("switch").and_then(|s| s.as_str()).map(str::to_ascii_uppercase));
                    match wanted.as_deref() {
                        Some("ON") => dump.set(true),
                        Some("OFF") => dump.set(false),
                        _ => {
                            let error = r#"the body must be {"switch": "ON"} or {"switch": "OFF"}"#;
                            return (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({"error": error}))).into_response();
                        }
                    }
                }
                let state = if dump.is_on() { "ON" } else { "OFF" };
                Json(json!({"switch": state, "dir": dump.dir.display().to_string(), "dropped": dump.dropped()}))
                    .into_response()
            }
        }),
    )
}
