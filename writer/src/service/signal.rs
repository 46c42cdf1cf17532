//! Stopping: the signals that ask for it, and the orderly stop itself (commit what was
//! read, finish closed shards, give every lease back so peers take over at once instead of
//! waiting for the leases to expire).

use std::future::Future;
use std::pin::Pin;

use super::Service;

/// Resolves on SIGTERM or SIGINT.
pub fn shutdown_signal() -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(async {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = tokio::signal::ctrl_c() => {}
                    }
                }
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    })
}

impl Service {
    /// Stop the readers, commit what they already delivered, checkpoint closed shards,
    /// release every lease. Bounded by `--shutdown-deadline` (see [`Service::run`]).
    pub(super) async fn shutdown(&mut self) {
        self.shards.stop_readers();
        self.take_delivered();
        self.flush().await;
        self.shards.finish_ended(&mut self.buffer).await;
        self.shards.release_all().await;
    }
}
