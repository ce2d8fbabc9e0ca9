//! Helpers over the simulator's event history (`octoup-sim history --json`: one JSON object
//! per event, with a `kind`).

use serde_json::Value;

/// Index of the first history event of `kind` matching `pred`.
pub fn find(history: &[Value], kind: &str, pred: impl Fn(&Value) -> bool) -> Option<usize> {
    history.iter().position(|e| e["kind"] == kind && pred(e))
}

/// Index of the first event of `kind`; panics naming the kinds there are.
pub fn first(history: &[Value], kind: &str) -> usize {
    find(history, kind, |_| true).unwrap_or_else(|| panic!("no {kind} event in {}", kinds(history)))
}

/// Index of the last event of `kind`; panics naming the kinds there are.
pub fn last(history: &[Value], kind: &str) -> usize {
    history
        .iter()
        .rposition(|e| e["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} event in {}", kinds(history)))
}

/// How many events are of `kind`.
pub fn count(history: &[Value], kind: &str) -> usize {
    history.iter().filter(|e| e["kind"] == kind).count()
}

/// The kinds in order, without API requests and stand-in invocations, for messages.
pub fn kinds(history: &[Value]) -> String {
    history
        .iter()
        .map(|e| e["kind"].as_str().unwrap_or("?"))
        .filter(|k| *k != "api-request" && *k != "standin-invoked")
        .collect::<Vec<_>>()
        .join(" ")
}

/// Events that change the installation (everything but reads, requests and invocations).
pub fn mutating(history: &[Value]) -> Vec<String> {
    const READ_ONLY: &[&str] = &[
        "installation-created",
        "api-request",
        "standin-invoked",
        "fault-fired",
        "task-queued",
        "task-started",
        "task-finished",
    ];
    history
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .filter(|k| !READ_ONLY.contains(k))
        .map(str::to_string)
        .collect()
}
