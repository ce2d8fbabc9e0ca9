//! The step catalogue: every kind of step, its properties, and the one written order of an
//! upgrade and of a rollback. The journal, `octoup plan`, `octoup status`, the forward run,
//! the undo and the rollback all derive from [`FORWARD`] and [`ROLLBACK`].
//!
//! Order (design, "HA"): preflight → stage installers → back up master key and license →
//! [outage] maintenance on → drain every node and wait for its tasks → delete watchdogs →
//! stop every node → database backup + verify, overlapping the installs on every node →
//! the one `database --upgrade`, on the primary → start every node → verify → recreate
//! watchdogs → undrain → maintenance restored.

use std::fmt;

use crate::config::DatabaseStrategy;

/// Declares the kinds once: the enum, its journal names, and the list of all.
macro_rules! step_kinds {
    ($($(#[$doc:meta])* $kind:ident => $name:literal,)*) => {
        /// A kind of step. Its journal name is [`StepKind::name`]; per-node kinds run once
        /// per node.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum StepKind {
            $($(#[$doc])* $kind,)*
        }

        /// Every kind, for parsing journal names.
        const ALL: &[StepKind] = &[$(StepKind::$kind,)*];

        impl StepKind {
            /// The name in the journal, the report and `--json` (a stable interface).
            pub fn name(self) -> &'static str {
                match self {
                    $(StepKind::$kind => $name,)*
                }
            }
        }
    };
}

step_kinds! {
    Preflight => "preflight",
    StageInstaller => "stage-installer",
    StageRollback => "stage-rollback-installer",
    BackupMasterKey => "backup-master-key",
    BackupLicense => "backup-license",
    MaintenanceOn => "maintenance-on",
    Drain => "drain",
    DeleteWatchdog => "delete-watchdog",
    Stop => "stop",
    BackupDatabase => "backup-database",
    VerifyBackup => "verify-backup",
    /// The snapshot strategy's rollback point, right after the last stop.
    SnapshotDatabase => "snapshot-database",
    /// The azure-copy strategy's rollback point.
    CopyDatabase => "copy-database",
    Install => "install",
    UpgradeDatabase => "upgrade-database",
    Start => "start",
    Verify => "verify",
    CreateWatchdog => "create-watchdog",
    Undrain => "undrain",
    MaintenanceRestore => "maintenance-restore",
    /// Drops a held snapshot or copy after success, or records until when it is kept.
    ReleaseRollbackPoint => "release-rollback-point",
    /// The rollback (see rollback.rs).
    RollbackStop => "rollback-stop",
    RollbackRestore => "rollback-restore-database",
    RollbackInstall => "rollback-install",
    RollbackStart => "rollback-start",
    RollbackVerify => "rollback-verify",
    RollbackWatchdog => "rollback-create-watchdog",
    RollbackDrain => "rollback-drain",
    RollbackMaintenance => "rollback-maintenance",
}

use StepKind::*;

/// Where a step of a phase runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// Once, for the whole installation.
    Once,
    /// On every node at once.
    EachNode,
    /// On the primary only (the one database upgrade).
    Primary,
    /// On every node at once; with `[cluster] canary`, on the primary first.
    EachNodeCanary,
}

/// One phase of a procedure: steps that run together.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Phase {
    Step(StepKind, Scope),
    /// The database backup (and its verification) overlaps the installs on every node:
    /// the installer does not touch the database. Without a staged original installer a
    /// failed backup could not be undone after an install, so they run one after another.
    BackupWhileInstalling,
    /// The strategy's database steps that run while Octopus still serves (the snapshot
    /// strategy's verified backup).
    DatabaseBeforeOutage,
}

/// Where a strategy's database steps go. Written once per strategy; the phases above
/// place them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Run in [`Phase::DatabaseBeforeOutage`].
    pub before_outage: &'static [StepKind],
    /// Run in [`Phase::BackupWhileInstalling`], alongside the installs.
    pub in_outage: &'static [StepKind],
    /// The point is held on the server and released (or kept) at the end.
    pub holds_point: bool,
}

