//! WebAssembly functions, as Layotto runs them: proxy-wasm modules on
//! wasmtime, each answering to the id its `proxy_get_id` writes, called
//! with an HTTP request (headers, then the body) and answering with the
//! body it writes. Functions call the runtime's APIs through host functions
//! ([`Host`]) and each other through `proxy_invoke_service`.
//!
//! Isolation is the point: every call runs under a deadline (epoch
//! interruption), every instance under a memory cap, and the number of live
//! instances is capped; a trap, a deadline or a memory overrun fails that
//! call only, and its instance is thrown away and rebuilt from the
//! pre-linked template. Calls run on the blocking pool, so a function that
//! spins never holds a reactor thread.
//!
//! A Rust app can embed this crate without the rest of the runtime: build
//! [`Functions`] with its own [`Host`] and call [`Functions::call`].

mod abi;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use parking_lot::{Mutex, RwLock};
use sha2::{Digest, Sha256};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime::{Engine, Instance, InstancePre, Module, Store, Trap, Val};

use abi::{CallState, Exit, HostState, MemoryCap, MemoryOverrun};

/// How often the engine's epoch advances: the granularity of deadlines.
const TICK: Duration = Duration::from_millis(5);

/// The runtime's APIs, as functions reach them.
#[async_trait]
pub trait Host: Send + Sync {
    /// `proxy_get_state`: the value, or `None` for a missing key.
    async fn get_state(&self, store: &str, key: &str) -> layotto_core::Result<Option<Vec<u8>>>;
    /// `proxy_save_state`.
    async fn save_state(&self, store: &str, key: &str, value: Vec<u8>) -> layotto_core::Result<()>;
    /// `proxy_publish_event`.
    async fn publish(&self, pubsub: &str, topic: &str, data: Vec<u8>) -> layotto_core::Result<()>;
    /// `proxy_invoke_service` for an id no function answers to: an app or another runtime.
    async fn invoke(&self, id: &str, method: &str, data: Vec<u8>) -> layotto_core::Result<Vec<u8>>;
}

/// Caps that keep one function from hurting the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// How long one call may run, host calls included.
    pub call_timeout: Duration,
    /// Linear memory per instance.
    pub max_memory_bytes: usize,
    /// Live instances across all functions.
    pub max_instances: usize,
    /// How long a call waits for a free instance of its function.
    pub queue_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            call_timeout: Duration::from_secs(5),
            max_memory_bytes: 64 << 20,
            max_instances: 256,
            queue_timeout: Duration::from_secs(5),
        }
    }
}

/// One function to load: Layotto's `Layotto` filter entry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FunctionSpec {
    /// The plugin name (the key of install, uninstall and update).
    pub name: String,
    /// Instances serving calls at once; 0 means one per CPU.
    pub instance_num: usize,
    pub path: PathBuf,
    /// Passed to `proxy_on_configure`, in proxy-wasm's map encoding.
    pub plugin_config: Vec<(String, String)>,
    /// Passed to `proxy_on_vm_start`.
    pub vm_config: Vec<u8>,
    /// The root context's id (Layotto's default 1).
    pub root_context_id: i32,
}

/// A request for a function.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpCall {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub trailers: Vec<(String, String)>,
}

/// A function's answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpAnswer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Why a call got no answer from its function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallError {
    /// The HTTP status to answer with.
    pub status: u16,
    /// For `layotto_wasm_calls_total`: not_found, busy, trap, deadline, memory, stopped, internal.
    pub outcome: &'static str,
    pub message: String,
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl CallError {
    fn new(status: u16, outcome: &'static str, message: String) -> Self {
        Self { status, outcome, message }
    }
}

/// What an installed function reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionInfo {
    pub name: String,
    pub id: String,
    pub instance_num: usize,
    pub path: PathBuf,
    /// Instances built and idle now.
    pub idle_instances: usize,
}

/// The installed functions; cheap to clone.
#[derive(Clone)]
pub struct Functions {
    shared: Arc<Shared>,
}

pub(crate) struct Shared {
    engine: Engine,
    limits: Limits,
    host: Arc<dyn Host>,
    handle: tokio::runtime::Handle,
    by_name: RwLock<BTreeMap<String, Arc<Function>>>,
    instances: Arc<Semaphore>,
    next: AtomicUsize,
}

