use super::*;

const FULL: &str = r#"
[server]
url = "https://octopus.example.com"
api_key_file = 'C:\octoup\api-key.txt'
instance = "OctopusServer"
server_exe = ['C:\Program Files\Octopus Deploy\Octopus\Octopus.Server.exe']

[versions]
feed = "https://octopus.com/download/upgrade/v3"
allow = "minor"
min_age_days = 0
pin = "2024.3"
exclude = []

[installer]
url = "https://download.octopusdeploy.com/octopus/Octopus.{version}-x64.msi"
install = ["msiexec", "/i", "{installer}", "/quiet", "RUNMANAGERONEXIT=no", "/norestart", "/l*v", "{log}"]
verify = []
sha256 = ""

[database]
name = "OctopusDeploy"
sqlcmd = ["sqlcmd", "-S", "sql01.example.com", "-E", "-b"]
backup_dir = '\\nas\octopus\backups'

[backup]
dir = 'D:\octoup\backups'

[drain]
wait_seconds = 1800
cancel_tasks = false

[state]
dir = 'C:\ProgramData\octoup'

[[nodes]]
name = "OCTO-NODE-01"
url = "https://octo-node-01"
ssh = "admin@octo-node-01"
primary = true
"#;

#[test]
fn the_design_example_parses_except_for_an_empty_sha256() {
    // The design's example has `sha256 = ""`; an empty pin is an error, not "no pin".
    let err = Config::parse(FULL).unwrap_err();
    assert!(err.to_string().contains("sha256"), "{err}");
    let cfg = Config::parse(&FULL.replace("sha256 = \"\"\n", "")).unwrap();
    assert_eq!(cfg.versions.pin.as_deref(), Some("2024.3"));
    assert_eq!(cfg.nodes.len(), 1);
    assert_eq!(cfg.nodes[0].ssh.as_deref(), Some("admin@octo-node-01"));
    assert_eq!(cfg.drain.wait_seconds, 1800);
}

#[test]
fn unknown_keys_are_named() {
    let err = Config::parse("[drain]\nwait_second = 5\n").unwrap_err();
    assert!(err.to_string().contains("wait_second"), "{err}");
    let err = Config::parse("[serverr]\n").unwrap_err();
    assert!(err.to_string().contains("serverr"), "{err}");
}

#[test]
fn bad_values_are_explained() {
    for (text, needle) in [
        ("[versions]\nallow = \"all\"\n", "allow"),
        ("[installer]\ninstall = [\"msiexec\"]\n", "{installer}"),
        (
            "[[nodes]]\nname = \"a\"\nurl = \"http://a\"\nprimary = true\n[[nodes]]\nname = \"b\"\nurl = \"http://b\"\nprimary = true\n",
            "primary",
        ),
        (
            "[[nodes]]\nname = \"a\"\nurl = \"http://a\"\n[[nodes]]\nname = \"A\"\nurl = \"http://b\"\n",
            "twice",
        ),
    ] {
        let err = Config::parse(text).unwrap_err().to_string();
        assert!(err.contains(needle), "{text}: {err}");
    }
}

#[test]
fn env_wins_and_secrets_do_not_print() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("key.txt");
    std::fs::write(&key_file, "API-FROMFILE\n").unwrap();
    let cfg_path = dir.path().join("octoup.toml");
    std::fs::write(&cfg_path, "[server]\napi_key_file = \"key.txt\"\n").unwrap();
    let mut cfg = Config::load(&cfg_path).unwrap();
    assert_eq!(cfg.server.api_key_file.as_deref(), Some(key_file.as_path()));
    let none = EnvOverrides::default();
    assert_eq!(cfg.api_key(&none).unwrap().expose(), "API-FROMFILE");
    let env = EnvOverrides {
        url: Some("http://127.0.0.1:1".into()),
        api_key: Some(Secret::new("API-FROMENV")),
    };
    cfg.apply_env(&env);
    assert_eq!(cfg.server_url().unwrap(), "http://127.0.0.1:1");
    let key = cfg.api_key(&env).unwrap();
    assert_eq!(key.expose(), "API-FROMENV");
    assert!(!format!("{key:?} {key}").contains("FROMENV"));
}

#[test]
fn one_node_without_nodes_table_is_primary() {
    let cfg = Config::parse("[server]\nurl = \"http://127.0.0.1:9\"\n").unwrap();
    let nodes = cfg.effective_nodes().unwrap();
    assert_eq!(nodes.len(), 1);
    assert!(nodes[0].primary);
    assert_eq!(nodes[0].url, "http://127.0.0.1:9");
}

