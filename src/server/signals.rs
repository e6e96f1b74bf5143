//! The standalone server's answer to Ctrl-C and SIGTERM: Close 1001 to every
//! connection, a drain, then the server stops ([`Server::handle_signals`]).

use std::io;

use super::Server;

/// On SIGINT (Ctrl-C) or SIGTERM: `server.shutdown(close timeout)` (Close 1001,
/// "server shutting down", to each of its connections, resolved when they are
/// closed or the close timeout ran out), then stop `running` gracefully. The
/// handlers are installed before this returns, so a signal that comes right
/// after `listen` is not lost.
pub(super) fn drain_on_signals(server: &Server, running: &actix_server::Server) -> io::Result<()> {
    let signal = Signal::install()?;
    let server = server.clone();
    let handle = running.handle();
    actix_rt::spawn(async move {
        signal.recv().await;
        let drain = server.settings().connection.close_timeout;
        tracing::info!(
            open = server.open_connections(),
            ?drain,
            "signal received: closing websocket connections with 1001, then stopping"
        );
        server.shutdown(drain).await;
        handle.stop(true).await;
    });
    Ok(())
}

/// SIGINT and SIGTERM, listened to from now on.
struct Signal {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl Signal {
    #[cfg(unix)]
    fn install() -> io::Result<Signal> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signal {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    #[cfg(not(unix))]
    fn install() -> io::Result<Signal> {
        Ok(Signal {})
    }

    #[cfg(unix)]
    async fn recv(mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }

    #[cfg(not(unix))]
    async fn recv(self) {
        let _ = tokio::signal::ctrl_c().await;
    }
}