impl Layout {
    pub(crate) fn of(strategy: DatabaseStrategy) -> Layout {
        match strategy {
            DatabaseStrategy::Snapshot => Layout {
                before_outage: &[BackupDatabase, VerifyBackup],
                in_outage: &[SnapshotDatabase],
                holds_point: true,
            },
            DatabaseStrategy::AzureCopy => Layout {
                before_outage: &[],
                in_outage: &[CopyDatabase],
                holds_point: true,
            },
            DatabaseStrategy::External => Layout {
                before_outage: &[],
                in_outage: &[BackupDatabase],
                holds_point: false,
            },
            DatabaseStrategy::Auto
            | DatabaseStrategy::Native
            | DatabaseStrategy::Url
            | DatabaseStrategy::Rds => Layout {
                before_outage: &[],
                in_outage: &[BackupDatabase, VerifyBackup],
                holds_point: false,
            },
        }
    }
}

impl Layout {
    /// The layout of a chosen strategy; native when none was chosen.
    pub(crate) fn of_choice(choice: Option<&crate::database::Choice>) -> Layout {
        Layout::of(choice.map_or(DatabaseStrategy::Native, |c| c.strategy))
    }

    /// Whether a step of `kind` is part of the outage with this layout.
    pub(crate) fn in_outage(&self, kind: StepKind) -> bool {
        kind.in_outage() && !self.before_outage.contains(&kind)
    }
}

impl Default for Layout {
    fn default() -> Layout {
        Layout::of(DatabaseStrategy::Native)
    }
}

/// The upgrade, in order. Written once.
pub(crate) const FORWARD: &[Phase] = &[
    Phase::Step(Preflight, Scope::Once),
    Phase::Step(StageInstaller, Scope::Once),
    Phase::Step(StageRollback, Scope::Once),
    Phase::Step(BackupMasterKey, Scope::Once),
    Phase::Step(BackupLicense, Scope::Once),
    Phase::DatabaseBeforeOutage,
    Phase::Step(MaintenanceOn, Scope::Once),
    Phase::Step(Drain, Scope::EachNode),
    Phase::Step(DeleteWatchdog, Scope::EachNode),
    Phase::Step(Stop, Scope::EachNode),
    Phase::BackupWhileInstalling,
    Phase::Step(UpgradeDatabase, Scope::Primary),
    Phase::Step(Start, Scope::EachNodeCanary),
    Phase::Step(Verify, Scope::Once),
    Phase::Step(CreateWatchdog, Scope::EachNode),
    Phase::Step(Undrain, Scope::EachNode),
    Phase::Step(MaintenanceRestore, Scope::Once),
    Phase::Step(ReleaseRollbackPoint, Scope::Once),
];

/// The rollback, in order (Octopus: "rollback is restore the database, reinstall the
/// previous MSI"). Written once.
pub(crate) const ROLLBACK: &[Phase] = &[
    Phase::Step(RollbackStop, Scope::EachNode),
    Phase::Step(RollbackRestore, Scope::Once),
    Phase::Step(RollbackInstall, Scope::EachNode),
    Phase::Step(RollbackStart, Scope::EachNode),
    Phase::Step(RollbackVerify, Scope::Once),
    Phase::Step(RollbackWatchdog, Scope::EachNode),
    Phase::Step(RollbackDrain, Scope::EachNode),
    Phase::Step(RollbackMaintenance, Scope::Once),
];

impl StepKind {
    /// The kind a journal name stands for.
    pub fn parse(name: &str) -> Option<StepKind> {
        ALL.iter().copied().find(|k| k.name() == name)
    }

