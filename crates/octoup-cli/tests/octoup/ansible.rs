//! The Ansible role (`integrations/ansible`) run by real `ansible-core` against a simulated
//! two-node cluster: per-host mode through the loopback sshd (the `octoup node` actions on
//! each node, one database upgrade on the primary), cluster mode from the control node
//! (`octoup upgrade`). Each upgrades, passes the invariant check, and a second run reports
//! `changed=0` and changes nothing.
//!
//! `scripts/test` installs ansible-core into `$CARGO_TARGET_DIR/ansible-venv` (or
//! `$OCTOUP_ANSIBLE_VENV`). Without it these tests fail and say what to install, unless
//! `OCTOUP_SKIP_ANSIBLE=1` opts out.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use octoup_testkit::{Ran, Scenario, Sim, mutating, octoup_bin, target_dir};
use serde_json::json;

use crate::ssh::node_config;
use crate::sshd::Sshd;

const TARGET: &str = "2024.2.9409";
const NODES: [&str; 2] = ["OCTO-NODE-01", "OCTO-NODE-02"];

/// The pinned ansible-core `scripts/test` installs (keep the two equal).
const ANSIBLE_CORE: &str = "2.19.14";

/// `integrations/ansible` in this checkout.
fn integration_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../integrations/ansible")
}

/// The venv's `ansible-playbook`, or `None` when the operator opted out.
fn ansible_playbook() -> Option<PathBuf> {
    let venv = std::env::var_os("OCTOUP_ANSIBLE_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("ansible-venv"));
    let bin = venv.join("bin").join("ansible-playbook");
    if bin.exists() {
        return Some(bin);
    }
    if std::env::var("OCTOUP_SKIP_ANSIBLE").as_deref() == Ok("1") {
        eprintln!("OCTOUP_SKIP_ANSIBLE=1: the Ansible tests are skipped");
        return None;
    }
    panic!(
        "{} is missing: the Ansible tests need ansible-core {ANSIBLE_CORE} from PyPI. `scripts/test` \
         installs it (python3 -m venv {v} && {v}/bin/pip install ansible-core=={ANSIBLE_CORE}); \
         run that, or set OCTOUP_ANSIBLE_VENV to a venv that has it, or OCTOUP_SKIP_ANSIBLE=1 to skip",
        bin.display(),
        v = venv.display()
    );
}

/// What one `ansible-playbook` run printed, and its recap per host.
struct Play {
    ran: Ran,
    /// host → (changed, failed), from the PLAY RECAP.
    recap: BTreeMap<String, (u32, u32)>,
}

impl Play {
    fn changed(&self) -> u32 {
        self.recap.values().map(|(c, _)| c).sum()
    }

    #[track_caller]
    fn expect_ok(&self) -> &Self {
        assert_eq!(
            self.ran.code, 0,
            "ansible-playbook failed:\n{}\n{}",
            self.ran.stdout, self.ran.stderr
        );
        self
    }
}

/// The recap's `host : ok=N changed=N unreachable=N failed=N ...` lines.
fn recap(stdout: &str) -> BTreeMap<String, (u32, u32)> {
    let field = |line: &str, key: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(key)?.parse().ok())
            .unwrap_or(0)
    };
    stdout
        .split("PLAY RECAP")
        .nth(1)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let (host, rest) = line.split_once(" : ")?;
            Some((
                host.trim().to_string(),
                (field(rest, "changed="), field(rest, "failed=")),
            ))
        })
        .collect()
}

/// `ansible-playbook PLAYBOOK` with `args`, in a scratch home (nothing of the user's
/// ~/.ansible is read or written) and `env`.
fn play(
    ansible: &Path,
    scratch: &Path,
    playbook: &str,
    args: &[&str],
    env: &[(&str, String)],
) -> Play {
    let mut cmd = Command::new(ansible);
    cmd.arg(integration_dir().join(playbook))
        .args(args)
        .env("ANSIBLE_HOME", scratch.join("home"))
        .env("ANSIBLE_LOCAL_TEMP", scratch.join("tmp"))
        .env("ANSIBLE_SSH_CONTROL_PATH_DIR", scratch.join("cp"))
        .env("ANSIBLE_NOCOLOR", "1")
        .env("ANSIBLE_RETRY_FILES_ENABLED", "0")
        // ansible-core refuses to start without a UTF-8 locale.
        .env("LC_ALL", "C.UTF-8")
        .env_remove("OCTOPUS_API_KEY")
        .env_remove("OCTOPUS_URL");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let ran = Ran::of(&mut cmd);
    let recap = recap(&ran.stdout);
    assert!(
        !recap.is_empty() || ran.code != 0,
        "no PLAY RECAP:\n{}\n{}",
        ran.stdout,
        ran.stderr
    );
    Play { ran, recap }
}