/// A compiled module, linked once; instances are cut from `template`.
struct Core {
    spec: FunctionSpec,
    id: String,
    digest: [u8; 32],
    template: InstancePre<HostState>,
    /// The file as it was loaded, to notice a change.
    stamp: Option<(SystemTime, u64)>,
}

struct Function {
    core: Arc<Core>,
    instance_num: usize,
    idle: Mutex<Vec<Live>>,
    slots: Arc<Semaphore>,
}

/// One instance: its store, and how far its context ids have got.
struct Live {
    store: Store<HostState>,
    instance: Instance,
    next_context: i32,
    /// Its share of `Limits::max_instances`, released when the instance is dropped.
    _capacity: OwnedSemaphorePermit,
}

impl std::fmt::Debug for Functions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Functions").field("names", &self.names()).finish()
    }
}

/// A failure to install or reload a function; the message names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallError(pub String);

impl std::fmt::Display for InstallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InstallError {}

impl Functions {
    /// An empty set of functions on a new engine. Must run inside a tokio runtime.
    pub fn new(limits: Limits, host: Arc<dyn Host>) -> Result<Self, InstallError> {
        let mut config = wasmtime::Config::new();
        config.epoch_interruption(true);
        let engine =
            Engine::new(&config).map_err(|e| InstallError(format!("wasm: cannot start wasmtime: {e}")))?;
        let handle = tokio::runtime::Handle::try_current()
            .map_err(|_| InstallError("wasm: functions need a tokio runtime".into()))?;
        spawn_epoch_ticker(&engine);
        Ok(Self {
            shared: Arc::new(Shared {
                engine,
                limits,
                host,
                handle,
                by_name: RwLock::new(BTreeMap::new()),
                instances: Arc::new(Semaphore::new(limits.max_instances)),
                next: AtomicUsize::new(0),
            }),
        })
    }

    pub fn limits(&self) -> Limits {
        self.shared.limits
    }

    /// Installed plugin names.
    pub fn names(&self) -> Vec<String> {
        self.shared.by_name.read().keys().cloned().collect()
    }

    pub fn info(&self) -> Vec<FunctionInfo> {
        let by_name = self.shared.by_name.read();
        by_name
            .values()
            .map(|f| FunctionInfo {
                name: f.core.spec.name.clone(),
                id: f.core.id.clone(),
                instance_num: f.instance_num,
                path: f.core.spec.path.clone(),
                idle_instances: f.idle.lock().len(),
            })
            .collect()
    }

    /// Compiles, links and starts `spec`; returns the id it answers to.
    /// Fails, naming the function, when the name is taken, the file is
    /// missing or invalid, the module exports no `proxy_get_id` or answers
    /// with no id, or another function answers to that id with other code.
    pub async fn install(&self, spec: FunctionSpec) -> Result<String, InstallError> {
        let name = spec.name.clone();
        if name.is_empty() {
            return Err(InstallError("wasm: a function needs a name".into()));
        }
        if self.shared.by_name.read().contains_key(&name) {
            return Err(InstallError(format!("wasm function '{name}' is already installed")));
        }
        let function = self.load(spec).await?;
        let id = function.core.id.clone();
        let mut by_name = self.shared.by_name.write();
        if by_name.contains_key(&name) {
            return Err(InstallError(format!("wasm function '{name}' is already installed")));
        }
        check_same_code(&by_name, &function.core)?;
        by_name.insert(name.clone(), Arc::new(function));
        tracing::info!(function = %name, %id, "wasm function installed");
        Ok(id)
    }

    /// Removes the function called `name`, or every function answering to
    /// the id `name`; calls in flight finish on it.
    pub fn uninstall(&self, name: &str) -> Result<Vec<String>, InstallError> {
        let mut by_name = self.shared.by_name.write();
        let removed: Vec<String> = if by_name.remove(name).is_some() {
            vec![name.to_owned()]
        } else {
            let serving: Vec<String> =
                by_name.iter().filter(|(_, f)| f.core.id == name).map(|(n, _)| n.clone()).collect();
            for n in &serving {
                by_name.remove(n);
            }
            serving
        };
        if removed.is_empty() {
            return Err(InstallError(format!("wasm function '{name}' is not installed")));
        }
        tracing::info!(functions = ?removed, "wasm function uninstalled");
        Ok(removed)
    }

