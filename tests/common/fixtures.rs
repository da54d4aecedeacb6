//! ExApp-like images and real containers on an isolated engine, made with the
//! docker CLI and no registry: `docker import` of small tarballs, classic
//! `docker build` FROM them for shared layers, and a static busybox for
//! containers that really run.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// `docker run` of a fixture container: in the background, without a
/// network, and stopped within a second when its engine stops (`sleep` as
/// PID 1 ignores SIGTERM, and an engine waits 10 s per container before it
/// kills it: every stop of engine C, and of the harness's engines, waited).
pub const RUN: [&str; 6] = ["run", "-d", "--network", "none", "--stop-timeout", "1"];

/// Fixtures on one engine. Names carry a per-test prefix so tests sharing an
/// engine never see each other's images.
pub struct Fixtures {
    host: String,
    prefix: String,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl Fixtures {
    pub fn new(host: &str) -> Self {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        Self {
            host: host.to_owned(),
            prefix: format!("t{}x{n}", std::process::id()),
        }
    }

    /// A name unique to this test, for repositories and containers.
    pub fn unique(&self, name: &str) -> String {
        format!("{}-{name}", self.prefix)
    }

    /// Runs the docker CLI against this engine; panics with its output on failure.
    pub fn docker(&self, args: &[&str]) -> String {
        self.docker_in(None, args, None)
    }

    /// Runs the docker CLI and says whether it succeeded, never panicking:
    /// for removing what a test made, in a `Drop` that may run in a panic.
    pub fn try_docker(&self, args: &[&str]) -> bool {
        Command::new("docker")
            .arg("-H")
            .arg(&self.host)
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn docker_in(&self, dir: Option<&Path>, args: &[&str], stdin: Option<Vec<u8>>) -> String {
        use std::io::Write;
        let mut command = Command::new("docker");
        command
            .arg("-H")
            .arg(&self.host)
            .args(args)
            .env("DOCKER_BUILDKIT", "0")
            .env("DOCKER_CLI_HINTS", "false")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        if let Some(dir) = dir {
            command.current_dir(dir);
        }
        let mut child = command.spawn().expect("the docker CLI is installed");
        if let Some(bytes) = stdin {
            child.stdin.take().unwrap().write_all(&bytes).unwrap();
        }
        drop(child.stdin.take());
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "docker {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// `docker import` of a tarball holding `files` (path, size in bytes of
    /// distinct content); returns the image ID.
    pub fn import(&self, reference: &str, files: &[(&str, usize)]) -> String {
        let dir = tempfile::tempdir().unwrap();
        for (i, (path, size)) in files.iter().enumerate() {
            let full = dir.path().join(path);
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(&full, content(&format!("{reference}/{path}/{i}"), *size)).unwrap();
        }
        let tar = Command::new("tar")
            .arg("-C")
            .arg(dir.path())
            .args(["-c", "."])
            .output()
            .unwrap();
        assert!(tar.status.success());
        self.docker_in(None, &["import", "-", reference], Some(tar.stdout))
    }

    /// Classic `docker build` of `FROM base` plus one layer of `size` bytes,
    /// so the result shares the base's layers. Returns the image ID.
    ///
    /// One step only: every step of the classic builder is a container whose
    /// whole root file system the engines' vfs driver copies, so a second
    /// (even a metadata-only LABEL) doubles the time of the suite's commonest
    /// fixture, and leaves an untagged intermediate image behind.
    pub fn build(&self, reference: &str, base: &str, size: usize) -> String {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("payload"), content(reference, size)).unwrap();
        std::fs::write(
            dir.path().join("Dockerfile"),
            format!(
                "FROM {base}\nCOPY payload /payload-{}\n",
                sanitize(reference)
            ),
        )
        .unwrap();
        self.docker_in(
            Some(dir.path()),
            &["build", "-q", "-t", reference, "."],
            None,
        )
    }

    /// An image holding a static busybox, so containers really run.
    pub fn busybox(&self, reference: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::copy("/bin/busybox", bin.join("busybox")).expect("busybox-static is installed");
        for applet in ["sh", "sleep", "true", "false"] {
            std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
        }
        let tar = Command::new("tar")
            .arg("-C")
            .arg(dir.path())
            .args(["-c", "."])
            .output()
            .unwrap();
        assert!(tar.status.success());
        self.docker_in(
            None,
            &[
                "import",
                "--change",
                "CMD [\"sleep\", \"3600\"]",
                "-",
                reference,
            ],
            Some(tar.stdout),
        )
    }

    /// Whether the engine still has an image by this ID (`sha256:…`).
    pub fn has_id(&self, id: &str) -> bool {
        self.docker(&["images", "-aq", "--no-trunc"])
            .lines()
            .any(|l| l == id)
    }

    /// Whether the engine still has an image by this reference.
    pub fn has(&self, reference: &str) -> bool {
        !self.docker(&["images", "-q", reference]).is_empty()
    }

    /// `LayersSize` of `GET /system/df`: all distinct layers, the ground
    /// truth of bytes freed (asked with curl; bollard's types lack the field).
    pub fn layers_size(&self) -> i64 {
        let socket = self
            .host
            .strip_prefix("unix://")
            .expect("a unix socket engine");
        let out = Command::new("curl")
            .args(["-sf", "--unix-socket", socket, "http://localhost/system/df"])
            .output()
            .expect("curl is installed");
        assert!(out.status.success(), "curl failed");
        let df: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        df["LayersSize"].as_i64().expect("LayersSize")
    }

    /// A running container (no network) from a busybox image.
    pub fn run(&self, name: &str, image: &str) -> String {
        let mut args = RUN.to_vec();
        args.extend(["--name", name, image]);
        self.docker(&args)
    }

    /// A container that exists but never started (any image: it never runs).
    pub fn create(&self, name: &str, image: &str) -> String {
        self.docker(&[
            "create",
            "--network",
            "none",
            "--name",
            name,
            image,
            "sleep",
            "3600",
        ])
    }
}

/// Deterministic, incompressible-enough bytes that differ per seed.
fn content(seed: &str, size: usize) -> Vec<u8> {
    let mut state: u64 = seed.bytes().fold(0xcbf29ce484222325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    });
    // Eight bytes a step: the realistic fixtures write hundreds of MB.
    let mut out = Vec::with_capacity(size + 8);
    while out.len() < size {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(size);
    out
}

fn sanitize(reference: &str) -> String {
    reference
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}
