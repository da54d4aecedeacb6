//! The Debian package, built with cargo-deb from the static release binary
//! and installed on this machine with dpkg, as an admin installs it.
//!
//! These tests change the machine (its dpkg database, a system user,
//! /var/lib/exapp-janitor), so each holds one lock for all of its time —
//! a file lock, which also keeps out a test run of another checkout on the
//! same machine — and leaves the machine as it found it. Systemd is not
//! running here: the maintainer scripts must cope, and nothing is started.

mod common;

use std::fs::File;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use common::harness_var;
use common::packaging::{repo, static_binary, target_dir, version_of};

const PACKAGE: &str = "exapp-janitor";
const USER: &str = "exapp-janitor";
const DATA: &str = "/var/lib/exapp-janitor";
const CONFIG: &str = "/etc/exapp-janitor.toml";
const UNIT: &str = "/usr/lib/systemd/system/exapp-janitor.service";
/// Written by these tests into the data dir right after an install: what
/// they find with it on a later run is theirs to clean up.
const MARKER: &str = ".made-by-exapp-janitor-tests";

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
}

fn ok(program: &str, args: &[&str]) -> String {
    let output = run(program, args);
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The machine's dpkg database and users, held for one test at a time.
struct HostLock(#[allow(dead_code)] File);

fn host_lock() -> HostLock {
    let file = File::create("/run/lock/exapp-janitor-debian-package-tests.lock")
        .expect("the package tests run as root");
    // SAFETY: flock on a descriptor this function owns.
    let rc = unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&file), libc::LOCK_EX) };
    assert_eq!(rc, 0, "flock: {}", std::io::Error::last_os_error());
    HostLock(file)
}

/// The package, built once per run of this binary with cargo-deb (the
/// pinned one `tests/harness/engines.sh install` puts in the harness cache)
/// into the target dir. Called under the host lock: the file is shared.
fn deb(_lock: &HostLock) -> &'static Path {
    static DEB: OnceLock<PathBuf> = OnceLock::new();
    DEB.get_or_init(|| {
        let binary = static_binary();
        let out = target_dir().join("tmp/debian");
        std::fs::create_dir_all(&out).unwrap();
        let cargo_deb = harness_var("EXAPP_JANITOR_TEST_CARGO_DEB");
        let output = Command::new(&cargo_deb)
            .args(["--no-build", "--no-strip", "--fast"])
            .args(["--target", "x86_64-unknown-linux-gnu"])
            .arg("--manifest-path")
            .arg(repo().join("Cargo.toml"))
            .arg("--output")
            .arg(&out)
            .env("CARGO_TARGET_DIR", target_dir())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {cargo_deb}: {e}"));
        assert!(
            output.status.success(),
            "cargo-deb failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let path = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        assert!(path.is_file(), "cargo-deb made {}", path.display());
        let size = std::fs::metadata(&path).unwrap().len();
        println!(
            "{}: {} bytes, from the static binary of {} bytes",
            path.display(),
            size,
            std::fs::metadata(binary).unwrap().len()
        );
        path
    })
}

/// `installed`, `config-files` (removed, conffiles kept) or `not-installed`
/// (also when dpkg has forgotten the package, as after a purge).
fn package_state() -> String {
    let output = run("dpkg-query", &["-W", "-f", "${db:Status-Status}", PACKAGE]);
    match String::from_utf8_lossy(&output.stdout).trim() {
        "" => "not-installed".to_owned(),
        state => state.to_owned(),
    }
}

fn user_exists() -> bool {
    run("getent", &["passwd", USER]).status.success()
}

/// Purges the package and removes the user, its group and the data dir.
fn remove_everything() {
    if package_state() != "not-installed" {
        ok("dpkg", &["--purge", PACKAGE]);
    }
    if user_exists() {
        ok("deluser", &["--quiet", "--system", USER]);
    }
    if run("getent", &["group", USER]).status.success() {
        ok("delgroup", &["--quiet", "--system", USER]);
    }
    // Last: the marker says a leftover is the tests' own.
    if Path::new(DATA).exists() {
        std::fs::remove_dir_all(DATA).unwrap();
    }
}

/// The machine with the package installed by this test; as it was before
/// when dropped.
struct Installed {
    lock: HostLock,
}

impl Installed {
    fn new() -> Self {
        let lock = host_lock();
        let leftover =
            package_state() != "not-installed" || user_exists() || Path::new(DATA).exists();
        if leftover {
            assert!(
                Path::new(DATA).join(MARKER).exists(),
                "this machine has exapp-janitor's package, user or {DATA}, not made by these \
                 tests, which install and remove them: remove them first \
                 (dpkg --purge {PACKAGE}; deluser --system {USER}; rm -r {DATA})"
            );
            remove_everything();
        }
        let deb = deb(&lock).to_string_lossy().into_owned();
        let installed = Self { lock };
        ok("dpkg", &["-i", &deb]);
        std::fs::write(Path::new(DATA).join(MARKER), b"").unwrap();
        installed
    }

    /// `exapp-janitor ARGS` as the service's user, as the README runs the CLI.
    fn cli_as_service_user(&self, args: &[&str]) -> Output {
        let mut all = vec!["-u", USER, "--", "/usr/bin/exapp-janitor"];
        all.extend(args);
        run("runuser", &all)
    }
}

impl Drop for Installed {
    fn drop(&mut self) {
        remove_everything();
    }
}

fn lines(text: &str) -> Vec<String> {
    text.lines().map(str::to_owned).collect()
}

