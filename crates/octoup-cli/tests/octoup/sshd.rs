//! A real OpenSSH server on loopback for the tests: fresh host and client keys in a temporary
//! directory, `sshd -D -e` as a child on a free port, killed on drop. Nothing outside the
//! temporary directory is trusted or changed (except creating sshd's privilege-separation
//! directory, which sshd itself requires).

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SSHD: &str = "/usr/sbin/sshd";

pub struct Sshd {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

fn keygen(path: &Path) {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "octoup-test", "-f"])
        .arg(path)
        .output()
        .expect("ssh-keygen (package openssh-client) must be installed; .ci/run installs it");
    assert!(out.status.success(), "ssh-keygen: {out:?}");
}

impl Sshd {
    pub fn start() -> Sshd {
        assert!(
            Path::new(SSHD).exists(),
            "{SSHD} is missing: the SSH tests need a real OpenSSH server. `.ci/run` installs it \
             (apt-get install -y openssh-server openssh-client); run that step, or install it by hand"
        );
        // sshd refuses to start without its privilege-separation directory.
        let _ = std::fs::create_dir_all("/run/sshd");
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        keygen(&d.join("host_key"));
        keygen(&d.join("id_ed25519"));
        std::fs::copy(d.join("id_ed25519.pub"), d.join("authorized_keys")).unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {hk}\nAuthorizedKeysFile {ak}\nPidFile {pid}\n\
             StrictModes no\nUsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             PubkeyAuthentication yes\nPermitRootLogin prohibit-password\nLogLevel ERROR\n",
            hk = d.join("host_key").display(),
            ak = d.join("authorized_keys").display(),
            pid = d.join("sshd.pid").display(),
        );
        std::fs::write(d.join("sshd_config"), config).unwrap();
        let host_pub = std::fs::read_to_string(d.join("host_key.pub")).unwrap();
        let mut key = host_pub.split_whitespace();
        let (kind, blob) = (key.next().unwrap(), key.next().unwrap());
        std::fs::write(
            d.join("known_hosts"),
            format!("[127.0.0.1]:{port} {kind} {blob}\n"),
        )
        .unwrap();
        // Its log goes to a file: a pipe nobody reads could fill up and stall sshd.
        let log = std::fs::File::create(d.join("sshd.log")).unwrap();
        let child = Command::new(SSHD)
            .args(["-D", "-e", "-f"])
            .arg(d.join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start sshd");
        let mut sshd = Sshd { child, port, dir };
        sshd.wait_listening();
        sshd
    }

    fn wait_listening(&mut self) {
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Ok(Some(status)) = self.child.try_wait() {
                let log = std::fs::read_to_string(self.dir().join("sshd.log")).unwrap_or_default();
                panic!("sshd exited ({status}): {log}");
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "sshd did not listen on port {} within 10 s",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn known_hosts(&self) -> PathBuf {
        self.dir().join("known_hosts")
    }

    /// The `[ssh]` table that reaches this server: its port, the client key, its host key
    /// (and nothing from the user's ~/.ssh).
    pub fn ssh_table(&self, remote_octoup: &Path) -> String {
        let q = |p: &Path| format!("{:?}", p.display().to_string());
        format!(
            "[ssh]\nprogram = [\"ssh\", \"-F\", \"/dev/null\", \"-p\", \"{port}\"]\nconnect_timeout_seconds = 5\n\
             options = [{id}, {kh}, \"IdentitiesOnly=yes\", \"GlobalKnownHostsFile=/dev/null\", {cm}, \"ControlMaster=auto\", \"ControlPersist=5\"]\n\
             remote_octoup = [{octoup}]\n",
            port = self.port,
            id = q(Path::new(&format!(
                "IdentityFile={}",
                self.dir().join("id_ed25519").display()
            ))),
            kh = q(Path::new(&format!(
                "UserKnownHostsFile={}",
                self.known_hosts().display()
            ))),
            // One connection for all the calls of a test, as an operator would configure it.
            cm = q(Path::new(&format!(
                "ControlPath={}",
                self.dir().join("cm-%C").display()
            ))),
            octoup = q(remote_octoup),
        )
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
