//! Real `redis-server` and PostgreSQL processes for tests, on free loopback ports, stopped on
//! drop.

#![allow(dead_code)]
// Test processes and fixtures, outside the runtime.
#![allow(clippy::disallowed_methods)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free loopback port whose cluster-bus port (`port + 10000`) is free too.
pub fn free_port_pair() -> u16 {
    for _ in 0..200 {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().unwrap().port();
        if port < 55_000 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
    panic!("no free port pair found");
}

fn require(bin: &str) {
    let found = Command::new(bin)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(
        found,
        "`{bin}` is not installed: run scripts/test.sh, which installs Debian's redis-server and redis-tools"
    );
}

/// `redis-cli -p PORT ARGS...`, its stdout.
pub fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One redis-server process.
pub struct RedisProcess {
    /// Its port.
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl RedisProcess {
    /// Starts a server (cluster-enabled when asked) and waits until it answers PING.
    pub fn start(cluster: bool) -> RedisProcess {
        require("redis-server");
        // A port picked as free can be taken by someone else before redis binds it: check that
        // the server answering is ours (its pid), else try another port.
        for _ in 0..5 {
            let port = free_port_pair();
            let dir = tempfile::tempdir().unwrap();
            let mut cmd = Command::new("redis-server");
            cmd.args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
            if cluster {
                cmd.args(["--cluster-enabled", "yes", "--cluster-node-timeout", "3000"]);
                cmd.arg("--cluster-config-file").arg(dir.path().join("nodes.conf"));
            }
            let mut child = cmd.spawn().expect("start redis-server");
            let pid = format!("process_id:{}", child.id());
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(20) {
                if child.try_wait().ok().flatten().is_some() {
                    break; // could not bind: try another port
                }
                if cli(port, &["INFO", "server"]).contains(&pid) {
                    return RedisProcess { port, child, _dir: dir };
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("could not start redis-server on a free port");
    }

    /// Starts a server that speaks only TLS, with a certificate for 127.0.0.1 signed by a
    /// test CA made here with the `openssl` command; returns it and the CA's PEM file.
    pub fn start_tls() -> (RedisProcess, std::path::PathBuf) {
        require("redis-server");
        require("openssl");
        let port = free_port_pair();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl")
                .current_dir(d)
                .args(args)
                .output()
                .expect("openssl");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=larder-test-ca",
        ]);
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ]);
        std::fs::write(d.join("ext.cnf"), "subjectAltName=IP:127.0.0.1\n").unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ]);
        let child = Command::new("redis-server")
            .args([
                "--port",
                "0",
                "--tls-port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args([
                "--tls-cert-file",
                "server.crt",
                "--tls-key-file",
                "server.key",
                "--tls-ca-cert-file",
                "ca.crt",
            ])
            .args(["--tls-auth-clients", "no"])
            .current_dir(d)
            .arg("--dir")
            .arg(d)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server with TLS");
        let ca = d.join("ca.crt");
        let ca_s = ca.to_string_lossy().into_owned();
        wait_for(
            || {
                let out = Command::new("redis-cli")
                    .args([
                        "--tls",
                        "--cacert",
                        &ca_s,
                        "-h",
                        "127.0.0.1",
                        "-p",
                        &port.to_string(),
                        "PING",
                    ])
                    .output();
                out.map(|o| String::from_utf8_lossy(&o.stdout).trim() == "PONG")
                    .unwrap_or(false)
            },
            "redis-server (TLS) to answer PING",
        );
        (RedisProcess { port, child, _dir: dir }, ca)
    }

    /// Sends a signal (`STOP`, `CONT`, ...) to the process.
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "kill -{sig}");
    }

    /// Its Feast connection string.
    pub fn connection_string(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for RedisProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `ok` for up to 20 s.
pub fn wait_for(mut ok: impl FnMut() -> bool, what: &str) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        if ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}

/// A Redis Cluster of three masters, no replicas.
pub struct RedisCluster {
    /// The masters.
    pub nodes: Vec<RedisProcess>,
}

impl RedisCluster {
    /// Starts three cluster-enabled servers and joins them with `redis-cli --cluster create`.
    pub fn start() -> RedisCluster {
        require("redis-cli");
        let nodes: Vec<RedisProcess> = (0..3).map(|_| RedisProcess::start(true)).collect();
        let addrs: Vec<String> = nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli --cluster create");
        assert!(
            out.status.success(),
            "cluster create: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        for n in &nodes {
            wait_for(
                || cli(n.port, &["CLUSTER", "INFO"]).contains("cluster_state:ok"),
                "the cluster to be ok",
            );
        }
        RedisCluster { nodes }
    }

    /// Its Feast connection string (all nodes).
    pub fn connection_string(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// A real PostgreSQL server made with `initdb` in a temporary directory, on a free loopback
/// port (as root it runs as the `postgres` user, which PostgreSQL requires); stopped on drop.
pub struct PostgresProcess {
    /// Its port.
    pub port: u16,
    bindir: std::path::PathBuf,
    dir: std::path::PathBuf,
    as_postgres: bool,
}

impl PostgresProcess {
    /// Starts a server with a `larder` superuser (trust auth) and a `online` database.
    pub fn start() -> PostgresProcess {
        let mut bins: Vec<_> = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL's server is not installed: scripts/test.sh installs Debian's postgresql")
            .flatten()
            .map(|e| e.path().join("bin"))
            .filter(|p| p.join("initdb").exists())
            .collect();
        bins.sort();
        let bindir = bins.pop().expect("no initdb under /usr/lib/postgresql");
        let root = is_root();
        let dir = std::env::temp_dir().join(format!("larder-pg-{}-{}", std::process::id(), free_port_pair()));
        std::fs::create_dir_all(dir.join("sock")).unwrap();
        if root {
            let _ = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status();
        }
        let pg = PostgresProcess {
            port: free_port_pair(),
            bindir,
            dir,
            as_postgres: root,
        };
        pg.run(
            "initdb",
            &["-D", &pg.data(), "-A", "trust", "-U", "larder", "--no-sync"],
        );
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            pg.port,
            pg.dir.join("sock").display()
        );
        let log = pg.dir.join("pg.log").display().to_string();
        pg.run(
            "pg_ctl",
            &["-D", &pg.data(), "-l", &log, "-w", "-t", "60", "start", "-o", &opts],
        );
        pg.run(
            "createdb",
            &["-h", "127.0.0.1", "-p", &pg.port.to_string(), "-U", "larder", "online"],
        );
        pg
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let exe = self.bindir.join(tool);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        let out = cmd.args(args).output().expect("run a PostgreSQL tool");
        assert!(
            out.status.success(),
            "{tool} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Whether the process runs as root (uid 0), read from `/proc/self/status`.
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

impl Drop for PostgresProcess {
    fn drop(&mut self) {
        let exe = self.bindir.join("pg_ctl");
        let data = self.data();
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        let _ = cmd
            .args(["-D", &data, "-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
