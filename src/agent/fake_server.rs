//! The HTTP server under each fake messenger API (tests, benchmarks, the
//! walkthrough): a router on 127.0.0.1 with a random free port, on a
//! thread and runtime of its own, stopped and joined when dropped.

use std::net::SocketAddr;

use axum::Router;

/// A running fake server.
pub(crate) struct FakeServer {
    addr: SocketAddr,
    handle: tokio::runtime::Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeServer {
    /// Serves `app` with `workers` worker threads.
    ///
    /// # Errors
    /// When no loopback port can be bound or no runtime started.
    pub(crate) fn start(workers: usize, app: Router) -> std::io::Result<Self> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        // The runtime is built on the server's own thread, which then
        // drives the server; its handle comes back for the fake's own work.
        let (ready, handle) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(workers)
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(err) => {
                    let _ = ready.send(Err(err));
                    return;
                }
            };
            let _ = ready.send(Ok(runtime.handle().clone()));
            runtime.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                    return;
                };
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await;
            });
        });
        let handle = handle
            .recv()
            .map_err(|_| std::io::Error::other("the fake server's thread stopped"))??;
        Ok(Self {
            addr,
            handle,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Where it listens.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its runtime, for work the fake starts itself (webhook deliveries).
    pub(crate) fn handle(&self) -> &tokio::runtime::Handle {
        &self.handle
    }
}

impl std::fmt::Debug for FakeServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