    /// Sets how many instances of function `name` (or of those answering to
    /// id `name`) serve at once.
    pub fn update(&self, name: &str, instance_num: usize) -> Result<(), InstallError> {
        if instance_num == 0 {
            return Err(InstallError(format!("wasm function '{name}': instance_num must be greater than 0")));
        }
        check_instance_num(name, instance_num, self.shared.limits)?;
        let mut by_name = self.shared.by_name.write();
        let targets: Vec<String> = if by_name.contains_key(name) {
            vec![name.to_owned()]
        } else {
            by_name.iter().filter(|(_, f)| f.core.id == name).map(|(n, _)| n.clone()).collect()
        };
        if targets.is_empty() {
            return Err(InstallError(format!("wasm function '{name}' is not installed")));
        }
        for target in targets {
            let Some(old) = by_name.get(&target) else { continue };
            let mut idle = std::mem::take(&mut *old.idle.lock());
            idle.truncate(instance_num);
            let function = Function::new(old.core.clone(), instance_num, idle);
            by_name.insert(target.clone(), Arc::new(function));
            tracing::info!(function = %target, instance_num, "wasm function updated");
        }
        Ok(())
    }

    /// Reloads the functions whose file changed since it was loaded; a
    /// file that no longer loads leaves the old code serving (logged).
    pub async fn reload_changed(&self) -> Vec<String> {
        let loaded: Vec<Arc<Function>> = self.shared.by_name.read().values().cloned().collect();
        let mut reloaded = Vec::new();
        for function in loaded {
            let spec = &function.core.spec;
            let now = stamp(&spec.path);
            if now.is_none() || now == function.core.stamp {
                continue;
            }
            let name = spec.name.clone();
            let loaded = self.load(spec.clone()).await;
            let mut by_name = self.shared.by_name.write();
            // Only if nothing installed, updated or uninstalled it meanwhile.
            let Some(current) = by_name.get(&name).filter(|f| Arc::ptr_eq(f, &function)).cloned() else {
                continue;
            };
            let fresh = loaded.and_then(|mut fresh| {
                let others: BTreeMap<String, Arc<Function>> = by_name
                    .iter()
                    .filter(|(n, _)| **n != name)
                    .map(|(n, f)| (n.clone(), f.clone()))
                    .collect();
                check_same_code(&others, &fresh.core)?;
                fresh.instance_num = current.instance_num;
                fresh.slots = Arc::new(Semaphore::new(current.instance_num));
                Ok(fresh)
            });
            match fresh {
                Ok(fresh) => {
                    tracing::info!(function = %name, id = %fresh.core.id, "wasm function reloaded from its changed file");
                    by_name.insert(name.clone(), Arc::new(fresh));
                    reloaded.push(name);
                }
                Err(e) => {
                    // Remember the stamp, so a broken file is reported once, not every poll.
                    let core = Arc::new(Core { stamp: now, ..clone_core(&current.core) });
                    let idle = std::mem::take(&mut *current.idle.lock());
                    by_name.insert(name.clone(), Arc::new(Function::new(core, current.instance_num, idle)));
                    tracing::error!(function = %name, error = %e, "wasm function not reloaded; the old code keeps serving");
                }
            }
        }
        reloaded
    }

    /// Builds idle instances of function `name` from its template until it
    /// has `count` (at most its `instance_num`), so first calls do not pay
    /// for instantiation; returns how many it built.
    pub async fn warm(&self, name: &str, count: usize) -> Result<usize, InstallError> {
        let function = self
            .shared
            .by_name
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| InstallError(format!("wasm function '{name}' is not installed")))?;
        let shared = self.shared.clone();
        let name = name.to_owned();
        let built = tokio::task::spawn_blocking(move || {
            let mut built = 0;
            while function.idle.lock().len() < count.min(function.instance_num) {
                let capacity = shared.instances.clone().try_acquire_owned().map_err(|_| {
                    InstallError(format!(
                        "wasm function '{name}': the cap of {} live instances is reached",
                        shared.limits.max_instances
                    ))
                })?;
                let (live, _) =
                    start(&shared, &function.core, capacity).map_err(|e| InstallError(e.message))?;
                function.idle.lock().push(live);
                built += 1;
            }
            Ok::<usize, InstallError>(built)
        });
        built.await.map_err(|e| InstallError(format!("wasm: warming stopped: {e}")))?
    }

    /// Calls the function answering to `id`; when several do, they take turns.
    pub async fn call(&self, id: &str, call: HttpCall) -> Result<HttpAnswer, CallError> {
        self.shared.call(id, call).await
    }

    async fn load(&self, spec: FunctionSpec) -> Result<Function, InstallError> {
        let shared = self.shared.clone();
        let name = spec.name.clone();
        tokio::task::spawn_blocking(move || load(&shared, spec))
            .await
            .map_err(|e| InstallError(format!("wasm function '{name}': loading stopped: {e}")))?
    }
}

