//! A throwaway PostgreSQL cluster for test processes that were given no
//! `SNOWBOUND_TEST_POSTGRES_URL`: so `cargo test` on a fresh machine needs the
//! `postgresql` package installed, not a server running on a fixed port.
//!
//! One cluster per test process, started on first use and shared by all its tests (each
//! test still gets a schema of its own). It is stopped and removed when the process ends,
//! however it ends: a watchdog in its own process group waits on a pipe the test process
//! holds, and the kernel closes that pipe on exit, even after SIGKILL.

use std::io::Write;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::OnceLock;

/// Started on first use; `Err` is the reason every PostgreSQL test of this process fails.
static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();

struct Cluster {
    url: String,
    /// Never written to: its closing (at process exit) is what tells the watchdog to stop
    /// the cluster.
    _watchdog: ChildStdin,
}

/// The URL of this process's throwaway cluster, starting it if it is not running yet.
pub fn throwaway_cluster_url() -> Result<String, String> {
    CLUSTER
        .get_or_init(Cluster::start)
        .as_ref()
        .map(|c| c.url.clone())
        .map_err(Clone::clone)
}

impl Cluster {
    fn start() -> Result<Cluster, String> {
        let bin = postgres_bin_dir()?;
        let as_postgres = is_root();
        let data = make_temp_dir(as_postgres)?;
        let initdb = run(
            as_postgres,
            Command::new(bin.join("initdb"))
                .args(["--auth=trust", "--username=postgres", "--encoding=UTF8"])
                .args(["--no-sync", "--no-instructions", "-D"])
                .arg(&data),
        );
        if let Err(e) = initdb {
            remove_dir(as_postgres, &data);
            return Err(e);
        }
        // Another process may take the free port between our probe and the server's bind;
        // a fresh port then is all it takes.
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port()?;
            let options = format!(
                "-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={} \
                 -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
                 -c max_connections=300",
                data.display()
            );
            let started = run(
                as_postgres,
                Command::new(bin.join("pg_ctl"))
                    .args(["start", "-w", "-t", "60", "-s", "-D"])
                    .arg(&data)
                    .arg("-l")
                    .arg(data.join("server.log"))
                    .arg("-o")
                    .arg(&options),
            );
            match started {
                Ok(()) => {
                    let watchdog = spawn_watchdog(as_postgres, &bin, &data)?;
                    return Ok(Cluster {
                        url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
                        _watchdog: watchdog,
                    });
                }
                Err(e) => last = e,
            }
        }
        remove_dir(as_postgres, &data);
        Err(format!("could not start a throwaway PostgreSQL: {last}"))
    }
}

/// The newest installed PostgreSQL's `bin` directory (Debian installs each major version
/// under `/usr/lib/postgresql/<major>/bin`).
fn postgres_bin_dir() -> Result<PathBuf, String> {
    let missing = || {
        "SNOWBOUND_TEST_POSTGRES_URL is unset and no PostgreSQL binaries were found under \
         /usr/lib/postgresql/*/bin: install the `postgresql` package (apt-get install postgresql, \
         or run scripts/test) or point SNOWBOUND_TEST_POSTGRES_URL at a server"
            .to_owned()
    };
    let entries = std::fs::read_dir("/usr/lib/postgresql").map_err(|_| missing())?;
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let major: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            (bin.join("initdb").is_file() && bin.join("pg_ctl").is_file()).then_some((major, bin))
        })
        .max_by_key(|(major, _)| *major)
        .map(|(_, bin)| bin)
        .ok_or_else(missing)
}

/// PostgreSQL refuses to run as root; as root the cluster belongs to the `postgres` user
/// the package creates.
fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.trim_ascii() == b"0")
        .unwrap_or(false)
}

fn as_user(as_postgres: bool, command: &mut Command) -> Command {
    let mut wrapped = if as_postgres {
        let mut runuser = Command::new("runuser");
        runuser
            .args(["-u", "postgres", "--"])
            .arg(command.get_program());
        runuser
    } else {
        Command::new(command.get_program())
    };
    wrapped.args(command.get_args());
    wrapped
}

/// Runs `command` (as `postgres` when asked) to completion; its output becomes the error.
fn run(as_postgres: bool, command: &mut Command) -> Result<(), String> {
    let mut wrapped = as_user(as_postgres, command);
    // The server pg_ctl forks inherits this group: outside the test's, a Ctrl-C leaves it
    // to the watchdog to stop rather than killing it half-way.
    wrapped.process_group(0);
    let shown = format!("{wrapped:?}");
    let output = wrapped
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{shown}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{shown} failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout).trim(),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// A directory the cluster's owner can write: made by that user, so no chown is needed.
fn make_temp_dir(as_postgres: bool) -> Result<PathBuf, String> {
    let mut mktemp = Command::new("mktemp");
    mktemp.args(["-d", "-p", "/tmp", "snowbound-pg-XXXXXX"]);
    let output = as_user(as_postgres, &mut mktemp)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("mktemp: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "mktemp failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(PathBuf::from(
        String::from_utf8_lossy(&output.stdout).trim().to_owned(),
    ))
}

fn remove_dir(as_postgres: bool, dir: &Path) {
    let _ = as_user(as_postgres, Command::new("rm").arg("-rf").arg(dir))
        .stdin(Stdio::null())
        .status();
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port on 127.0.0.1: {e}"))
}

/// A shell that blocks reading its stdin until the test process is gone, then stops the
/// server and removes its directory.
fn spawn_watchdog(as_postgres: bool, bin: &Path, data: &Path) -> Result<ChildStdin, String> {
    let script =
        r#"read -r _ || true; "$1" stop -m immediate -s -D "$2" >/dev/null 2>&1; rm -rf "$2""#;
    let mut child = as_user(
        as_postgres,
        Command::new("sh")
            .args(["-c", script, "snowbound-pg-watchdog"])
            .arg(bin.join("pg_ctl"))
            .arg(data),
    )
    .process_group(0)
    .stdin(Stdio::piped())
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .map_err(|e| format!("cannot start the PostgreSQL watchdog: {e}"))?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    // Nothing to say yet; a failed flush would only mean the watchdog already died.
    let _ = stdin.flush();
    Ok(stdin)
}
