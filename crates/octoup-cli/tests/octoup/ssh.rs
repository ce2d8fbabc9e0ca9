//! The SSH transport against a real sshd on loopback: quoting through a real remote shell,
//! host-key checking, the SshAgent driving every node step, and a whole `octoup upgrade` of
//! a two-node simulated cluster whose nodes are reached over SSH.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use octoup::config::{Config, Secret};
use octoup::nodes::remote::SshAgent;
use octoup::nodes::ssh::{SshRunner, SshTransport};
use octoup::nodes::{NodeAgent, agent_for};
use octoup::octopus::api::OctopusApi;
use octoup::octopus::http::{HttpClient, NetworkSettings};
use octoup::process::runner::{CommandRunner, CommandSpec, LocalRunner, RunLog};

use crate::node_commands::sim_up;
use crate::sshd::Sshd;
use octoup_testkit::{Ran, Sim, octoup_bin, run};

const TARGET: &str = "2024.2.9409";

/// A node-side config for `name`: the simulator's, with the node's own state directory and
/// installer cache, as if the node were another machine. Returns its path.
pub fn node_config(sim: &Sim, name: &str) -> PathBuf {
    let path = sim.dir().join(format!("{name}.toml"));
    let state = sim.dir().join(format!("{name}-state"));
    std::fs::write(
        &path,
        sim.config_text().replace(
            &format!("{:?}", sim.dir().join("octoup-state").display().to_string()),
            &format!("{:?}", state.display().to_string()),
        ),
    )
    .unwrap();
    path
}

/// The simulator's config with every node reached over SSH through `sshd`, each node with
/// its own node-side config (its own state directory and installer cache, as if it were
/// another machine). Returns the orchestrator's config path.
fn ssh_cluster_config(sim: &Sim, sshd: &Sshd) -> PathBuf {
    let text = sim.config_text();
    let mut out = String::new();
    for line in text.lines() {
        out.push_str(line);
        out.push('\n');
        if let Some(name) = line
            .strip_prefix("name = \"")
            .and_then(|r| r.strip_suffix('"'))
            .filter(|n| n.starts_with("OCTO-NODE-"))
        {
            let node_config = node_config(sim, name);
            out.push_str(&format!(
                "ssh = \"root@127.0.0.1\"\nremote_config = {:?}\n",
                node_config.display().to_string()
            ));
        }
    }
    out.push_str(&sshd.ssh_table(&octoup_bin()));
    let path = sim.dir().join("octoup-ssh.toml");
    std::fs::write(&path, out).unwrap();
    path
}

/// `octoup upgrade --to TARGET` with `config`, expecting exit status `code`.
fn upgrade(config: &std::path::Path, code: i32) -> Ran {
    let ran = run([
        "upgrade",
        "-y",
        "--json",
        "--to",
        TARGET,
        "--config",
        config.to_str().unwrap(),
    ]);
    assert_eq!(
        ran.code, code,
        "stdout: {}\nstderr: {}",
        ran.stdout, ran.stderr
    );
    ran
}

fn api_for(config: &Config, url: &str) -> OctopusApi {
    OctopusApi::new(
        HttpClient::new(NetworkSettings::from_config(config)).unwrap(),
        url,
        Secret::new(""),
        Duration::from_secs(5),
    )
}

fn transport(sshd: &Sshd) -> SshTransport {
    let mut text = sshd.ssh_table(&octoup_bin());
    text.push_str(
        "[[nodes]]\nname = \"N1\"\nurl = \"http://127.0.0.1:1\"\nssh = \"root@127.0.0.1\"\n",
    );
    let config = Config::parse(&text).unwrap();
    SshTransport::new(&config.ssh, "N1", "root@127.0.0.1").unwrap()
}