#[test]
fn a_spare_node_that_is_production_is_refused_with_the_reason() {
    let cluster = "[[nodes]]\nname = \"OCTO-NODE-01\"\nurl = \"https://octo-node-01\"\nssh = \"admin@octo-node-01\"\n[[nodes]]\nname = \"OCTO-NODE-02\"\nurl = \"https://octo-node-02:8443\"\n";
    let spare = |node: &str| {
        format!("{cluster}[rehearsal]\nhost = \"windows\"\n[rehearsal.windows.node]\n{node}")
    };
    for (node, says) in [
        (
            "name = \"octo-node-02\"\nurl = \"https://spare\"\n",
            "has the name of [[nodes]] \"OCTO-NODE-02\"",
        ),
        (
            "name = \"SPARE\"\nurl = \"https://spare\"\nssh = \"other@OCTO-NODE-01:22\"\n",
            "reached over SSH at OCTO-NODE-01",
        ),
        (
            "name = \"SPARE\"\nurl = \"https://octo-node-02:8443/\"\n",
            "has the address octo-node-02:8443",
        ),
        (
            "name = \"SPARE\"\nurl = \"https://octo-node-01:443\"\n",
            "has the address octo-node-01:443",
        ),
    ] {
        let err = Config::parse(&spare(node)).unwrap_err().to_string();
        assert!(
            err.contains("[rehearsal.windows.node] name")
                && err.contains(says)
                && err.contains("never runs on a production node"),
            "{node}: {err}"
        );
    }
    // One node: its address is [server] url.
    let err = Config::parse(
        "[server]\nurl = \"https://octopus\"\n[rehearsal.windows.node]\nname = \"S\"\nurl = \"https://OCTOPUS:443\"\n",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("([server] url)"), "{err}");
    // A spare node elsewhere is fine.
    let ok = Config::parse(&spare(
        "name = \"OCTO-SPARE-01\"\nurl = \"https://octo-spare-01\"\nssh = \"admin@octo-spare-01\"\n",
    ))
    .unwrap();
    assert_eq!(ok.rehearsal.host, RehearsalHost::Windows);
    assert!(
        !ok.rehearsal.windows.secret_arguments,
        "opt-in is off by default"
    );
}

#[test]
fn the_windows_host_needs_its_node_and_sane_names() {
    for (text, says) in [
        (
            "[rehearsal]\nhost = \"windows\"\n",
            "[rehearsal.windows.node] is missing",
        ),
        (
            "[rehearsal.windows]\ninstance_prefix = \"a b\"\n",
            "instance_prefix",
        ),
        ("[rehearsal.windows]\nlisten_port = 0\n", "listen_port"),
        ("[rehearsal.windows]\nhome = \" \"\n", "home"),
        (
            "[rehearsal.windows.node]\nname = \"S\"\nurl = \"http://s\"\nprimary = true\n",
            "never primary",
        ),
        ("[rehearsal.windows.node]\nname = \"S\"\n", "has no url"),
        ("[rehearsal]\nhost = \"linux\"\n", "host"),
    ] {
        let err = Config::parse(text).unwrap_err().to_string();
        assert!(err.contains(says), "{text}: {err}");
    }
}

#[test]
fn a_rehearsal_sql_server_is_read_and_checked() {
    let with = |table: &str| {
        Config::parse(&format!(
            "[database]\nsqlcmd = [\"sqlcmd\", \"-S\", \"tcp:SQL01.corp,1433\", \"-E\", \"-b\"]\n\n[rehearsal.sql]\n{table}"
        ))
    };
    let ok = with(
        "sqlcmd = [\"sqlcmd\", \"-S\", \"sqlr01.corp,1433\", \"-U\", \"octoup\", \"-b\"]\nbackup_dir = '\\\\nas\\octopus\\backups'\npassword_file = 'r.txt'\n",
    )
    .unwrap();
    let sql = ok.rehearsal.sql.as_ref().unwrap();
    assert_eq!(sql.server_name(), Some("sqlr01.corp,1433"));
    assert_eq!(
        sql.backup_dir.as_deref(),
        Some(Path::new("\\\\nas\\octopus\\backups"))
    );
    // Absent, nothing changes: the copy is made on production's server.
    assert_eq!(Config::default().rehearsal.sql, None);

    for (table, expected) in [
        ("backup_dir = 'x'\n", "[rehearsal.sql] sqlcmd"),
        (
            "sqlcmd = [\"sqlcmd\", \"-E\"]\nbackup_dir = 'x'\n",
            "the sqlcmd argv has no -S",
        ),
        (
            "sqlcmd = [\"sqlcmd\", \"-S\", \"sqlr01\"]\n",
            "[database] backup_dir as the rehearsal SQL Server sees it",
        ),
        // Production's server by another spelling of its name: refused.
        (
            "sqlcmd = [\"sqlcmd\", \"-S\", \"sql01.corp\"]\nbackup_dir = 'x'\n",
            "production's SQL Server",
        ),
        (
            "sqlcmd = [\"sqlcmd\", \"-S\", \"sqlr01\"]\nserver = \"SQL01.CORP\"\nbackup_dir = 'x'\n",
            "[rehearsal.sql] server",
        ),
        (
            "sqlcmd = [\"sqlcmd\", \"-S\", \"sqlr01\"]\nbackupdir = 'x'\n",
            "backupdir",
        ),
    ] {
        let err = with(table).unwrap_err().to_string();
        assert!(err.contains(expected), "{table}: {err}");
    }
    // Another instance or port on the same host is another server.
    assert!(with("sqlcmd = [\"sqlcmd\", \"-S\", \"sql01.corp,1500\"]\nbackup_dir = 'x'\n").is_ok());
    assert!(
        with("sqlcmd = [\"sqlcmd\", \"-S\", \"sql01.corp\\\\REHEARSE\"]\nbackup_dir = 'x'\n")
            .is_ok()
    );
}
