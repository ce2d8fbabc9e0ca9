//! A running simulated installation for tests: `octoup-sim up` in a temporary directory,
//! an HTTP client, and direct access to the state store for setting the scene.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use octoup_sim::faults::FaultSpec;
use octoup_sim::state::{State, Store, StoreError};
use reqwest::{Method, Response};
use serde_json::Value;

pub struct Sim {
    pub store: Store,
    pub feed: String,
    /// Base URL of each node's API, in node order.
    pub nodes: Vec<String>,
    pub admin: String,
    pub readonly: String,
    pub client: reqwest::Client,
    feed_port: u16,
    // Last, so the daemon is asked to stop before the directory goes (it would also exit
    // on its own about a second after the directory disappears).
    dir: tempfile::TempDir,
}

impl Sim {
    /// Starts an installation from a spec (TOML text) and waits until it answers.
    pub async fn start(spec: &str) -> Sim {
        let dir = tempfile::tempdir().unwrap();
        let spec_path = dir.path().join("spec.toml");
        std::fs::write(&spec_path, spec).unwrap();
        let sim_dir = dir.path().join("sim");
        up(&sim_dir, &spec_path);
        let store = Store::open(&sim_dir).unwrap();
        let state = store.snapshot().unwrap();
        let sim = Sim {
            feed: format!("http://127.0.0.1:{}", state.feed_port),
            nodes: state
                .nodes
                .iter()
                .map(|n| format!("http://127.0.0.1:{}", n.api_port))
                .collect(),
            admin: state.secrets.admin_api_key.clone(),
            readonly: state.secrets.readonly_api_key.clone(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
            feed_port: state.feed_port,
            store,
            dir,
        };
        for i in 0..sim.nodes.len() {
            sim.wait_answering(i).await;
        }
        sim
    }

    pub fn dir(&self) -> &Path {
        self.store.dir()
    }

    pub fn url(&self, node: usize, path: &str) -> String {
        format!("{}{path}", self.nodes[node])
    }

    /// A request to a node's API with the admin key.
    pub async fn call(
        &self,
        method: Method,
        node: usize,
        path: &str,
        body: Option<Value>,
    ) -> Response {
        let mut request = self
            .client
            .request(method, self.url(node, path))
            .header("X-Octopus-ApiKey", &self.admin);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.unwrap()
    }

    /// A request to a node's API without any key.
    pub async fn anon(&self, node: usize, path: &str) -> Response {
        self.client.get(self.url(node, path)).send().await.unwrap()
    }

    pub async fn get(&self, node: usize, path: &str) -> Response {
        self.call(Method::GET, node, path, None).await
    }

    /// GET with the admin key, expecting 200; the JSON body.
    pub async fn get_json(&self, node: usize, path: &str) -> Value {
        let response = self.get(node, path).await;
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.unwrap()
    }

    pub async fn put(&self, node: usize, path: &str, body: Value) -> Response {
        self.call(Method::PUT, node, path, Some(body)).await
    }

    /// Changes the state directly (what the stand-ins or another node would do).
    pub fn update(&self, f: impl FnOnce(&mut State)) {
        update(&self.store, f);
    }

    pub fn state(&self) -> State {
        self.store.snapshot().unwrap()
    }

    /// Adds a fault as `octoup-sim fault` does.
    pub fn fault(&self, op: &str, action: &str, node: Option<&str>, times: u32) {
        add_fault(&self.store, op, action, node, times);
    }

    /// The `kind`s of the history so far.
    pub fn history_kinds(&self) -> Vec<String> {
        self.store
            .history()
            .unwrap()
            .iter()
            .map(|r| r.event.kind())
            .collect()
    }

    /// The history as JSON objects.
    pub fn history(&self) -> Vec<Value> {
        self.store
            .history()
            .unwrap()
            .iter()
            .map(|r| serde_json::to_value(r).unwrap())
            .collect()
    }

    /// Waits until node `i` answers `GET /api`.
    pub async fn wait_answering(&self, i: usize) {
        let url = self.url(i, "/api");
        wait_until(Duration::from_secs(10), || async {
            self.client.get(&url).send().await.is_ok()
        })
        .await;
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        // `octoup-sim down`'s control request, sent by hand so Drop needs no runtime; the
        // answer is read so the daemon has the request before the connection closes.
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.feed_port)) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = stream.write_all(
                b"POST /__sim/shutdown HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
            let _ = stream.read_to_end(&mut Vec::new());
        }
        let _ = &self.dir;
    }
}

/// Runs `octoup-sim up --dir DIR --spec SPEC`.
fn up(dir: &Path, spec: &Path) {
    Command::cargo_bin("octoup-sim")
        .unwrap()
        .args(["up", "--dir"])
        .arg(dir)
        .arg("--spec")
        .arg(spec)
        .timeout(Duration::from_secs(60))
        .assert()
        .success();
}

/// Polls `condition` every 10 ms until it holds; panics after `timeout`.
pub async fn wait_until<F, Fut>(timeout: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    while !condition().await {
        assert!(
            start.elapsed() < timeout,
            "condition not met within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The keys of a JSON object, sorted.
pub fn keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"))
        .keys()
        .cloned()
        .collect();
    keys.sort();
    keys
}

/// `2024-09-23T14:42:30.123+00:00`.
pub fn is_octopus_timestamp(value: &Value) -> bool {
    let Some(s) = value.as_str() else {
        return false;
    };
    s.len() == 29
        && s.ends_with("+00:00")
        && s.as_bytes()[19] == b'.'
        && s.parse::<jiff::Timestamp>().is_ok()
}

/// Changes `store`'s state directly (what the stand-ins or another node would do).
pub fn update(store: &Store, f: impl FnOnce(&mut State)) {
    store
        .update(|s| {
            f(s);
            Ok::<_, StoreError>(())
        })
        .unwrap();
}

/// Adds a fault to `store` as `octoup-sim fault` does.
pub fn add_fault(store: &Store, op: &str, action: &str, node: Option<&str>, times: u32) {
    let fault = FaultSpec::parse(op, action, node.map(str::to_string), times).unwrap();
    update(store, |s| s.faults.push(fault));
}