#[tokio::test]
async fn arguments_survive_the_real_remote_shell_byte_for_byte() {
    let sshd = Sshd::start();
    let runner = SshRunner::new(transport(&sshd), Arc::new(LocalRunner::default()));
    let args: Vec<String> = [
        "",
        " two  spaces ",
        "'",
        "\"",
        "\\",
        "$HOME",
        "`id`",
        "$(id)",
        "a;b|c&d",
        "*",
        "~",
        "#",
        "new\nline",
        "ünï ✓",
        "-n",
        "A=b",
        "C:\\Program Files\\Octopus",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut argv = vec!["printf".to_string(), "%s\\0".to_string()];
    argv.extend(args.iter().cloned());
    let out = runner
        .run(CommandSpec::new("printf", argv, Duration::from_secs(20)))
        .await
        .unwrap();
    assert_eq!(out.code, Some(0), "{out:?}");
    let mut words: Vec<String> = out.stdout.split('\0').map(str::to_string).collect();
    words.pop();
    assert_eq!(words, args);
    // Exit codes come back as the remote command's.
    let out = runner
        .run(CommandSpec::new(
            "exit",
            vec!["sh".into(), "-c".into(), "exit 7".into()],
            Duration::from_secs(20),
        ))
        .await
        .unwrap();
    assert_eq!(out.code, Some(7));
}

#[tokio::test]
async fn an_unknown_host_key_is_refused_and_explained() {
    let sshd = Sshd::start();
    // Trust some other key for this host: ssh must refuse, never ask or accept.
    let other = sshd.dir().join("other_key");
    let st = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other)
        .status()
        .unwrap();
    assert!(st.success());
    let other_pub = std::fs::read_to_string(other.with_extension("pub")).unwrap();
    let mut it = other_pub.split_whitespace();
    std::fs::write(
        sshd.known_hosts(),
        format!(
            "[127.0.0.1]:{} {} {}\n",
            sshd.port,
            it.next().unwrap(),
            it.next().unwrap()
        ),
    )
    .unwrap();
    let runner = SshRunner::new(transport(&sshd), Arc::new(LocalRunner::default()));
    let err = runner
        .run(CommandSpec::new(
            "true",
            vec!["true".into()],
            Duration::from_secs(20),
        ))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("known_hosts") && err.contains("root@127.0.0.1"),
        "{err}"
    );
}

#[tokio::test]
async fn the_ssh_agent_drives_every_node_step_on_a_real_sshd() {
    let sshd = Sshd::start();
    let sim = sim_up(2);
    let config = Config::load(&ssh_cluster_config(&sim, &sshd)).unwrap();
    let log_path = sim.dir().join("orchestrator.log");
    let log = Arc::new(RunLog::open(&log_path).unwrap());
    let runner: Arc<dyn CommandRunner> = Arc::new(LocalRunner::new(Some(log.clone())));
    let agents: Vec<Arc<dyn NodeAgent>> = config
        .nodes
        .iter()
        .map(|n| {
            agent_for(
                &config,
                n,
                &n.name,
                api_for(&config, &n.url),
                runner.clone(),
                sim.dir().join("logs"),
            )
            .unwrap()
        })
        .collect();
    let (primary, second) = (&agents[0], &agents[1]);

    // Without a remote octoup that answers, the error says where to look.
    let mut broken = config.clone();
    broken.ssh.remote_octoup = vec!["/nonexistent/octoup".into()];
    let bad = SshAgent::new(
        &broken,
        &config.nodes[1],
        "OCTO-NODE-02",
        api_for(&config, &config.nodes[1].url),
        runner.clone(),
        sim.dir().join("logs"),
    )
    .unwrap();
    let err = bad.installed_version().await.unwrap_err().to_string();
    assert!(err.contains("remote_octoup"), "{err}");

    for a in &agents {
        assert_eq!(
            a.installed_version().await.unwrap().to_string(),
            "2024.1.10"
        );
        assert!(!a.watchdog().await.unwrap().enabled);
    }
    // Direct Octopus.Server.exe calls over SSH: watchdog and master key.
    second
        .create_watchdog(&octoup::nodes::WatchdogInfo {
            enabled: true,
            interval_minutes: Some(9),
            instances: None,
        })
        .await
        .unwrap();
    assert_eq!(second.watchdog().await.unwrap().interval_minutes, Some(9));
    second.delete_watchdog().await.unwrap();
    let key = primary.master_key().await.unwrap();
    assert!(key.expose().len() >= 16);
    log.redact(&key);

    // Staging happens in each node's own cache, not the orchestrator's.
    let version: octoup::version::Version = TARGET.parse().unwrap();
    for a in &agents {
        a.stage(&version, false).await.unwrap();
    }
    let staged = |node: &str| {
        let dir = sim
            .dir()
            .join(format!("{node}-state"))
            .join("cache")
            .join(TARGET);
        std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0)
    };
    assert_eq!((staged("OCTO-NODE-01"), staged("OCTO-NODE-02")), (1, 1));
    assert!(
        !sim.dir()
            .join("octoup-state")
            .join("cache")
            .join(TARGET)
            .exists()
    );

    for a in &agents {
        a.stop().await.unwrap();
        assert!(!a.ping().await.is_up());
    }
    // The backup the checker wants before a schema upgrade (I3), run here as the engine does.
    sim.back_up_database();
    // The orchestrator's copy of the installer names the digest the nodes must install.
    let sha_dir = std::fs::read_dir(sim.dir().join("OCTO-NODE-01-state/cache").join(TARGET))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .file_name();
    let wrong = PathBuf::from("/cache")
        .join(TARGET)
        .join("f".repeat(64))
        .join("Octopus.msi");
    let err = second
        .install(&wrong, TARGET)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("not-staged") || err.contains("staged"),
        "{err}"
    );
    let right = PathBuf::from("/cache")
        .join(TARGET)
        .join(&sha_dir)
        .join("Octopus.msi");
    for a in &agents {
        let outcome = a.install(&right, TARGET).await.unwrap();
        assert_eq!(outcome.exit_code, 0);
        assert_eq!(a.installed_version().await.unwrap().to_string(), TARGET);
    }
    assert_eq!(
        primary.database_upgrade_pending().await.unwrap(),
        Some(true)
    );
    primary.database_upgrade().await.unwrap();
    for a in &agents {
        a.start(TARGET).await.unwrap();
        let s = a.status().await;
        assert_eq!(s.api_version.as_deref(), Some(TARGET));
    }
    sim.assert_check();
    assert_eq!(sim.count("db-upgrade-finished"), 1);
    let text = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        text.contains("BatchMode=yes") && text.contains("StrictHostKeyChecking=yes"),
        "{text}"
    );
    assert!(
        !text.contains(key.expose()),
        "the master key reached the orchestrator's log"
    );
}