pub fn api_key(sim: &Sim) -> String {
    std::fs::read_to_string(sim.dir().join("api-key.txt"))
        .unwrap()
        .trim()
        .to_string()
}

/// Every node serves `version` (from its own `octoup node status`).
#[track_caller]
fn assert_serving(sim: &Sim, version: &str) {
    for n in NODES {
        let s = sim.node(&["status", "--node", n]);
        assert_eq!(s.code, 0, "{}{}", s.stdout, s.stderr);
        assert_eq!(
            s.json["service"]["api_version"], version,
            "{n}: {}",
            s.stdout
        );
        assert_eq!(s.json["service"]["answering"], true, "{n}: {}", s.stdout);
    }
}

/// The per-host inventory: both nodes reached through `sshd` (host key checked, the test's
/// client key), each with its node-side config, the stand-ins as Octopus.Server.exe and
/// sqlcmd. JSON is YAML, so the inventory needs no quoting rules of its own.
fn inventory(sim: &Sim, sshd: &Sshd, scratch: &Path) -> PathBuf {
    let octoup = octoup_bin().display().to_string();
    let dir = sim.dir().display().to_string();
    let url = sim.read_config()["server"]["url"]
        .as_str()
        .unwrap()
        .to_string();
    let sql_password = std::fs::read_to_string(sim.dir().join("sql-password.txt")).unwrap();
    let ssh_args = format!(
        "-F /dev/null -o UserKnownHostsFile={} -o GlobalKnownHostsFile=/dev/null -o IdentitiesOnly=yes",
        sshd.known_hosts().display()
    );
    let hosts: serde_json::Map<String, serde_json::Value> = NODES
        .iter()
        .enumerate()
        .map(|(i, n)| {
            (
                format!("node{}", i + 1),
                json!({
                    "octoup_node_name": n,
                    "octoup_node_config": node_config(sim, n),
                    "octoup_server_exe": [&octoup, "sim", "exe", "--dir", &dir, "--node", n],
                }),
            )
        })
        .collect();
    let inventory = json!({
        "octopus_nodes": {
            "hosts": hosts,
            "vars": {
                "ansible_host": "127.0.0.1",
                "ansible_port": sshd.port,
                "ansible_user": "root",
                "ansible_ssh_private_key_file": sshd.dir().join("id_ed25519"),
                "ansible_ssh_common_args": ssh_args,
                // raw without a terminal: the node's stderr stays apart from its JSON.
                "ansible_ssh_use_tty": false,
                "octoup_primary": "node1",
                "octoup_command": [&octoup],
                "octoup_url": url,
                "octoup_sqlcmd": [&octoup, "sim", "sqlcmd", "--dir", &dir, "-S", "127.0.0.1,1433",
                                  "-d", "master", "-U", "octoup", "-b"],
                "octoup_sql_password": sql_password.trim(),
                "octoup_database_backup_file": sim.dir().join("sql-backups").join("ansible.bak"),
                "octoup_state_dir": scratch.join("octoup-state"),
                "octoup_target": TARGET,
                "octoup_drain_wait_seconds": 60,
            }
        },
        // The control node's own tasks (API, sqlcmd, files) run with ansible's Python.
        "all": {"hosts": {"localhost": {"ansible_connection": "local",
                                        "ansible_python_interpreter": "{{ ansible_playbook_python }}"}}}
    });
    let path = scratch.join("inventory.yml");
    std::fs::write(&path, serde_json::to_string_pretty(&inventory).unwrap()).unwrap();
    path
}

