//! Listeners: TCP, or a Unix-domain socket (Layotto's `"network": "unix"`).

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::ListenAddr;
use crate::server::StartError;

pub(crate) enum GrpcListener {
    Tcp(TcpListener),
    Unix(tokio::net::UnixListener, std::path::PathBuf),
}

impl GrpcListener {
    pub(crate) async fn bind(listen: &ListenAddr) -> Result<Self, StartError> {
        match listen {
            ListenAddr::Tcp(addr) => Ok(Self::Tcp(bind("gRPC", *addr).await?)),
            ListenAddr::Unix(path) => {
                // A socket file left by an earlier run would refuse the bind.
                if std::fs::symlink_metadata(path).is_ok_and(|m| {
                    use std::os::unix::fs::FileTypeExt;
                    m.file_type().is_socket()
                }) {
                    let _ = std::fs::remove_file(path);
                }
                let listener = tokio::net::UnixListener::bind(path).map_err(|e| {
                    StartError(format!("cannot listen for gRPC on unix socket {}: {e}", path.display()))
                })?;
                Ok(Self::Unix(listener, path.clone()))
            }
        }
    }

    pub(crate) fn local(&self) -> Result<ListenAddr, StartError> {
        match self {
            Self::Tcp(listener) => local_addr("gRPC", listener).map(ListenAddr::Tcp),
            Self::Unix(_, path) => Ok(ListenAddr::Unix(path.clone())),
        }
    }
}

pub(crate) async fn bind(what: &str, addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr).await.map_err(|e| StartError(format!("cannot listen for {what} on {addr}: {e}")))
}

pub(crate) fn local_addr(what: &str, listener: &TcpListener) -> Result<SocketAddr, StartError> {
    listener.local_addr().map_err(|e| StartError(format!("{what} listener: {e}")))
}

pub(crate) async fn wait_for(mut shutdown: watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// A gRPC connection that must start talking within the handshake timeout,
/// so connections that never send anything cannot pile up (372 idle TCP
/// connections once starved real clients); it also holds one of the
/// listener's connection permits until it closes.
pub(crate) struct Handshaking<IO> {
    io: IO,
    /// Until the first byte arrives.
    deadline: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
    _permit: tokio::sync::OwnedSemaphorePermit,
    _open: OpenConnection,
    /// Set when the traffic dump samples this connection.
    tap: Option<crate::dump::Tap>,
}

impl<IO> Handshaking<IO> {
    fn new(
        io: IO,
        timeout: std::time::Duration,
        permit: tokio::sync::OwnedSemaphorePermit,
        tap: Option<crate::dump::Tap>,
    ) -> Self {
        Self {
            io,
            deadline: Some(Box::pin(tokio::time::sleep(timeout))),
            _permit: permit,
            _open: OpenConnection::new("grpc"),
            tap,
        }
    }
}

/// Counts a connection in `layotto_open_connections{listener}` while it lives.
pub(crate) struct OpenConnection(&'static str);

impl OpenConnection {
    pub(crate) fn new(listener: &'static str) -> Self {
        layotto_core::metrics::metrics().connections.with_label_values(&[listener]).inc();
        Self(listener)
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        layotto_core::metrics::metrics().connections.with_label_values(&[self.0]).dec();
    }
}

impl<IO: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Handshaking<IO> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::task::Poll;
        let before = buf.filled().len();
        let this = &mut *self;
        match std::pin::Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    this.deadline = None;
                    if let Some(tap) = &this.tap {
                        tap.record(false, &buf.filled()[before..]);
                    }
                }
                Poll::Ready(result)
            }
            Poll::Pending => match this.deadline.as_mut().map(|d| d.as_mut().poll(cx)) {
                Some(Poll::Ready(())) => Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the client sent nothing within the handshake timeout (server.handshake_timeout_seconds)",
                ))),
                _ => Poll::Pending,
            },
        }
    }
}

impl<IO: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Handshaking<IO> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let this = &mut *self;
        let written = std::pin::Pin::new(&mut this.io).poll_write(cx, buf);
        if let (Some(tap), std::task::Poll::Ready(Ok(n))) = (&this.tap, &written) {
            tap.record(true, &buf[..*n]);
        }
        written
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

