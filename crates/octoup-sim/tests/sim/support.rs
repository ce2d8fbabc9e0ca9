//! A running simulated installation for tests (the kit's [`octoup_testkit::Sim`]: `octoup-sim
//! up` in a temporary directory, `down` on drop), an HTTP client, and direct access to the
//! state store for setting the scene.

use std::path::Path;
use std::time::{Duration, Instant};

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
    // Last: stops the daemon, then removes the directory.
    _sim: octoup_testkit::Sim,
}

impl Sim {
    /// Starts an installation from a spec (TOML text) and waits until it answers.
    pub async fn start(spec: &str) -> Sim {
        let sim = octoup_testkit::Sim::up(spec);
        let store = Store::open(sim.dir()).unwrap();
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
            store,
            _sim: sim,
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
