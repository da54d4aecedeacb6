#!/usr/bin/env python3
"""The scan benchmark's fixture: 1,000 ExApp-like images in one `docker save`
archive, loaded with a single `docker load` (building them one by one is far
too slow on the vfs storage driver), and the plan of the 100 containers to
create from them.

    bench_fixture.py plan           print the plan (JSON) on stdout
    bench_fixture.py write FILE     write the archive to FILE, then print the plan

The plan is what tests/bench/scan.rs needs to check for, and complete, the
fixture on an engine: the label every fixture image carries, every image
reference, and every container (name and image).

Layout (1,000 images, every layer a few KB because vfs copies the whole tree
for each layer):

* 4 bases, each two layers, shared by 10 ExApps each;
* 40 ExApps (app00..app39), each two layers of its own shared by its 24
  versions `ghcr.io/nextcloud-bench/appNN:1.0.V` (V = 0..23; apps with NN % 5
  == 3 are tagged `-cuda`, NN % 5 == 4 `-cpu`), plus one small layer unique
  to each version;
* 40 non-ExApp images `registry.example.org/bench/toolNN:latest`: a base and
  one layer of their own.

Each image has the history Docker would have made (one step per layer, plus
metadata steps with `empty_layer`), so `GET /images/{id}/history` gives sizes.

Containers (100, created, not started): `nc_app_appNN` from each ExApp's
newest version; `bench_other_NN` from every tool image (40) and from the
second-newest version of app00..app19 (20).

Only the standard library; the output is byte-for-byte reproducible, so
loading it again changes nothing.
"""

import hashlib
import io
import json
import platform
import sys
import tarfile

LABEL = "org.exapp-janitor.bench"
FIXTURE_VERSION = "fixture-v1"
BASES = 4
APPS = 40
VERSIONS = 24
TOOLS = 40
# 2001-09-09T01:46:40Z: a fixed time, so the archive never changes.
EPOCH = 1_000_000_000
ARCH = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine(), "amd64")