#[test]
fn the_package_holds_the_binary_the_unit_and_the_config_as_a_conffile() {
    let lock = host_lock();
    let deb = deb(&lock).to_string_lossy().into_owned();
    let listing = ok("dpkg-deb", &["--contents", &deb]);
    for path in [
        "/usr/bin/exapp-janitor",
        UNIT,
        CONFIG,
        "/usr/share/doc/exapp-janitor/README.md",
    ] {
        let path = format!(".{path}");
        assert!(
            listing.contains(&format!(" {path}\n")),
            "{path} in:\n{listing}"
        );
    }
    let control = common::packaging::scratch_dir("deb-control");
    ok(
        "dpkg-deb",
        &["--control", &deb, &control.path().to_string_lossy()],
    );
    let conffiles = std::fs::read_to_string(control.path().join("conffiles")).unwrap();
    assert_eq!(lines(&conffiles), vec![CONFIG.to_owned()]);
    for script in ["postinst", "prerm", "postrm"] {
        let mode = std::fs::metadata(control.path().join(script))
            .unwrap_or_else(|e| panic!("{script}: {e}"))
            .permissions()
            .mode();
        assert_eq!(mode & 0o111, 0o111, "{script} is executable");
    }
}

#[test]
fn the_packaged_unit_is_the_one_the_readme_documents() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let unit =
        std::fs::read_to_string(repo().join("packaging/debian/exapp-janitor.service")).unwrap();
    let block = readme
        .split("```ini\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("the README shows the unit in an ```ini block");
    let block: String = block
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(block, unit);
}

#[test]
fn installing_without_systemd_creates_the_user_and_its_data_dir() {
    let _installed = Installed::new();
    let entry = ok("getent", &["passwd", USER]);
    let fields: Vec<&str> = entry.trim().split(':').collect();
    let uid: u32 = fields[2].parse().unwrap();
    assert!(uid < 1000, "a system user: {entry}");
    assert_eq!(fields[5], DATA, "its home: {entry}");
    assert!(fields[6].ends_with("nologin"), "no login shell: {entry}");
    let data = std::fs::metadata(DATA).unwrap();
    assert_eq!((data.uid(), data.mode() & 0o777), (uid, 0o700));
    if run("getent", &["group", "docker"]).status.success() {
        let groups = ok("id", &["-nG", USER]);
        assert!(
            groups.split_whitespace().any(|g| g == "docker"),
            "in the Docker socket's group: {groups}"
        );
    }
    assert_eq!(package_state(), "installed");
}

#[test]
fn the_installed_binary_says_its_version_and_lists_daemons_with_the_packaged_config() {
    let installed = Installed::new();
    assert_eq!(
        version_of(Path::new("/usr/bin/exapp-janitor")),
        version_of(static_binary())
    );
    let output = installed.cli_as_service_user(&["--config", CONFIG, "daemon", "list"]);
    assert!(
        output.status.success(),
        "daemon list: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let database = std::fs::metadata(Path::new(DATA).join("exapp-janitor.db"))
        .expect("the database in the packaged data dir");
    assert_eq!(database.mode() & 0o777, 0o600);
}

#[test]
fn removing_leaves_only_the_data_the_user_and_the_conffile() {
    let installed = Installed::new();
    let output = installed.cli_as_service_user(&["--config", CONFIG, "daemon", "list"]);
    assert!(output.status.success());
    let files: Vec<String> = lines(&ok("dpkg", &["-L", PACKAGE]))
        .into_iter()
        .filter(|p| Path::new(p).is_file())
        .collect();
    ok("dpkg", &["-r", PACKAGE]);
    let left: Vec<&String> = files.iter().filter(|p| Path::new(p).exists()).collect();
    assert_eq!(left, vec![CONFIG], "files of the package left behind");
    let enabled = ok(
        "find",
        &["/etc/systemd/system", "-name", "exapp-janitor.service"],
    );
    assert_eq!(enabled, "", "the service's enablement goes too");
    assert!(
        Path::new(DATA).join("exapp-janitor.db").is_file(),
        "the data stays"
    );
    assert!(user_exists(), "the user stays");
    assert_eq!(package_state(), "config-files");
}

#[test]
fn purging_also_removes_the_conffile_and_keeps_data_and_user() {
    let installed = Installed::new();
    let output = installed.cli_as_service_user(&["--config", CONFIG, "daemon", "list"]);
    assert!(output.status.success());
    ok("dpkg", &["--purge", PACKAGE]);
    assert!(!Path::new(CONFIG).exists());
    assert!(
        Path::new(DATA).join("exapp-janitor.db").is_file(),
        "the data stays"
    );
    assert!(user_exists(), "the user stays");
    assert_eq!(package_state(), "not-installed");
}

#[test]
fn installing_again_keeps_the_data_and_the_user() {
    let installed = Installed::new();
    let output = installed.cli_as_service_user(&["--config", CONFIG, "daemon", "list"]);
    assert!(output.status.success());
    let uid_before = std::fs::metadata(DATA).unwrap().uid();
    let database = Path::new(DATA).join("exapp-janitor.db");
    let written = std::fs::metadata(&database).unwrap().modified().unwrap();
    ok("dpkg", &["-i", &deb(&installed.lock).to_string_lossy()]);
    assert_eq!(std::fs::metadata(DATA).unwrap().uid(), uid_before);
    assert_eq!(
        std::fs::metadata(&database).unwrap().modified().unwrap(),
        written,
        "the database is left as it was"
    );
    let output = installed.cli_as_service_user(&["--config", CONFIG, "daemon", "list"]);
    assert!(output.status.success(), "the CLI still opens it");
}
