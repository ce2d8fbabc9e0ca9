//! Knowing before the outage that the upgrade will work, and checking after it that it did.
//!
//! Every check yields [`Finding`]s (stable id, severity, what was found, why it matters for
//! this target, the fix). The same checks run in `octoup doctor`, `octoup plan` and
//! `upgrade`'s preflight; blockers stop `upgrade` before anything changes. The rules that
//! depend on the target version are data (`data/compatibility.toml`, [`rules`]).
//!
//! - [`preflight`]: the basic checks (server, key, nodes, versions, target, license, disk)
//!   and the [`preflight::Facts`] every later check and the plan read.
//! - [`finding`]: the finding, its severity and acceptance.
//! - [`rules`]: the compatibility rules.
//! - `database`: SQL Server checks through the configured `sqlcmd`.
//! - `octopus`: checks through the Octopus API (integrity check, host OS, targets, license,
//!   queue).
//!   `integrity` (the System Integrity Check task) and `machines` (targets and workers in
//!   every space) serve it and `verify`.
//! - `verify`: the checks after the start (`octoup verify`); `tentacles`: the vendor's
//!   Tentacle upgrade in batches behind a canary.

pub mod database;
pub mod finding;
pub(crate) mod integrity;
pub(crate) mod machines;
pub(crate) mod octopus;
pub mod preflight;
pub mod rules;
pub(crate) mod tentacles;
pub mod verify;

use serde::Serialize;

pub use database::DatabaseFacts;
pub use finding::{Acceptance, AcceptedBy, Finding, Findings, Severity};
pub use rules::Rules;

use crate::config::Config;
use crate::version::Version;
use preflight::{Connection, Facts};

/// What a check may read: the connection, what the preflight already found, the target and
/// the rules.
pub(crate) struct Context<'a> {
    pub conn: &'a Connection,
    pub facts: &'a Facts,
    /// The version to be installed, when one was chosen.
    pub target: Option<&'a Version>,
    pub rules: &'a Rules,
}

impl Context<'_> {
    pub fn config(&self) -> &Config {
        &self.conn.config
    }
}

/// `octoup doctor --json`: the design's stable shape, `{"target", "hosting", "findings"}`.
#[derive(Debug, Clone, Serialize)]
pub struct DoctorReport {
    pub current: String,
    pub target: Option<String>,
    /// The detected SQL hosting (`self-managed`, `azure-sql-database`, …), when known.
    pub hosting: Option<String>,
    pub findings: Findings,
    /// What the database checks found (version, sizes, rights).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<DatabaseFacts>,
}

impl DoctorReport {
    pub fn from_facts(facts: &Facts) -> DoctorReport {
        DoctorReport {
            current: facts.version.clone(),
            target: facts
                .target
                .as_ref()
                .and_then(|t| t.target.as_ref())
                .map(ToString::to_string),
            hosting: facts.hosting.clone(),
            findings: facts.findings.clone(),
            database: facts.database.clone(),
        }
    }

    pub fn has_blockers(&self) -> bool {
        self.findings.has_blockers()
    }
}

/// What the deep checks found.
#[derive(Debug, Default)]
pub(crate) struct Deep {
    pub findings: Findings,
    /// The SQL hosting the database checks detected.
    pub hosting: Option<String>,
    /// What the database checks found.
    pub database: Option<DatabaseFacts>,
}

/// The deep checks, run after the basic preflight has found the nodes and the target. Each
/// check group adds its findings; none can fail the whole doctor (a check that cannot run is
/// a warning): the database through sqlcmd, then Octopus through its API.
pub(crate) async fn deep_checks(ctx: &Context<'_>) -> Deep {
    let mut deep = Deep::default();
    let (db, found) = database::check(ctx).await;
    deep.findings.extend(found);
    deep.hosting = db.hosting.clone();
    deep.database = Some(db);
    deep.findings.extend(octopus::checks(ctx).await.0);
    deep
}

/// The acceptance a configuration and a command line give.
pub fn acceptance(config: &Config, flag: &[String]) -> Acceptance {
    Acceptance {
        config: config.doctor.accept.clone(),
        flag: flag.to_vec(),
        strict: config.doctor.strict,
    }
}