impl<IO: tonic::transport::server::Connected> tonic::transport::server::Connected for Handshaking<IO> {
    type ConnectInfo = IO::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

/// Accepted connections, at most `max_connections` open at once (past that
/// the listener waits), each under the handshake timeout.
pub(crate) fn guarded<IO, S>(
    incoming: S,
    max_connections: usize,
    handshake_timeout: std::time::Duration,
    dump: Option<std::sync::Arc<crate::dump::Dump>>,
) -> impl futures::Stream<Item = std::io::Result<Handshaking<IO>>>
where
    S: futures::Stream<Item = std::io::Result<IO>> + Unpin,
{
    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(max_connections.max(1)));
    futures::stream::unfold((incoming, permits), move |(mut incoming, permits)| {
        let dump = dump.clone();
        async move {
            use futures::StreamExt;
            let permit = permits.clone().acquire_owned().await.ok()?;
            let next = incoming.next().await?;
            let tap = dump.as_ref().and_then(crate::dump::Dump::connection);
            let item = next.map(|io| Handshaking::new(io, handshake_timeout, permit, tap));
            Some((item, (incoming, permits)))
        }
    })
}

/// How the actuator's HTTP/1 listener guards itself.
pub(crate) struct HttpLimits {
    /// A request head (and a TLS handshake) must arrive within this; a
    /// client that sent half a request once held its connection for 40 s and more.
    pub(crate) header_timeout: std::time::Duration,
    /// Connections open at once; past that the listener waits.
    pub(crate) max_connections: usize,
    pub(crate) tls: Option<tokio_rustls::TlsAcceptor>,
    /// Also HTTP/2 without TLS (prior knowledge), as runtimes call each other.
    pub(crate) http2: bool,
    /// The listener's name in metrics.
    pub(crate) name: &'static str,
}

/// Serves the actuator over HTTP/1 (or HTTPS) until `shutdown`.
pub(crate) async fn serve_http(
    listener: TcpListener,
    router: axum::Router,
    shutdown: watch::Receiver<bool>,
    limits: HttpLimits,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit { Ok(p) => p, Err(_) => break },
            _ = wait_for(shutdown.clone()) => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors, say: wait instead of spinning.
                    tracing::warn!(error = %e, "actuator cannot accept a connection");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = wait_for(shutdown.clone()) => break,
        };
        // The peer, for per-connection rate limits.
        let router = router.clone().layer(axum::Extension(axum::extract::ConnectInfo(peer)));
        let (watcher, timeout, tls, http2) =
            (graceful.watcher(), limits.header_timeout, limits.tls.clone(), limits.http2);
        let open = OpenConnection::new(limits.name);
        // The handshake runs in the connection's task, so a slow client never holds the accept loop.
        tokio::spawn(async move {
            let _open = open;
            match tls {
                None if http2 => serve_auto_connection(stream, router, watcher, timeout).await,
                None => serve_connection(stream, router, watcher, timeout).await,
                Some(acceptor) => match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => serve_connection(stream, router, watcher, timeout).await,
                    Ok(Err(e)) => tracing::debug!(error = %e, "actuator TLS handshake failed"),
                    Err(_) => tracing::debug!("actuator TLS handshake timed out"),
                },
            }
            drop(permit);
        });
    }
    // In-flight requests finish; a stuck one does not hold shutdown for ever.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), graceful.shutdown()).await;
}

async fn serve_connection<IO>(
    io: IO,
    router: axum::Router,
    watcher: hyper_util::server::graceful::Watcher,
    header_timeout: std::time::Duration,
) where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper_util::service::TowerToHyperService::new(router);
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(header_timeout)
        .serve_connection(hyper_util::rt::TokioIo::new(io), service);
    let _ = watcher.watch(connection).await;
}

/// HTTP/1 or HTTP/2 (prior knowledge) on one port, told apart by the preface.
async fn serve_auto_connection<IO>(
    io: IO,
    router: axum::Router,
    watcher: hyper_util::server::graceful::Watcher,
    header_timeout: std::time::Duration,
) where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper_util::service::TowerToHyperService::new(router);
    let mut builder = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
    builder.http1().timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(header_timeout);
    builder.http2().timer(hyper_util::rt::TokioTimer::new());
    let connection = builder.serve_connection(hyper_util::rt::TokioIo::new(io), service);
    let _ = watcher.watch(connection.into_owned()).await;
}