fn clone_core(core: &Core) -> Core {
    Core {
        spec: core.spec.clone(),
        id: core.id.clone(),
        digest: core.digest,
        template: core.template.clone(),
        stamp: core.stamp,
    }
}

fn stamp(path: &std::path::Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// Several functions may answer to one id (calls take turns), but only with
/// the same code: two different modules behind one id would answer the same
/// request differently depending on the turn.
fn check_same_code(by_name: &BTreeMap<String, Arc<Function>>, core: &Core) -> Result<(), InstallError> {
    let clash = by_name
        .values()
        .find(|f| f.core.id == core.id && f.core.digest != core.digest && f.core.spec.name != core.spec.name);
    match clash {
        Some(other) => Err(InstallError(format!(
            "wasm function '{}' answers to id '{}' like function '{}', but with different code; \
             uninstall '{}' first or give the new module another id",
            core.spec.name, core.id, other.core.spec.name, other.core.spec.name
        ))),
        None => Ok(()),
    }
}

/// More instances than the runtime may hold in all could never run.
fn check_instance_num(name: &str, instance_num: usize, limits: Limits) -> Result<(), InstallError> {
    if instance_num > limits.max_instances {
        return Err(InstallError(format!(
            "wasm function '{name}': instance_num {instance_num} is over the cap of {} live instances \
             (wasm.max_instances)",
            limits.max_instances
        )));
    }
    Ok(())
}

fn spawn_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    let spawned = std::thread::Builder::new().name("layotto-wasm-epoch".into()).spawn(move || {
        loop {
            std::thread::sleep(TICK);
            match weak.upgrade() {
                Some(engine) => engine.increment_epoch(),
                None => return,
            }
        }
    });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "wasm: no epoch thread; calls will run without deadlines");
    }
}

fn ticks(timeout: Duration) -> u64 {
    (timeout.as_nanos() / TICK.as_nanos()) as u64 + 1
}

/// Reads, compiles, links and starts one instance (which says the id).
fn load(shared: &Arc<Shared>, spec: FunctionSpec) -> Result<Function, InstallError> {
    let name = spec.name.clone();
    let fail = |what: String| InstallError(format!("wasm function '{name}': {what}"));
    let stamp = stamp(&spec.path);
    let bytes =
        std::fs::read(&spec.path).map_err(|e| fail(format!("cannot read {}: {e}", spec.path.display())))?;
    let digest: [u8; 32] = Sha256::digest(&bytes).into();
    let module = Module::from_binary(&shared.engine, &bytes).map_err(|e| {
        fail(format!("{} is not a valid WebAssembly module: {}", spec.path.display(), error_chain(&e)))
    })?;
    if module.get_export("proxy_get_id").is_none() {
        return Err(fail(format!(
            "{} exports no proxy_get_id, so it cannot say which id it answers to",
            spec.path.display()
        )));
    }
    let linker = abi::linker(&shared.engine, &module)
        .map_err(|e| fail(format!("cannot link: {}", error_chain(&e))))?;
    let template =
        linker.instantiate_pre(&module).map_err(|e| fail(format!("cannot link: {}", error_chain(&e))))?;
    let instance_num = match spec.instance_num {
        0 => std::thread::available_parallelism().map_or(1, usize::from),
        n => n,
    };
    check_instance_num(&name, instance_num, shared.limits)?;
    if spec.root_context_id < 1 || spec.root_context_id > i32::MAX / 2 {
        return Err(fail(format!("root_context_id {} is out of range", spec.root_context_id)));
    }
    let core = Arc::new(Core { spec, id: String::new(), digest, template, stamp });
    let slots = Arc::new(Semaphore::new(instance_num));
    let capacity = shared.instances.clone().try_acquire_owned().map_err(|_| {
        fail(format!("the cap of {} live wasm instances is reached", shared.limits.max_instances))
    })?;
    let (live, id) = start(shared, &core, capacity).map_err(|e| InstallError(e.message))?;
    if id.is_empty() {
        return Err(fail("proxy_get_id wrote no id (buffer 8, call data, stayed empty)".into()));
    }
    let core = Arc::new(Core { id, ..clone_core(&core) });
    let function = Function { core, instance_num, idle: Mutex::new(vec![live]), slots };
    Ok(function)
}

