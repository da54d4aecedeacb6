//! What the packaging tests ship: the static release binary of
//! `packaging/build-static.sh`, which the container image and the Debian
//! package hold, and the repository's own files (Dockerfile, compose.yaml,
//! README).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The repository (where Cargo.toml is).
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The cargo target directory this test was built in (`CARGO_TARGET_DIR`
/// or `target/`): its debug binary is `<target>/debug/exapp-janitor`.
pub fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_exapp-janitor"))
        .ancestors()
        .nth(2)
        .expect("the binary lies in <target>/debug/")
        .to_owned()
}

/// A folder of this test run's own under `<target>/tmp/` (a test run never
/// writes into the tracked tree).
pub fn scratch_dir(name: &str) -> tempfile::TempDir {
    let parent = target_dir().join("tmp");
    std::fs::create_dir_all(&parent).unwrap();
    tempfile::Builder::new()
        .prefix(name)
        .tempdir_in(parent)
        .unwrap()
}

/// The variables `cargo test` sets for the tests it runs (`*`: a prefix).
const SET_BY_CARGO_TEST: [&str; 8] = [
    "CARGO_PKG_*",
    "CARGO_MANIFEST_*",
    "CARGO_CRATE_*",
    "CARGO_BIN_*",
    "CARGO_PRIMARY_PACKAGE",
    "CARGO_TARGET_TMPDIR",
    "CARGO_RUSTC_CURRENT_DIR",
    "OUT_DIR",
];

/// The static release binary, built by `packaging/build-static.sh` into this
/// target directory. The suite builds it before the tests run
/// (tests/harness/run-tests.sh); the script runs again here, once per test
/// binary, so that a test never ships a binary older than the sources
/// (cargo finds nothing to do when it is fresh).
pub fn static_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let target = target_dir();
        let mut command = Command::new(repo().join("packaging/build-static.sh"));
        command.arg("--target-dir").arg(&target).arg("--quiet");
        // What `cargo test` sets for a test process is not the environment
        // of the suite's own build: some dependencies' build scripts track
        // CARGO_MANIFEST_DIR, and a change of it rebuilds them all.
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            if SET_BY_CARGO_TEST.iter().any(|set| match set.strip_suffix('*') {
                Some(prefix) => name.starts_with(prefix),
                None => name == *set,
            }) {
                command.env_remove(name.as_ref());
            }
        }
        let status = command.status().expect("run packaging/build-static.sh");
        assert!(
            status.success(),
            "packaging/build-static.sh failed ({status}): the packaging tests need the static release binary"
        );
        let binary = target.join("x86_64-unknown-linux-gnu/release/exapp-janitor");
        assert!(binary.is_file(), "{} is missing", binary.display());
        binary
    })
}

/// Whether an ELF executable needs no program interpreter (`ld.so`), so no
/// shared library either: its program headers hold no PT_INTERP. (A
/// static-pie binary still has a dynamic section, to relocate itself.)
pub fn is_static_elf(path: &Path) -> bool {
    const PT_INTERP: u32 = 3;
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(
        &bytes[..4],
        b"\x7fELF",
        "{} is not an ELF file",
        path.display()
    );
    assert_eq!(bytes[4], 2, "a 64-bit ELF file");
    let u16_at = |at: usize| u16::from_le_bytes(bytes[at..at + 2].try_into().unwrap()) as usize;
    let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()) as usize;
    let (table, entry_size, entries) = (u64_at(0x20), u16_at(0x36), u16_at(0x38));
    (0..entries).all(|i| u32_at(table + i * entry_size) != PT_INTERP)
}

/// `--version` of a binary, trimmed.
pub fn version_of(binary: &Path) -> String {
    let output = Command::new(binary).arg("--version").output().unwrap();
    assert!(
        output.status.success(),
        "{} --version failed",
        binary.display()
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// Megabytes (10^6 bytes), as `docker images` and the README count them.
pub fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}
