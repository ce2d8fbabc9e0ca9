//! The simulator daemon (`octoup-sim serve --dir DIR`): the feed and download server, one
//! REST API listener per node, and the workload ticker.
//!
//! Every ~25 ms it advances the tasks and reconciles the node listeners with the state: a
//! node's API port is bound while its service is Running and closed otherwise, together
//! with every open connection, so a stopped node refuses connections like the real service.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};
use tower::ServiceExt as _;

use super::shared::{Shared, blocking};
use crate::state::{DaemonInfo, ServiceState, State, Store, StoreError};

/// How often the daemon advances the workload and reconciles listeners (real time).
const TICK: Duration = Duration::from_millis(25);

/// Consecutive ticks without a state file before the daemon exits on its own (the
/// directory was deleted, e.g. a test's temporary directory): about one second.
const ORPHAN_TICKS: u32 = 40;

/// Runs the daemon for the installation in `dir` until `POST /__sim/shutdown` (see
/// [`super::feed::SHUTDOWN_PATH`]) or until the directory disappears.
pub fn serve(dir: &Path) -> anyhow::Result<()> {
    let store = Store::open(dir)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(run(store.clone()));
    // Hung handlers (fault `hang`) must not keep the process alive.
    runtime.shutdown_timeout(Duration::from_millis(500));
    result
}

async fn run(store: Store) -> anyhow::Result<()> {
    let state = blocking({
        let store = store.clone();
        move || store.snapshot()
    })
    .await??;
    let shared = Arc::new(Shared {
        store,
        clock: state.clock(),
        shutdown: Notify::new(),
        served_versions: Mutex::new(HashMap::new()),
    });

    let feed_listener = TcpListener::bind(("127.0.0.1", state.feed_port))
        .await
        .with_context(|| {
            format!(
                "cannot listen on 127.0.0.1:{} for the feed server; is another octoup-sim daemon running for this directory? Stop it with `octoup-sim down`",
                state.feed_port
            )
        })?;
    let feed_server = tokio::spawn(serve_listener(
        feed_listener,
        super::feed::router(shared.clone()),
    ));

    // The SQL Server port (none in a state file written before it existed).
    let sql_server = if state.sql_port != 0 {
        let listener = TcpListener::bind(("127.0.0.1", state.sql_port))
            .await
            .with_context(|| {
                format!(
                    "cannot listen on 127.0.0.1:{} for the SQL Server port",
                    state.sql_port
                )
            })?;
        Some(tokio::spawn(serve_listener(
            listener,
            super::sqlport::router(shared.clone()),
        )))
    } else {
        None
    };

    // The rehearsal SQL Server's port serves its own store (its databases, its login).
    let rehearsal_sql = match (state.rehearsal_sql_port, shared.store.rehearsal_server()) {
        (0, _) | (_, Err(_)) => None,
        (port, Ok(store)) => {
            let listener = TcpListener::bind(("127.0.0.1", port))
                .await
                .with_context(|| {
                    format!("cannot listen on 127.0.0.1:{port} for the rehearsal SQL Server port")
                })?;
            let own = Arc::new(Shared {
                store,
                clock: state.clock(),
                shutdown: Notify::new(),
                served_versions: Mutex::new(HashMap::new()),
            });
            Some(tokio::spawn(serve_listener(
                listener,
                super::sqlport::router(own),
            )))
        }
    };

    let pid = std::process::id();
    shared
        .update(move |s| {
            s.daemon = Some(DaemonInfo {
                pid,
                started_at: jiff::Timestamp::now(),
            });
            Ok::<_, StoreError>(())
        })
        .await?;

    let mut nodes = NodeServers::default();
    let mut missing = 0u32;
    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = shared.shutdown.notified() => break,
            _ = interval.tick() => {}
        }
        let store = shared.store.clone();
        match blocking(move || crate::workload::tick(&store)).await {
            Ok(Ok(state)) => {
                missing = 0;
                shared.note_served_versions(&state);
                nodes.reconcile(&state, &shared).await;
            }
            Ok(Err(e)) | Err(e) => {
                // The directory (or its state file) is gone, e.g. a test's temporary
                // directory: nobody can ask this daemon to stop any more.
                if !shared.store.state_path().is_file() {
                    missing += 1;
                    if missing >= ORPHAN_TICKS {
                        eprintln!("octoup-sim: the state file is gone; the daemon exits");
                        break;
                    }
                } else {
                    missing = 0;
                    eprintln!("octoup-sim: daemon tick failed: {e}");
                }
            }
        }
    }

    nodes.stop_all();
    feed_server.abort();
    for server in [sql_server, rehearsal_sql].into_iter().flatten() {
        server.abort();
    }
    let store = shared.store.clone();
    let _ = blocking(move || {
        store.update(|s| {
            if s.daemon.as_ref().is_some_and(|d| d.pid == pid) {
                s.daemon = None;
            }
            Ok::<_, StoreError>(())
        })
    })
    .await;
    Ok(())
}