    /// Runs once per node (its journal id is `name@node`).
    pub(crate) fn per_node(self) -> bool {
        matches!(
            self,
            Drain
                | DeleteWatchdog
                | Stop
                | Install
                | UpgradeDatabase
                | Start
                | CreateWatchdog
                | Undrain
                | RollbackStop
                | RollbackInstall
                | RollbackStart
                | RollbackWatchdog
                | RollbackDrain
        )
    }

    /// Part of the outage: between the first stop and every node serving (with the native
    /// layout; [`Layout::in_outage`] knows a strategy that backs up before it).
    pub fn in_outage(self) -> bool {
        matches!(
            self,
            Stop | BackupDatabase
                | VerifyBackup
                | SnapshotDatabase
                | CopyDatabase
                | Install
                | UpgradeDatabase
                | Start
                | Verify
        )
    }

    /// Changes the installation once started (the steps before it only read, download
    /// and copy): a run that reached none of them has nothing to undo or roll back.
    pub(crate) fn changes_installation(self) -> bool {
        !matches!(
            self,
            Preflight | StageInstaller | StageRollback | BackupMasterKey | BackupLicense
        )
    }

    /// Reversed by the undo after a failure before the database upgrade, in the reverse
    /// of [`FORWARD`].
    pub(crate) fn has_undo(self) -> bool {
        matches!(
            self,
            MaintenanceOn | Drain | DeleteWatchdog | Stop | Install
        )
    }

    /// A step of the rollback procedure.
    pub(crate) fn is_rollback(self) -> bool {
        ROLLBACK
            .iter()
            .any(|p| matches!(p, Phase::Step(k, _) if *k == self))
    }

    /// Once done it is never repeated after a crash (the others run again and confirm).
    pub(crate) fn never_repeated(self) -> bool {
        matches!(self, Install | UpgradeDatabase)
    }

    /// Seconds the step takes when nothing better is known (a mid-size installation).
    pub(crate) fn default_estimate(self) -> f64 {
        match self {
            StageInstaller | StageRollback => 120.0,
            BackupMasterKey | BackupLicense | MaintenanceOn | MaintenanceRestore => 2.0,
            Drain => 5.0,
            DeleteWatchdog | CreateWatchdog | Undrain => 3.0,
            Stop => 30.0,
            BackupDatabase => 300.0,
            VerifyBackup => 120.0,
            SnapshotDatabase => 5.0,
            CopyDatabase => 300.0,
            ReleaseRollbackPoint => 2.0,
            Install => 180.0,
            UpgradeDatabase => 300.0,
            Start => 90.0,
            Verify => 5.0,
            _ => 1.0,
        }
    }
}

impl fmt::Display for StepKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One step of a run: a kind, and the node for per-node kinds.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct StepId {
    pub kind: StepKind,
    pub node: Option<String>,
}

impl StepId {
    pub(crate) fn once(kind: StepKind) -> StepId {
        StepId { kind, node: None }
    }

    pub(crate) fn on(kind: StepKind, node: &str) -> StepId {
        StepId {
            kind,
            node: Some(node.to_string()),
        }
    }

    /// `name` or `name@node`, as in the journal.
    pub(crate) fn key(&self) -> String {
        crate::journal::step_id(self.kind.name(), self.node.as_deref())
    }
}

impl fmt::Display for StepId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key())
    }
}

/// The steps of `phases` for these nodes, in journal order. `primary` runs the database
/// upgrade; without `rollback` no original installer is staged; `layout` places the
/// strategy's database steps.
pub(crate) fn steps(
    phases: &[Phase],
    nodes: &[String],
    primary: &str,
    rollback: bool,
    layout: Layout,
) -> Vec<StepId> {
    let mut out = Vec::new();
    let mut push = |kind: StepKind, scope: Scope| match scope {
        Scope::Once => out.push(StepId::once(kind)),
        Scope::Primary => out.push(StepId::on(kind, primary)),
        Scope::EachNode | Scope::EachNodeCanary => {
            out.extend(nodes.iter().map(|n| StepId::on(kind, n)));
        }
    };
    for phase in phases {
        match *phase {
            Phase::Step(StageRollback, _) if !rollback => {}
            Phase::Step(ReleaseRollbackPoint, _) if !layout.holds_point => {}
            Phase::Step(kind, scope) => push(kind, scope),
            Phase::DatabaseBeforeOutage => {
                for &kind in layout.before_outage {
                    push(kind, Scope::Once);
                }
            }
            Phase::BackupWhileInstalling => {
                for &kind in layout.in_outage {
                    push(kind, Scope::Once);
                }
                push(Install, Scope::EachNode);
            }
        }
    }
    out
}