/// `e` and its causes, on one line.
fn error_chain(e: &wasmtime::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = std::error::Error::source(e.as_ref() as &dyn std::error::Error);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.contains(&text) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.join(": ")
}

/// Builds an instance and runs the start-up sequence Layotto runs:
/// `_initialize` or `_start`, `proxy_get_id`, then the root context's
/// `proxy_on_context_create`, `proxy_on_vm_start` and `proxy_on_configure`.
fn start(
    shared: &Arc<Shared>,
    core: &Core,
    capacity: OwnedSemaphorePermit,
) -> Result<(Live, String), CallError> {
    let limits = shared.limits;
    let state = HostState {
        function: Arc::from(core.spec.name.as_str()),
        cap: MemoryCap { max_bytes: limits.max_memory_bytes },
        vm_config: core.spec.vm_config.clone(),
        plugin_config: abi::encode_pairs(&core.spec.plugin_config),
        call_data: Vec::new(),
        call: CallState::default(),
        shared: Arc::downgrade(shared),
        deadline: Instant::now() + limits.call_timeout,
    };
    let mut store = Store::new(&shared.engine, state);
    store.limiter(|state| &mut state.cap);
    store.epoch_deadline_trap();
    store.set_epoch_deadline(ticks(limits.call_timeout));
    let name = core.spec.name.as_str();
    let failed = |e: wasmtime::Error, step: &str| {
        let mut error = describe(&e, limits);
        error.message = format!("wasm function '{name}': {step}: {}", error.message);
        error
    };
    let instance = core.template.instantiate(&mut store).map_err(|e| failed(e, "instantiating"))?;
    let root = core.spec.root_context_id;
    let mut live = Live { store, instance, next_context: root + 1, _capacity: capacity };
    // A reactor's `_initialize` runs its constructors; Layotto's Rust and Go
    // functions register their contexts in `_start`: run whichever are there.
    for entry in ["_initialize", "_start"] {
        match live.call(entry, &[]) {
            Ok(_) => {}
            Err(e) if matches!(e.downcast_ref::<Exit>(), Some(Exit(0))) => {}
            Err(e) => return Err(failed(e, entry)),
        }
    }
    live.call("proxy_get_id", &[]).map_err(|e| failed(e, "proxy_get_id"))?;
    let id = String::from_utf8_lossy(&live.store.data().call_data).into_owned();
    live.call("proxy_on_context_create", &[root, 0]).map_err(|e| failed(e, "proxy_on_context_create"))?;
    let vm_len = live.store.data().vm_config.len() as i32;
    let started =
        live.call("proxy_on_vm_start", &[root, vm_len]).map_err(|e| failed(e, "proxy_on_vm_start"))?;
    if started == Some(0) {
        return Err(CallError::new(
            500,
            "stopped",
            format!("wasm function '{name}': proxy_on_vm_start refused to start"),
        ));
    }
    let config_len = live.store.data().plugin_config.len() as i32;
    let configured =
        live.call("proxy_on_configure", &[root, config_len]).map_err(|e| failed(e, "proxy_on_configure"))?;
    if configured == Some(0) {
        return Err(CallError::new(
            500,
            "stopped",
            format!("wasm function '{name}': proxy_on_configure refused its plugin configuration"),
        ));
    }
    Ok((live, id))
}