/// Serves one node's API on `bind` (the container stand-in: `0.0.0.0:8080`) against the
/// installation in `dir`, ticking its workload, until SIGTERM/Ctrl-C or the directory
/// disappears. `ready` is called once the port is bound.
pub(crate) fn serve_container(
    dir: &Path,
    bind: std::net::SocketAddr,
    ready: impl FnOnce() + Send,
) -> anyhow::Result<()> {
    let store = Store::open(dir)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(async move {
        let state = blocking({
            let store = store.clone();
            move || store.snapshot()
        })
        .await??;
        let node = state
            .nodes
            .first()
            .map(|n| n.name.clone())
            .unwrap_or_default();
        let shared = Arc::new(Shared {
            store,
            clock: state.clock(),
            shutdown: Notify::new(),
            served_versions: Mutex::new(HashMap::new()),
        });
        let listener = TcpListener::bind(bind)
            .await
            .with_context(|| format!("cannot listen on {bind}"))?;
        let server = tokio::spawn(serve_listener(
            listener,
            super::api::router(shared.clone(), &node),
        ));
        ready();
        let mut interval = tokio::time::interval(TICK);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        // As PID 1 in a container SIGTERM does nothing without a handler.
        let mut stop = crate::platform::Stop::new()?;
        loop {
            tokio::select! {
                () = stop.requested() => break,
                _ = interval.tick() => {}
            }
            let store = shared.store.clone();
            if let Ok(Ok(state)) = blocking(move || crate::workload::tick(&store)).await {
                shared.note_served_versions(&state);
            } else if !shared.store.state_path().is_file() {
                break;
            }
        }
        server.abort();
        Ok::<_, anyhow::Error>(())
    });
    runtime.shutdown_timeout(Duration::from_millis(500));
    result
}

/// The API listeners of the nodes whose service runs.
#[derive(Default)]
struct NodeServers {
    running: HashMap<String, NodeServer>,
    /// Ports we failed to bind, so the warning is printed once, not every tick.
    warned: HashMap<String, u16>,
}

struct NodeServer {
    port: u16,
    task: JoinHandle<()>,
}

impl NodeServers {
    async fn reconcile(&mut self, state: &State, shared: &Arc<Shared>) {
        self.running.retain(|name, server| {
            let keep = state
                .node(name)
                .is_some_and(|n| n.service == ServiceState::Running && n.api_port == server.port);
            if !keep {
                // Dropping the task closes the listener and every connection it owns.
                server.task.abort();
            }
            keep
        });
        for node in &state.nodes {
            if node.service != ServiceState::Running || self.running.contains_key(&node.name) {
                continue;
            }
            match TcpListener::bind(("127.0.0.1", node.api_port)).await {
                Ok(listener) => {
                    self.warned.remove(&node.name);
                    let router = super::api::router(shared.clone(), &node.name);
                    let task = tokio::spawn(serve_listener(listener, router));
                    self.running.insert(
                        node.name.clone(),
                        NodeServer {
                            port: node.api_port,
                            task,
                        },
                    );
                }
                Err(e) => {
                    if self.warned.insert(node.name.clone(), node.api_port) != Some(node.api_port) {
                        eprintln!(
                            "octoup-sim: cannot listen on 127.0.0.1:{} for {}: {e}; retrying",
                            node.api_port, node.name
                        );
                    }
                }
            }
        }
    }

    fn stop_all(&mut self) {
        for (_, server) in self.running.drain() {
            server.task.abort();
        }
    }
}

/// Accepts connections until the task is aborted; aborting drops the listener and (through
/// the JoinSet) every open connection, so clients see the node vanish.
pub(crate) async fn serve_listener(listener: TcpListener, router: Router) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve_connection(stream, router.clone()));
                }
                // Out of file descriptors and the like: back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve_connection(stream: TcpStream, router: Router) {
    let _ = stream.set_nodelay(true);
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        router.clone().oneshot(request.map(Body::new))
    });
    // Errors here are the client's or a simulated drop; nothing to report.
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await;
}
