//! Ctrl+C (or SIGTERM) while `produce` or `send` runs: stop taking input, deliver
//! what was already sent (each record still gets its report), then exit 130. A
//! second signal while that runs exits at once (records not yet reported may or
//! may not have been written).

use tokio::sync::watch;

use crate::error::exit;

/// Watches for the first interrupt once created.
pub(crate) struct Interrupt {
    fired: watch::Receiver<bool>,
}

impl Interrupt {
    /// Starts watching (inside the runtime).
    pub(crate) fn watch() -> Self {
        let (tx, rx) = watch::channel(false);
        tokio::spawn(async move {
            signal().await;
            let _ = tx.send(true);
            eprintln!("cafe: interrupted; delivering the records already sent (interrupt again to quit at once)");
            signal().await;
            std::process::exit(i32::from(exit::INTERRUPTED));
        });
        Self { fired: rx }
    }

    /// True once an interrupt came.
    pub(crate) fn fired(&self) -> bool {
        *self.fired.borrow()
    }

    /// Resolves when an interrupt comes (at once if one came already).
    pub(crate) async fn wait(&mut self) {
        if self.fired.wait_for(|f| *f).await.is_err() {
            // The watching task is gone (runtime shutting down): no interrupt will come.
            std::future::pending::<()>().await;
        }
    }
}

/// The next SIGINT or SIGTERM (also what ends `consume`: it closes cleanly and exits 0).
pub(crate) async fn signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