def filler(seed, size):
    """`size` bytes that differ for every seed and do not compress away."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}/{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


def tar_bytes(entries):
    """A reproducible tar of (path, bytes or None for a directory, mode)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for path, data, mode in entries:
            info = tarfile.TarInfo(path)
            info.mtime = EPOCH
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mode = mode
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def rfc3339(secs):
    import datetime

    return datetime.datetime.fromtimestamp(secs, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Layer:
    def __init__(self, name, entries, created_by):
        self.tar = tar_bytes(entries)
        self.diff_id = sha256(self.tar)
        self.path = self.diff_id[len("sha256:"):] + "/layer.tar"
        self.created_by = created_by


def base_layers(b):
    return [
        Layer(
            f"base{b}-os",
            [
                ("etc/", None, 0o755),
                ("etc/os-release", f"NAME=benchos\nVERSION_ID={b}\n".encode() + filler(f"os{b}", 2000), 0o644),
                ("bin/", None, 0o755),
                ("bin/sh", filler(f"sh{b}", 3000), 0o755),
            ],
            f"/bin/sh -c #(nop) ADD file:base{b}-rootfs in / ",
        ),
        Layer(
            f"base{b}-runtime",
            [
                ("usr/", None, 0o755),
                ("usr/lib/", None, 0o755),
                ("usr/lib/runtime.so", filler(f"runtime{b}", 4000), 0o644),
            ],
            f"/bin/sh -c apt-get install -y python3 # base{b}",
        ),
    ]


def app_layers(a):
    return [
        Layer(
            f"app{a:02}-deps",
            [
                ("usr/lib/python3/", None, 0o755),
                (f"usr/lib/python3/deps_app{a:02}.py", filler(f"deps{a}", 3500), 0o644),
            ],
            f"/bin/sh -c pip install -r requirements.txt # app{a:02}",
        ),
        Layer(
            f"app{a:02}-code",
            [
                ("app/", None, 0o755),
                ("app/main.py", filler(f"code{a}", 2500), 0o644),
            ],
            f"/bin/sh -c #(nop) COPY dir:app{a:02} in /app ",
        ),
    ]


def version_layer(key, text):
    return Layer(
        key,
        [
            ("app/", None, 0o755),
            ("app/VERSION", text.encode() + b"\n" + filler(key, 1500), 0o644),
        ],
        f"/bin/sh -c echo {text} > /app/VERSION",
    )


def build():
    """Every image (tag, config bytes, layers) and the container plan."""
    bases = [base_layers(b) for b in range(BASES)]
    images = []  # (reference, config bytes, [Layer])

    def image(reference, layers, created, env, labels, cmd):
        history = []
        for i, layer in enumerate(layers):
            history.append({"created": rfc3339(created - 100 + i), "created_by": layer.created_by})
            if i == 1:  # after the base: a metadata step, as a Dockerfile's ENV
                history.append(
                    {"created": rfc3339(created - 100 + i), "created_by": '/bin/sh -c #(nop)  ENV LANG=C.UTF-8', "empty_layer": True}
                )
        history.append({"created": rfc3339(created), "created_by": "/bin/sh -c #(nop)  LABEL " + LABEL, "empty_layer": True})
        history.append({"created": rfc3339(created), "created_by": '/bin/sh -c #(nop)  CMD ["/app/run"]', "empty_layer": True})
        config = {
            "architecture": ARCH,
            "os": "linux",
            "created": rfc3339(created),
            "config": {
                "Env": ["PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8"] + env,
                "Cmd": cmd,
                "WorkingDir": "/app",
                "Labels": dict(labels, **{LABEL: FIXTURE_VERSION}),
            },
            "rootfs": {"type": "layers", "diff_ids": [l.diff_id for l in layers]},
            "history": history,
        }
        data = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
        images.append((reference, data, layers))

    current, old_versions, tools = [], [], []
    for a in range(APPS):
        base = bases[a // (APPS // BASES)]
        own = app_layers(a)
        suffix = {3: "-cuda", 4: "-cpu"}.get(a % 5, "")
        repo = f"ghcr.io/nextcloud-bench/app{a:02}"
        for v in range(VERSIONS):
            version = f"1.0.{v}"
            reference = f"{repo}:{version}{suffix}"
            image(
                reference,
                base + own + [version_layer(f"app{a:02}-v{v}", f"app{a:02} {version}{suffix}")],
                EPOCH + a * 100_000 + v * 3600,
                [f"APP_ID=app{a:02}", f"APP_VERSION={version}"],
                {"org.opencontainers.image.version": version},
                ["/app/run"],
            )
            if v == VERSIONS - 1:
                current.append({"name": f"nc_app_app{a:02}", "image": reference})
            if v == VERSIONS - 2 and a < 20:
                old_versions.append(reference)
    for t in range(TOOLS):
        reference = f"registry.example.org/bench/tool{t:02}:latest"
        image(
            reference,
            bases[t % BASES][:1] + [version_layer(f"tool{t:02}", f"tool{t:02}")],
            EPOCH + 5_000_000 + t * 60,
            [],
            {},
            ["/bin/sh"],
        )
        tools.append(reference)
    others = tools + old_versions
    plan = {
        "label": LABEL,
        "label_value": FIXTURE_VERSION,
        "images": [reference for reference, _, _ in images],
        "containers": current + [{"name": f"bench_other_{i:02}", "image": ref} for i, ref in enumerate(others)],
    }
    return images, plan


def write(path, images):
    manifest, seen = [], set()
    with open(path, "wb") as out, tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:

        def add(name, data):
            info = tarfile.TarInfo(name)
            info.mtime = EPOCH
            info.mode = 0o644
            info.uname = info.gname = "root"
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        for reference, config, layers in images:
            config_name = hashlib.sha256(config).hexdigest() + ".json"
            add(config_name, config)
            for layer in layers:
                if layer.path not in seen:
                    seen.add(layer.path)
                    add(layer.path, layer.tar)
            manifest.append({"Config": config_name, "RepoTags": [reference], "Layers": [l.path for l in layers]})
        add("manifest.json", json.dumps(manifest, separators=(",", ":")).encode())


def main(argv):
    images, plan = build()
    if argv[1:2] == ["plan"] and len(argv) == 2:
        pass
    elif argv[1:2] == ["write"] and len(argv) == 3:
        write(argv[2], images)
    else:
        sys.exit("usage: bench_fixture.py plan | write FILE")
    json.dump(plan, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv)