/// A failed wasm call in words, with the outcome it counts as.
fn describe(e: &wasmtime::Error, limits: Limits) -> CallError {
    if let Some(overrun) = e.downcast_ref::<MemoryOverrun>() {
        return CallError::new(500, "memory", format!("{overrun}"));
    }
    if let Some(exit) = e.downcast_ref::<Exit>() {
        return CallError::new(500, "trap", exit.to_string());
    }
    if let Some(trap) = e.downcast_ref::<Trap>() {
        if *trap == Trap::Interrupt {
            return CallError::new(
                500,
                "deadline",
                format!("ran past its deadline of {} ms and was stopped", limits.call_timeout.as_millis()),
            );
        }
        return CallError::new(500, "trap", format!("trapped: {trap}"));
    }
    CallError::new(500, "trap", error_chain(e))
}

impl Live {
    /// Calls export `name` with `args` fitted to its arity (0.1.0 and 0.2.x
    /// differ by an `end_of_stream` argument); `None` when the module does
    /// not export it, else its first i32 result.
    fn call(&mut self, name: &str, args: &[i32]) -> wasmtime::Result<Option<i32>> {
        let Some(func) = self.instance.get_func(&mut self.store, name) else { return Ok(None) };
        let ty = func.ty(&self.store);
        let params: Vec<Val> = ty
            .params()
            .enumerate()
            .map(|(i, ty)| match ty {
                wasmtime::ValType::I64 => Val::I64(i64::from(args.get(i).copied().unwrap_or(0))),
                _ => Val::I32(args.get(i).copied().unwrap_or(0)),
            })
            .collect();
        let mut results: Vec<Val> =
            ty.results().map(|ty| Val::default_for_ty(&ty).unwrap_or(Val::I32(0))).collect();
        func.call(&mut self.store, &params, &mut results)?;
        Ok(Some(results.first().and_then(Val::i32).unwrap_or(0)))
    }

    /// One request through a fresh HTTP context, as Layotto dispatches it.
    fn handle(&mut self, core: &Core, call: HttpCall, limits: Limits) -> Result<HttpAnswer, CallError> {
        let name = core.spec.name.as_str();
        let (header_count, body_len, trailer_count) =
            (call.headers.len() as i32, call.body.len() as i32, call.trailers.len() as i32);
        let has_body = !call.body.is_empty();
        {
            let state = self.store.data_mut();
            state.call = CallState::new(call);
            state.deadline = Instant::now() + limits.call_timeout;
        }
        self.store.set_epoch_deadline(ticks(limits.call_timeout));
        let context = self.next_context;
        self.next_context =
            self.next_context.checked_add(1).unwrap_or(core.spec.root_context_id.saturating_add(1));
        let root = core.spec.root_context_id;
        let fail = |e: wasmtime::Error| {
            let mut error = describe(&e, limits);
            error.message = format!("wasm function '{name}' {}", error.message);
            error
        };
        self.call("proxy_on_context_create", &[context, root]).map_err(fail)?;
        let mut action = self
            .call("proxy_on_request_headers", &[context, header_count, i32::from(!has_body)])
            .map_err(fail)?;
        if action.unwrap_or(0) == 0 && has_body {
            action = self.call("proxy_on_request_body", &[context, body_len, 1]).map_err(fail)?;
        }
        if action.unwrap_or(0) == 0 && trailer_count > 0 {
            action = self.call("proxy_on_request_trailers", &[context, trailer_count]).map_err(fail)?;
        }
        self.call("proxy_on_done", &[context]).map_err(fail)?;
        self.call("proxy_on_delete", &[context]).map_err(fail)?;
        let call = std::mem::take(&mut self.store.data_mut().call);
        if let Some(answer) = call.local_response {
            return Ok(answer);
        }
        if action.unwrap_or(0) != 0 {
            return Err(CallError::new(
                500,
                "stopped",
                format!(
                    "wasm function '{name}' stopped the request (action {}) without answering",
                    action.unwrap_or(0)
                ),
            ));
        }
        Ok(HttpAnswer { status: 200, headers: call.response_headers, body: call.response_body })
    }
}

impl Function {
    fn new(core: Arc<Core>, instance_num: usize, idle: Vec<Live>) -> Self {
        Self { core, instance_num, idle: Mutex::new(idle), slots: Arc::new(Semaphore::new(instance_num)) }
    }
}