/// The kinds that are undone after an early failure, in undo order (the reverse of
/// [`FORWARD`]).
pub(crate) fn undo_order() -> Vec<StepKind> {
    let mut kinds: Vec<StepKind> = steps(FORWARD, &["n".into()], "n", true, Layout::default())
        .into_iter()
        .map(|s| s.kind)
        .filter(|k| k.has_undo())
        .collect();
    kinds.reverse();
    kinds
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(ids: &[StepId]) -> Vec<String> {
        ids.iter().map(StepId::key).collect()
    }

    #[test]
    fn the_upgrade_has_one_database_upgrade_on_the_primary_after_every_stop() {
        let nodes = vec!["A".to_string(), "B".to_string()];
        let s = keys(&steps(FORWARD, &nodes, "B", true, Layout::default()));
        assert_eq!(
            s.iter()
                .filter(|k| k.starts_with("upgrade-database"))
                .count(),
            1
        );
        assert!(s.contains(&"upgrade-database@B".to_string()));
        let pos = |key: &str| s.iter().position(|k| k == key).unwrap();
        assert!(pos("maintenance-on") < pos("drain@A"));
        assert!(pos("stop@B") < pos("backup-database"));
        assert!(pos("verify-backup") < pos("upgrade-database@B"));
        assert!(pos("install@A") < pos("upgrade-database@B"));
        assert!(pos("upgrade-database@B") < pos("start@A"));
        assert!(pos("undrain@B") < pos("maintenance-restore"));
        assert!(
            !keys(&steps(FORWARD, &nodes, "A", false, Layout::default()))
                .contains(&"stage-rollback-installer".to_string())
        );
    }

    #[test]
    fn rollback_steps_are_in_order_per_node() {
        let ids = keys(&steps(
            ROLLBACK,
            &["A".into(), "B".into()],
            "A",
            true,
            Layout::default(),
        ));
        assert_eq!(
            ids,
            [
                "rollback-stop@A",
                "rollback-stop@B",
                "rollback-restore-database",
                "rollback-install@A",
                "rollback-install@B",
                "rollback-start@A",
                "rollback-start@B",
                "rollback-verify",
                "rollback-create-watchdog@A",
                "rollback-create-watchdog@B",
                "rollback-drain@A",
                "rollback-drain@B",
                "rollback-maintenance",
            ]
        );
        assert!(RollbackRestore.is_rollback());
        assert!(!UpgradeDatabase.is_rollback());
    }

    #[test]
    fn names_round_trip_and_per_node_matches_the_order() {
        for &kind in ALL {
            assert_eq!(StepKind::parse(kind.name()), Some(kind));
        }
        let ids = steps(FORWARD, &["A".into()], "A", true, Layout::default())
            .into_iter()
            .chain(steps(ROLLBACK, &["A".into()], "A", true, Layout::default()));
        for id in ids {
            assert_eq!(id.node.is_some(), id.kind.per_node(), "{id}");
        }
        assert_eq!(StepKind::parse("nonsense"), None);
    }

    #[test]
    fn the_undo_reverses_the_outage_steps_that_change_something() {
        assert_eq!(
            undo_order(),
            [Install, Stop, DeleteWatchdog, Drain, MaintenanceOn]
        );
    }
}