#[test]
fn octoup_upgrade_upgrades_a_two_node_cluster_over_ssh() {
    let sshd = Sshd::start();
    let sim = sim_up(2);
    let config = ssh_cluster_config(&sim, &sshd);
    let ran = upgrade(&config, 0);
    assert_eq!(ran.json["outcome"], "upgraded", "{}", ran.stdout);
    for node in ran.json["nodes"].as_array().unwrap() {
        assert_eq!(node["version"], TARGET, "{node}");
    }
    sim.assert_check();
    assert_eq!(sim.count("db-upgrade-finished"), 1);
    assert_eq!(sim.count("service-start-failed"), 0);
    assert_eq!(sim.count("install-finished"), 2);
    // Each node staged and installed from its own cache (as on separate machines).
    for node in ["OCTO-NODE-01", "OCTO-NODE-02"] {
        let cache = sim
            .dir()
            .join(format!("{node}-state"))
            .join("cache")
            .join(TARGET);
        assert!(cache.exists(), "{node} did not stage into its own cache");
    }
    // The steps went through ssh: the orchestrator's log shows the node commands.
    let logs = std::fs::read_dir(sim.dir().join("octoup-state").join("logs")).unwrap();
    let text: String = logs
        .filter_map(|e| std::fs::read_to_string(e.unwrap().path()).ok())
        .collect();
    for step in ["node stop", "node install", "node start", "node stage"] {
        assert!(
            text.contains(&format!("{step} --")) || text.contains(step),
            "no `{step}` over ssh in the run log"
        );
    }
    assert!(text.contains("BatchMode=yes"));
}

#[test]
fn a_node_failing_to_install_over_ssh_is_put_back_and_a_rerun_finishes() {
    let sshd = Sshd::start();
    let sim = sim_up(2);
    let config = ssh_cluster_config(&sim, &sshd);
    sim.fault("msiexec", "exit:1603", Some("OCTO-NODE-02"), 1);
    let ran = upgrade(&config, 1);
    let error = ran.json["error"].as_str().unwrap_or("");
    assert!(
        error.contains("OCTO-NODE-02") && error.contains("1603"),
        "{error}"
    );
    for node in ran.json["nodes"].as_array().unwrap() {
        assert_eq!(node["version"], "2024.1.10", "{}", ran.stdout);
        assert!(node["serving"].is_string(), "{}", ran.stdout);
    }
    sim.assert_check();
    // Whatever node 1 had installed was taken off over SSH (msiexec /x, then the original).
    let target_installs = sim
        .history()
        .iter()
        .filter(|e| e["kind"] == "install-finished" && e["version"] == TARGET)
        .count();
    let uninstalls = sim.count("uninstall-finished");
    assert_eq!(
        target_installs, uninstalls,
        "every install of {TARGET} was undone"
    );

    let again = upgrade(&config, 0);
    assert_eq!(again.json["outcome"], "upgraded");
    sim.assert_check();
}
