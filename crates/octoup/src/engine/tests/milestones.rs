//! The milestones the engine reports through `Events::milestone` (what notifications
//! send): the outage's start and end once each, with the nodes on the version they serve.

use std::sync::Mutex;

use super::*;
use crate::config::NotifyEvent;
use crate::engine::Milestone;

#[derive(Default)]
struct Recorder(Mutex<Vec<Milestone>>);

impl Events for Recorder {
    fn milestone(&self, m: &Milestone) {
        self.0.lock().unwrap().push(m.clone());
    }
}

impl Recorder {
    fn seen(&self) -> Vec<(NotifyEvent, Vec<String>)> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|m| (m.event, m.nodes.iter().map(|n| n.version.clone()).collect()))
            .collect()
    }
}

#[tokio::test]
async fn an_upgrade_reports_the_outage_start_and_end_once() {
    let recorder = Arc::new(Recorder::default());
    let ran = Scenario::nodes(2).events(recorder.clone()).run().await;
    ran.assert_upgraded();
    let both = |v: &str| vec![v.to_string(), v.to_string()];
    assert_eq!(
        recorder.seen(),
        vec![
            (NotifyEvent::OutageStarted, both(FROM)),
            (NotifyEvent::OutageEnded, both(TARGET)),
        ]
    );
    let seen = recorder.0.lock().unwrap().clone();
    assert!(seen[0].outage_ongoing && seen[0].outage_seconds == Some(0.0));
    assert!(!seen[1].outage_ongoing);
    assert_eq!(seen[1].outage_seconds, ran.journal().outage_seconds());
    assert!(seen[1].backups.database.is_some(), "{:?}", seen[1].backups);
    assert_eq!(seen[1].run_id.as_deref(), Some(ran.journal().id.as_str()));
}

#[tokio::test]
async fn an_undone_run_ends_its_outage_on_the_original_version() {
    let recorder = Arc::new(Recorder::default());
    let ran = Scenario::nodes(1)
        .events(recorder.clone())
        .fault(Op::Install, None, Fault::FailOnce)
        .run()
        .await;
    ran.assert_undone();
    assert_eq!(
        recorder.seen(),
        vec![
            (NotifyEvent::OutageStarted, vec![FROM.to_string()]),
            (NotifyEvent::OutageEnded, vec![FROM.to_string()]),
        ]
    );
}

#[tokio::test]
async fn a_failure_before_the_outage_reports_no_outage() {
    let recorder = Arc::new(Recorder::default());
    let ran = Scenario::nodes(1)
        .events(recorder.clone())
        .fault(Op::Maintenance(true), None, Fault::FailOnce)
        .run()
        .await;
    ran.assert_undone();
    assert_eq!(recorder.seen(), vec![]);
}
