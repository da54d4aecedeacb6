//! The vendored HaRP and haproxyspoa (tests/third_party/, run by the test
//! harness) are the unmodified upstream files MANIFEST.txt lists, and nothing else.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// MANIFEST.txt itself, pinned here: a file changed together with its line in
/// the manifest still fails. Change both together, on purpose only.
const MANIFEST_SHA256: &str = "9d3e09649236a430dc4f16af807fb37e8be5f14458c8b85d6474d740a18198ac";

/// The vendored trees; every file in them is in the manifest.
const VENDORED_DIRS: [&str; 2] = ["harp-v0.4.4", "haproxy-python-spoa-f00f3f7"];

fn third_party() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/third_party")
}

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

struct Entry {
    path: String,
    size: u64,
    sha256: String,
}

/// MANIFEST.txt's lines `path bytes git-blob sha256` (`#` lines are comments).
fn manifest() -> Vec<Entry> {
    let text = std::fs::read_to_string(third_party().join("MANIFEST.txt")).unwrap();
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(fields.len(), 4, "MANIFEST.txt: malformed line {line:?}");
            Entry {
                path: fields[0].to_owned(),
                size: fields[1].parse().expect("a size in bytes"),
                sha256: fields[3].to_owned(),
            }
        })
        .collect()
}

fn files_under(dir: &Path, root: &Path, out: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        // Python's bytecode cache, should anything import the tree in place
        // (the harness runs it with PYTHONDONTWRITEBYTECODE).
        if path.file_name().is_some_and(|n| n == "__pycache__") {
            continue;
        }
        if path.is_dir() {
            files_under(&path, root, out);
        } else {
            let relative = path.strip_prefix(root).unwrap();
            out.insert(relative.to_str().unwrap().to_owned());
        }
    }
}

#[test]
fn the_manifest_is_the_pinned_one() {
    let bytes = std::fs::read(third_party().join("MANIFEST.txt")).unwrap();
    assert_eq!(
        sha256(&bytes),
        MANIFEST_SHA256,
        "tests/third_party/MANIFEST.txt was changed"
    );
    let text = String::from_utf8(bytes).unwrap();
    assert!(text.contains("github.com/nextcloud/HaRP @ d9d364389e430e201af7f49f7af5d4448baabae6"));
    assert!(text.contains(
        "github.com/cloud-py-api/haproxy-python-spoa @ f00f3f7b1b0f56e10052af6c0d07e81c5195d84d"
    ));
}

#[test]
fn every_vendored_file_is_the_upstream_file() {
    let entries = manifest();
    assert!(entries.len() >= 10, "MANIFEST.txt lists too few files");
    let mut wrong = Vec::new();
    for entry in &entries {
        let bytes = std::fs::read(third_party().join(&entry.path))
            .unwrap_or_else(|e| panic!("tests/third_party/{}: {e}", entry.path));
        if bytes.len() as u64 != entry.size || sha256(&bytes) != entry.sha256 {
            wrong.push(entry.path.as_str());
        }
    }
    assert!(
        wrong.is_empty(),
        "modified or replaced, not the upstream files of MANIFEST.txt: {wrong:?}"
    );
}

#[test]
fn the_vendored_trees_hold_nothing_else() {
    let listed: BTreeSet<String> = manifest().into_iter().map(|e| e.path).collect();
    let mut present = BTreeSet::new();
    for dir in VENDORED_DIRS {
        files_under(&third_party().join(dir), &third_party(), &mut present);
    }
    let unlisted: Vec<&String> = present.difference(&listed).collect();
    assert!(
        unlisted.is_empty(),
        "files in tests/third_party/ that MANIFEST.txt does not list: {unlisted:?}"
    );
}