/// A simulated cluster from `scenario`, the loopback sshd that reaches its nodes, and the
/// inventory: `upgrade-per-host.yml` ready to run.
struct PerHost {
    ansible: PathBuf,
    sim: Sim,
    scratch: tempfile::TempDir,
    inventory: PathBuf,
    _sshd: Sshd,
}

impl PerHost {
    /// `None` when the operator opted out of the Ansible tests.
    fn start(scenario: Scenario) -> Option<PerHost> {
        let ansible = ansible_playbook()?;
        let sshd = Sshd::start();
        let sim = scenario.nodes(2).through_octoup().start();
        let scratch = tempfile::tempdir().unwrap();
        let inventory = inventory(&sim, &sshd, scratch.path());
        Some(PerHost {
            ansible,
            sim,
            scratch,
            inventory,
            _sshd: sshd,
        })
    }

    fn play(&self) -> Play {
        play(
            &self.ansible,
            self.scratch.path(),
            "upgrade-per-host.yml",
            &["-i", self.inventory.to_str().unwrap()],
            &[("OCTOPUS_API_KEY", api_key(&self.sim))],
        )
    }
}

#[test]
fn per_host_mode_upgrades_a_cluster_over_ssh_and_a_second_run_changes_nothing() {
    // A watchdog on the primary (stop takes it away, start puts it back) and node 2 drained
    // beforehand (it must end drained: I6 is "as they began", not "undrained").
    let Some(ph) = PerHost::start(Scenario::new().watchdog(NODES[0]).drained_before(NODES[1]))
    else {
        return;
    };
    let (sim, scratch) = (&ph.sim, &ph.scratch);
    let first = ph.play();
    first.expect_ok();
    assert!(first.changed() > 0, "{}", first.ran.stdout);
    assert_serving(sim, TARGET);
    assert_eq!(sim.count("db-upgrade-finished"), 1);
    assert_eq!(sim.count("service-start-failed"), 0);
    let state = sim.state();
    let node = |name: &str| {
        state["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} in {state:#}"))
    };
    assert_eq!(node(NODES[1])["drain"], true, "{state:#}");
    assert_eq!(node(NODES[0])["drain"], false, "{state:#}");
    // The checker's I6 compares with the flags at the installation's creation, before this
    // scene drained node 2: put it back as the scene found it, then check every invariant.
    let out = sim.exe(
        NODES[1],
        &["node", "--instance=OctopusServer", "--drain=false"],
    );
    assert!(out.status.success(), "{out:?}");
    sim.assert_check();
    let s1 = sim.node(&["status", "--node", NODES[0]]);
    assert_eq!(s1.json["watchdog"]["enabled"], true, "{}", s1.stdout);
    // The control node kept the master key, private to its owner.
    let keys: Vec<PathBuf> = std::fs::read_dir(scratch.path().join("octoup-state"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().contains("master-key"))
        .collect();
    assert_eq!(keys.len(), 1, "{keys:?}");
    let secrets = sim.secrets();
    let master_key = &secrets[3];
    assert!(
        std::fs::read_to_string(&keys[0])
            .unwrap()
            .contains(master_key.as_str())
    );
    for secret in &secrets {
        assert!(
            !first.ran.stdout.contains(secret.as_str())
                && !first.ran.stderr.contains(secret.as_str()),
            "a secret in ansible's output"
        );
    }

    let changes = mutating(&sim.history());
    let second = ph.play();
    second.expect_ok();
    assert_eq!(second.changed(), 0, "{}", second.ran.stdout);
    assert_eq!(
        mutating(&sim.history()),
        changes,
        "the second run changed something"
    );
    sim.assert_check();
}