impl Shared {
    fn pick(&self, id: &str) -> Result<Arc<Function>, CallError> {
        let by_name = self.by_name.read();
        let serving: Vec<&Arc<Function>> = by_name.values().filter(|f| f.core.id == id).collect();
        if serving.is_empty() {
            let ids: std::collections::BTreeSet<&str> =
                by_name.values().map(|f| f.core.id.as_str()).collect();
            return Err(CallError::new(
                404,
                "not_found",
                format!(
                    "no wasm function answers to id '{}'; installed ids: {}",
                    layotto_core::clip(id),
                    ids.into_iter().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        let turn = self.next.fetch_add(1, Ordering::Relaxed) % serving.len();
        Ok(serving[turn].clone())
    }

    async fn call(self: &Arc<Self>, id: &str, call: HttpCall) -> Result<HttpAnswer, CallError> {
        let started = Instant::now();
        let result = self.call_inner(id, call).await;
        let (label, outcome) = match &result {
            Ok(_) => (id, "ok"),
            Err(e) => (if e.outcome == "not_found" { "" } else { id }, e.outcome),
        };
        layotto_core::metrics::metrics().wasm_call(label, outcome, started.elapsed());
        result
    }

    async fn call_inner(self: &Arc<Self>, id: &str, call: HttpCall) -> Result<HttpAnswer, CallError> {
        let function = self.pick(id)?;
        let name = function.core.spec.name.clone();
        let slot =
            match tokio::time::timeout(self.limits.queue_timeout, function.slots.clone().acquire_owned())
                .await
            {
                Ok(Ok(slot)) => slot,
                _ => {
                    return Err(CallError::new(
                        503,
                        "busy",
                        format!(
                            "wasm function '{name}': all {} instances stayed busy for {} ms",
                            function.instance_num,
                            self.limits.queue_timeout.as_millis()
                        ),
                    ));
                }
            };
        let shared = self.clone();
        let joined = tokio::task::spawn_blocking(move || function.run(&shared, call, slot)).await;
        joined
            .unwrap_or_else(|e| Err(CallError::new(500, "internal", format!("wasm function '{name}': {e}"))))
    }
}

impl Function {
    /// On a blocking thread: an idle instance (or a new one from the
    /// template), the call, and the instance back unless the call failed
    /// inside wasm, which may have left its memory half-written.
    fn run(
        &self,
        shared: &Arc<Shared>,
        call: HttpCall,
        _slot: OwnedSemaphorePermit,
    ) -> Result<HttpAnswer, CallError> {
        let idle = self.idle.lock().pop();
        let mut live = match idle {
            Some(live) => live,
            None => {
                let capacity = shared.instances.clone().try_acquire_owned().map_err(|_| {
                    CallError::new(
                        503,
                        "busy",
                        format!(
                            "wasm function '{}': the cap of {} live wasm instances is reached",
                            self.core.spec.name, shared.limits.max_instances
                        ),
                    )
                })?;
                start(shared, &self.core, capacity)?.0
            }
        };
        let result = live.handle(&self.core, call, shared.limits);
        match &result {
            Err(e) if matches!(e.outcome, "trap" | "deadline" | "memory") => {
                tracing::warn!(function = %self.core.spec.name, error = %e, "wasm call failed; its instance is discarded");
            }
            _ => self.idle.lock().push(live),
        }
        result
    }
}

impl Shared {
    /// `proxy_invoke_service`: a function answering to `id` if there is one
    /// (in-process, as Layotto's `mosn` channel reaches its own listener),
    /// else the runtime's service invocation.
    pub(crate) async fn invoke_service(
        self: &Arc<Self>,
        id: &str,
        method: &str,
        data: Vec<u8>,
    ) -> layotto_core::Result<Vec<u8>> {
        let is_function = self.by_name.read().values().any(|f| f.core.id == id);
        if !is_function {
            return self.host.invoke(id, method, data).await;
        }
        let headers = vec![("id".to_owned(), id.to_owned()), ("method".to_owned(), method.to_owned())];
        match Box::pin(self.call(id, HttpCall { headers, body: data, trailers: Vec::new() })).await {
            Ok(answer) if answer.status < 400 => Ok(answer.body),
            Ok(answer) => Err(layotto_core::Error::new(
                layotto_core::ErrorKind::Internal,
                format!("wasm function '{id}' answered HTTP {}", answer.status),
            )),
            Err(e) => Err(layotto_core::Error::new(layotto_core::ErrorKind::Internal, e.message)),
        }
    }
}
