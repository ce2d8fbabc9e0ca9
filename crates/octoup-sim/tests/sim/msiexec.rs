//! The msiexec stand-in: installs, exit codes and logs.

use octoup_sim::state::ServiceState;
use predicates::str::contains;

use crate::scene::{NEW, OLD, Scene, code, finish, spec};

const N1: &str = "OCTO-NODE-01";

fn log(scene: &Scene, name: &str) -> String {
    std::fs::read_to_string(scene.path(name)).unwrap()
}

#[test]
fn install_sets_the_binary_version_and_writes_a_log() {
    let scene = Scene::with_nodes(1);
    scene.stop(N1);
    let msi = scene.installer(NEW);
    scene
        .msiexec(N1, &msi, &scene.path("install.log"))
        .success();
    assert_eq!(
        scene.state().nodes[0].installed_version.as_deref(),
        Some(NEW)
    );
    assert!(!scene.state().nodes[0].install_in_progress);
    let text = log(&scene, "install.log");
    assert!(
        text.contains("Product: Octopus Deploy Server -- Installation completed successfully."),
        "{text}"
    );
    assert!(
        text.contains("Installation success or error status: 0."),
        "{text}"
    );
    let kinds = scene.kinds();
    assert!(
        kinds.contains(&"install-started".into()) && kinds.contains(&"install-finished".into())
    );
}

#[test]
fn install_fails_1603_while_the_service_runs() {
    let scene = Scene::with_nodes(1);
    let msi = scene.installer(NEW);
    scene
        .msiexec(N1, &msi, &scene.path("i.log"))
        .code(code(1603))
        .stderr(contains("Error 1306"));
    assert_eq!(
        scene.state().nodes[0].installed_version.as_deref(),
        Some(OLD)
    );
    let text = log(&scene, "i.log");
    assert!(text.contains("Return value 3."), "{text}");
    assert!(
        text.contains("Installation success or error status: 1603."),
        "{text}"
    );
    assert!(scene.has("install-failed"));
}

#[test]
fn a_second_install_on_the_node_gets_1618() {
    let scene = octoup_sim::spec::Spec {
        durations: octoup_sim::spec::Durations {
            install: 1500.0,
            ..Default::default()
        },
        ..spec(1)
    };
    let scene = Scene::new(scene);
    scene.stop(N1);
    let msi = scene.installer(NEW);
    let msi_arg = msi.display().to_string();
    let first = scene.spawn("msiexec", Some(N1), &["/i", &msi_arg, "/quiet"]);
    scene.wait_for("the first install", |s| s.nodes[0].install_in_progress);
    scene
        .msiexec(N1, &msi, &scene.path("second.log"))
        .code(code(1618))
        .stderr(contains("Another installation is already in progress"));
    let (status, _, stderr) = finish(first);
    assert_eq!(status, 0, "{stderr}");
    assert_eq!(
        scene.state().nodes[0].installed_version.as_deref(),
        Some(NEW)
    );
}

#[test]
fn a_corrupt_or_missing_installer_fails_with_a_log_that_says_so() {
    let scene = Scene::with_nodes(1);
    scene.stop(N1);
    let msi = scene.installer(NEW);
    let mut bytes = std::fs::read(&msi).unwrap();
    bytes[50_000] ^= 0x55;
    std::fs::write(&msi, bytes).unwrap();
    scene
        .msiexec(N1, &msi, &scene.path("c.log"))
        .code(code(1603));
    let text = log(&scene, "c.log");
    assert!(
        text.contains("Error 1335") && text.contains("corrupt"),
        "{text}"
    );
    assert_eq!(
        scene.state().nodes[0].installed_version.as_deref(),
        Some(OLD)
    );

    let truncated = scene.installer(NEW);
    let bytes = std::fs::read(&truncated).unwrap();
    std::fs::write(&truncated, &bytes[..1000]).unwrap();
    scene
        .msiexec(N1, &truncated, &scene.path("t.log"))
        .code(code(1603));
    assert!(log(&scene, "t.log").contains("truncated"));

    scene
        .msiexec(N1, &scene.path("missing.msi"), &scene.path("m.log"))
        .code(code(1619))
        .stderr(contains("could not be opened"));
}

#[test]
fn downgrade_needs_an_uninstall_first() {
    let scene = Scene::with_nodes(1);
    scene.stop(N1);
    let old = scene.installer("2023.4.8166");
    scene
        .msiexec(N1, &old, &scene.path("d.log"))
        .code(code(1603))
        .stderr(contains(
            "A newer version of Octopus Deploy Server (2024.1.10) is already installed",
        ));
    let current = scene.installer(OLD);
    let current_arg = current.display().to_string();
    scene
        .msiexec_args(N1, &["/x", &current_arg, "/quiet"])
        .success();
    assert_eq!(scene.state().nodes[0].installed_version, None);
    // Nothing installed: Octopus.Server.exe is gone.
    scene.exe(N1, &["version"]).code(code(9009));
    scene
        .msiexec_args(N1, &["/x", &current_arg, "/quiet"])
        .code(code(1605));
    scene.msiexec(N1, &old, &scene.path("d2.log")).success();
    assert_eq!(
        scene.state().nodes[0].installed_version.as_deref(),
        Some("2023.4.8166")
    );
    assert!(scene.has("uninstall-finished"));
}

#[test]
fn bad_command_lines_and_faults() {
    let scene = Scene::with_nodes(1);
    scene.stop(N1);
    let msi = scene.installer(NEW);
    let msi_arg = msi.display().to_string();
    scene
        .msiexec_args(N1, &["/i", &msi_arg, "/quiet", "/frobnicate"])
        .code(code(1639));
    scene.msiexec_args(N1, &["/i", &msi_arg]).code(code(1602));
    let missing_dir = scene.path("no-such-dir").join("x.log");
    scene.msiexec(N1, &msi, &missing_dir).code(code(1622));

    scene.fault("msiexec", "exit:1603", Some(N1), 1);
    scene
        .msiexec(N1, &msi, &scene.path("f.log"))
        .code(code(1603));
    assert!(log(&scene, "f.log").contains("injected fault"));
    assert_eq!(
        scene.state().nodes[0].installed_version.as_deref(),
        Some(OLD)
    );
    scene.msiexec(N1, &msi, &scene.path("ok.log")).success();
    assert_eq!(scene.state().nodes[0].service, ServiceState::Stopped);
}