#[test]
fn per_host_mode_stops_everywhere_on_a_failure_and_a_rerun_finishes_with_the_original_flags() {
    let Some(ph) = PerHost::start(Scenario::new()) else {
        return;
    };
    let (sim, scratch) = (&ph.sim, &ph.scratch);
    // Node 2's installer fails once, after both nodes were stopped and the database backed up.
    sim.fault("msiexec", "exit:1603", Some(NODES[1]), 1);
    let failed = ph.play();
    assert_ne!(failed.ran.code, 0, "{}", failed.ran.stdout);
    assert!(failed.ran.stdout.contains("1603"), "{}", failed.ran.stdout);
    // The play stopped on both nodes: no database upgrade, nobody started.
    assert_eq!(sim.count("db-upgrade-started"), 0);
    assert_eq!(sim.count("service-starting"), 0);
    let state = sim.state();
    assert_eq!(
        state["database"]["maintenance"]["is_in_maintenance_mode"],
        true
    );

    // The re-run continues, and puts back the flags as they were before the first run.
    let again = ph.play();
    again.expect_ok();
    assert_serving(sim, TARGET);
    assert_eq!(sim.count("db-upgrade-finished"), 1);
    sim.assert_check();
    assert!(
        !scratch
            .path()
            .join(format!("octoup-state/flags-{TARGET}.json"))
            .exists()
    );
}

#[test]
fn cluster_mode_drives_octoup_upgrade_maps_its_exit_codes_and_resumes() {
    let Some(ansible) = ansible_playbook() else {
        return;
    };
    // The database upgrade fails once: octoup pauses (exit 4), a re-run finishes.
    let sim = Scenario::new()
        .nodes(2)
        .fault("db-upgrade", "exit:1")
        .start();
    let scratch = tempfile::tempdir().unwrap();
    let vars = |target: &str| {
        json!({
            "octoup_command": [octoup_bin()],
            "octoup_config": sim.config_path(),
            "octoup_target": target,
        })
        .to_string()
    };
    let run = |target: &str| {
        play(
            &ansible,
            scratch.path(),
            "upgrade-cluster.yml",
            &["-e", &vars(target)],
            &[],
        )
    };

    // A version the feed does not have: octoup's exit 2, named, and nothing changed.
    let refused = run("2099.1.1");
    assert_ne!(refused.ran.code, 0, "{}", refused.ran.stdout);
    assert!(
        refused.ran.stdout.contains("exited 2")
            && refused.ran.stdout.contains("nothing was changed"),
        "{}",
        refused.ran.stdout
    );
    assert_eq!(sim.count("db-upgrade-started"), 0);

    let paused = run(TARGET);
    assert_ne!(paused.ran.code, 0, "{}", paused.ran.stdout);
    assert!(
        paused.ran.stdout.contains("exited 4")
            && paused.ran.stdout.contains("outcome paused")
            && paused.ran.stdout.contains("Next step: ")
            && paused.ran.stdout.contains("run the play again"),
        "{}",
        paused.ran.stdout
    );
    assert_eq!(paused.changed(), 0, "{}", paused.ran.stdout);

    let first = run(TARGET);
    first.expect_ok();
    assert_eq!(first.changed(), 1, "{}", first.ran.stdout);
    assert!(
        first.ran.stdout.contains("octoup: upgraded"),
        "{}",
        first.ran.stdout
    );
    sim.assert_check();
    assert_serving(&sim, TARGET);

    let changes = mutating(&sim.history());
    let second = run(TARGET);
    second.expect_ok();
    assert_eq!(second.changed(), 0, "{}", second.ran.stdout);
    assert!(
        second.ran.stdout.contains("up-to-date"),
        "{}",
        second.ran.stdout
    );
    assert_eq!(mutating(&sim.history()), changes);
}

#[test]
fn scripts_test_installs_the_pinned_ansible_core() {
    let script = include_str!("../../../../scripts/test");
    assert!(
        script.contains(&format!("ANSIBLE_CORE={ANSIBLE_CORE}\n")),
        "scripts/test and ansible.rs pin different ansible-core versions"
    );
}

#[test]
fn the_role_knows_every_exit_status_octoup_has() {
    // vars/main.yml's table against exit.rs's enum: a new status needs its meaning there.
    let vars =
        std::fs::read_to_string(integration_dir().join("roles/octoup/vars/main.yml")).unwrap();
    let table: Vec<u32> = vars
        .split("octoup_exit_meanings:")
        .nth(1)
        .unwrap()
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.trim().split(':').next()?.parse().ok())
        .collect();
    let mut codes = crate::step_template::exit_codes()
        .into_iter()
        .map(|(_, c)| c)
        .collect::<Vec<_>>();
    codes.sort();
    let mut table_sorted = table.clone();
    table_sorted.sort();
    assert_eq!(table_sorted, codes);
}
