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
