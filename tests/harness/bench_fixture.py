#!/usr/bin/env python3
"""The scan benchmark's fixture (issue #8): 2,000 images on two daemons, 40
ExApps with 5-10 versions each, layers shared between versions, and 200
containers. Images go to an engine as one `docker save`-format archive and a
single `docker load` (building them one by one is far too slow on the vfs
storage driver); the containers are created from the plan.

    bench_fixture.py plan SPEC          print the plan (JSON) on stdout
    bench_fixture.py write SPEC FILE    read a JSON list of references already on
                                        the engine from stdin, write the archive
                                        of the other images to FILE, print the plan

SPEC says which part of the fixture one engine gets:

    a        app00..app19 and half of the other images: 1,000 images, 100 containers
    b        app20..app39 and the other half: 1,000 images, 100 containers
    scale:N  the first N (1..2000) images of the whole fixture, for one engine,
             in an order where every prefix is a miniature of the whole: each
             ExApp's versions together (newest first), the other images and
             the containers spread evenly; with the containers whose image is
             in the prefix. scale:2000 is the whole fixture on one engine.

An ExApp lives on one daemon, as in Nextcloud, so a and b share no ExApp.

The plan is what tests/bench/scan.rs needs to check for, and complete, the
fixture on an engine:

    label, label_value   the label every fixture image carries
    images               one reference per image (its first tag)
    extra_tags           {reference: [its other tags]} for images with two tags
    containers           [{name, image}] to create (created, never started)

Layout (every layer a few KB: vfs copies the whole tree for each layer):

* 4 bases, each two layers; ExApps and other images build on them.
* 40 ExApps `ghcr.io/nextcloud-bench/appNN` (NN = 00..39), 5 + NN % 6
  versions each (296 images): `:1.0.V`, `:1.0.V-cuda` when NN % 5 == 3,
  `:1.0.V-cpu` when NN % 5 == 4. A base (shared by 10 ExApps), two layers of
  the ExApp's own shared by all its versions, and one small layer per version.
* 1,704 other images (not an ExApp's) in `registry.example.org/bench/`, in a
  repeating cycle of kinds: `toolNNN:latest` (one image), `dbNNN:13`..`:17`
  (the newest also `:latest`), `cacheNNN:7.0`, `:7.2`, `:7.4`,
  `proxyNNN:1.25.0`..`:1.25.7` (the newest also `:1.25`), `queueNNN:3.12`,
  `:3.13`, `searchNNN:8.11.0`..`:8.11.5`, `workerNNN:2024.01`..`:2024.04`,
  `monitorNNN:v2` (also `:latest`). A base (one or both of its layers), a
  layer per repository when it has several images, and one per image. The
  repositories alternate between a and b; the last one of each part has
  fewer images, so each part holds exactly 1,000.
* Containers, 100 per part: `nc_app_appNN` on each ExApp's newest version
  (20); `bench_prev_appNN` on the second-newest version of the ExApps with
  NN % 4 == 1 (5; an outdated version still in use); `bench_other_a00`..`a74`
  (`b00`..`b74`) on other images evenly spread over the part (75).

So a scan of part a should see: current 20, in use 80, outdated 121,
foreign 779; part b: current 20, in use 80, outdated 125, foreign 775.

Each image has the history Docker would have made (one step per layer, plus
metadata steps with `empty_layer`), so `GET /images/{id}/history` gives sizes.
Only the standard library; the archive is byte-for-byte reproducible (for the
same SPEC and stdin), so loading it again changes nothing.
"""

import datetime
import hashlib
import io
import json
import platform
import sys
import tarfile

LABEL = "org.exapp-janitor.bench"
# v2: the 2,000-image layout of issue #8 (v1 held 1,000 images per engine).
FIXTURE_VERSION = "fixture-v2"
TOTAL_IMAGES = 2000
BASES = 4
APPS = 40
PARTS = {"a": range(0, 20), "b": range(20, 40)}
PART_IMAGES = 1000
# ExApps with a container on their second-newest version too.
PREVIOUS_IN_USE = [a for a in range(APPS) if a % 4 == 1]
# Containers on other images, per part: 100 minus the ExApps' 20 + 5.
OTHER_CONTAINERS = 75
REGISTRY = "registry.example.org/bench"
# 2001-09-09T01:46:40Z: a fixed time, so the archive never changes.
EPOCH = 1_000_000_000
ARCH = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine(), "amd64")


def versions(a):
    """How many versions ExApp `a` has: 5..10."""
    return 5 + a % 6


# The other images' repositories, by kind, in a repeating cycle:
# (kind, tags of its images oldest first, extra tag of the newest or None).
KINDS = [
    ("tool", ["latest"], None),
    ("db", ["13", "14", "15", "16", "17"], "latest"),
    ("cache", ["7.0", "7.2", "7.4"], None),
    ("proxy", [f"1.25.{i}" for i in range(8)], "1.25"),
    ("tool", ["latest"], None),
    ("queue", ["3.12", "3.13"], None),
    ("search", [f"8.11.{i}" for i in range(6)], None),
    ("worker", [f"2024.{m:02}" for m in range(1, 5)], None),
    ("monitor", ["v2"], "latest"),
]


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
    return datetime.datetime.fromtimestamp(secs, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Layer:
    def __init__(self, entries, created_by):
        self.tar = tar_bytes(entries)
        self.diff_id = sha256(self.tar)
        self.path = self.diff_id[len("sha256:"):] + "/layer.tar"
        self.created_by = created_by


def base_layers(b):
    return [
        Layer(
            [
                ("etc/", None, 0o755),
                ("etc/os-release", f"NAME=benchos\nVERSION_ID={b}\n".encode() + filler(f"os{b}", 2000), 0o644),
                ("bin/", None, 0o755),
                ("bin/sh", filler(f"sh{b}", 3000), 0o755),
            ],
            f"/bin/sh -c #(nop) ADD file:base{b}-rootfs in / ",
        ),
        Layer(
            [
                ("usr/", None, 0o755),
                ("usr/lib/", None, 0o755),
                ("usr/lib/runtime.so", filler(f"runtime{b}", 4000), 0o644),
            ],
            f"/bin/sh -c apt-get install -y python3 # base{b}",
        ),
    ]


def app_layers(name):
    """An ExApp's own layers, shared by all its versions."""
    return [
        Layer(
            [
                ("usr/lib/python3/", None, 0o755),
                (f"usr/lib/python3/deps_{name}.py", filler(f"deps-{name}", 3500), 0o644),
            ],
            f"/bin/sh -c pip install -r requirements.txt # {name}",
        ),
        Layer(
            [("app/", None, 0o755), ("app/main.py", filler(f"code-{name}", 2500), 0o644)],
            f"/bin/sh -c #(nop) COPY dir:{name} in /app ",
        ),
    ]


def repository_layer(name):
    """A layer shared by the images of one non-ExApp repository."""
    return Layer(
        [("opt/", None, 0o755), (f"opt/{name}.bin", filler(f"repo-{name}", 3000), 0o755)],
        f"/bin/sh -c #(nop) COPY file:{name} in /opt ",
    )


def version_layer(key, text):
    """The one small layer that makes an image (a version, a tag) unique."""
    return Layer(
        [("app/", None, 0o755), ("app/VERSION", text.encode() + b"\n" + filler(key, 1500), 0o644)],
        f"/bin/sh -c echo {text} > /app/VERSION",
    )


class Image:
    """One image: its tags (first = its reference in the plan), its layers and
    the config `docker load` gets."""

    def __init__(self, tags, layers, created, env, labels, cmd):
        self.tags = tags
        self.layers = layers
        history = []
        for i, layer in enumerate(layers):
            history.append({"created": rfc3339(created - 100 + i), "created_by": layer.created_by})
            if i == 1:  # after the base: a metadata step, as a Dockerfile's ENV
                history.append(
                    {"created": rfc3339(created - 100 + i), "created_by": "/bin/sh -c #(nop)  ENV LANG=C.UTF-8", "empty_layer": True}
                )
        history.append({"created": rfc3339(created), "created_by": "/bin/sh -c #(nop)  LABEL " + LABEL, "empty_layer": True})
        history.append({"created": rfc3339(created), "created_by": f"/bin/sh -c #(nop)  CMD {json.dumps(cmd)}", "empty_layer": True})
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
        self.config = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()

    @property
    def reference(self):
        return self.tags[0]


class Fixture:
    """The whole fixture: ExApps, other images and containers, and which
    part (a or b) each belongs to."""

    def __init__(self):
        self.bases = [base_layers(b) for b in range(BASES)]
        # app -> its images, oldest version first
        self.apps = {a: self.exapp(a) for a in range(APPS)}
        # part -> [(repository index, [Image] oldest first)]
        self.others = self.other_images()
        # part -> [{name, image}]
        self.containers = {part: self.part_containers(part) for part in PARTS}

    def exapp(self, a):
        name = f"app{a:02}"
        own = app_layers(name)
        suffix = {3: "-cuda", 4: "-cpu"}.get(a % 5, "")
        images = []
        for v in range(versions(a)):
            version = f"1.0.{v}"
            images.append(
                Image(
                    [f"ghcr.io/nextcloud-bench/{name}:{version}{suffix}"],
                    self.bases[a * BASES // APPS] + own + [version_layer(f"{name}-v{v}", f"{name} {version}{suffix}")],
                    EPOCH + a * 100_000 + v * 3600,
                    [f"APP_ID={name}", f"APP_VERSION={version}"],
                    {"org.opencontainers.image.version": version},
                    ["/app/run"],
                )
            )
        return images

    def other_images(self):
        """Repositories of the cycle in KINDS, alternately for a and b, until
        each part has PART_IMAGES images in all."""
        quota = {part: PART_IMAGES - sum(versions(a) for a in apps) for part, apps in PARTS.items()}
        others = {part: [] for part in PARTS}
        serial = {}
        r = 0
        while any(quota.values()):
            part = "ab"[r % 2] if quota["ab"[r % 2]] else "ab"[1 - r % 2]
            kind, tags, extra = KINDS[r % len(KINDS)]
            serial[kind] = serial.get(kind, 0) + 1
            repo = f"{REGISTRY}/{kind}{serial[kind]:03}"
            # The part's last repository: its oldest images only.
            tags = tags[: quota[part]]
            quota[part] -= len(tags)
            others[part].append((r, self.repository(r, repo, tags, extra)))
            r += 1
        return others

    def repository(self, r, repo, tags, extra):
        name = repo.rsplit("/", 1)[1]
        base = self.bases[r % BASES]
        # Varied depths: single images on one base layer, others on both and
        # a layer shared by the repository's images.
        shared = base[:1] if len(tags) == 1 else base + [repository_layer(name)]
        images = []
        for i, tag in enumerate(tags):
            newest = i == len(tags) - 1
            images.append(
                Image(
                    [f"{repo}:{tag}"] + ([f"{repo}:{extra}"] if newest and extra else []),
                    shared + [version_layer(f"{name}:{tag}", f"{name} {tag}")],
                    EPOCH + 5_000_000 + r * 600 + i * 60,
                    [f"SERVICE={name}"],
                    {"org.opencontainers.image.version": tag},
                    ["/opt/run"],
                )
            )
        return images

    def part_containers(self, part):
        apps = PARTS[part]
        containers = [{"name": f"nc_app_app{a:02}", "image": self.apps[a][-1].reference} for a in apps]
        containers += [
            {"name": f"bench_prev_app{a:02}", "image": self.apps[a][-2].reference} for a in apps if a in PREVIOUS_IN_USE
        ]
        # Evenly spread over the part's other images (the middle of each stretch).
        others = [image for _, images in self.others[part] for image in images]
        for i in range(OTHER_CONTAINERS):
            image = others[(2 * i + 1) * len(others) // (2 * OTHER_CONTAINERS)]
            containers.append({"name": f"bench_other_{part}{i:02}", "image": image.reference})
        return containers

    def part(self, part):
        """The images and containers of part a or b."""
        images = [image for a in PARTS[part] for image in self.apps[a]]
        images += [image for _, repo in self.others[part] for image in repo]
        return images, self.containers[part]

    def scale(self, n):
        """The first n images of the whole fixture in miniature order, and
        the containers whose images they hold."""
        # Two streams merged by how far along each is: ExApp blocks (newest
        # version first, so a cut block is still an ExApp in use) at the
        # middle of the block, other images one by one.
        blocks = [list(reversed(self.apps[a])) for a in range(APPS)]
        others = [image for _, repo in sorted(self.others["a"] + self.others["b"], key=lambda x: x[0]) for image in repo]
        exapp_total = sum(len(b) for b in blocks)
        keyed, done = [], 0
        for block in blocks:
            keyed.append(((done + len(block) / 2) / exapp_total, 0, block))
            done += len(block)
        for i, image in enumerate(others):
            keyed.append(((i + 0.5) / len(others), 1, [image]))
        keyed.sort(key=lambda k: (k[0], k[1]))
        order = [image for _, _, block in keyed for image in block]
        assert len(order) == TOTAL_IMAGES
        images = order[:n]
        held = {image.reference for image in images}
        containers = [c for part in PARTS for c in self.containers[part] if c["image"] in held]
        return images, containers


def parse_spec(spec):
    """'a', 'b' or ('scale', n); exits with the usage otherwise."""
    if spec in PARTS:
        return spec
    if spec.startswith("scale:") and spec[len("scale:"):].isdigit():
        n = int(spec[len("scale:"):])
        if 1 <= n <= TOTAL_IMAGES:
            return ("scale", n)
    sys.exit(f"bench_fixture.py: SPEC must be a, b or scale:N with 1 <= N <= {TOTAL_IMAGES}, not {spec!r}")


def select(spec):
    fixture = Fixture()
    parsed = parse_spec(spec)
    if isinstance(parsed, tuple):
        return fixture.scale(parsed[1])
    return fixture.part(parsed)


def plan(images, containers):
    return {
        "label": LABEL,
        "label_value": FIXTURE_VERSION,
        "images": [image.reference for image in images],
        "extra_tags": {image.reference: image.tags[1:] for image in images if len(image.tags) > 1},
        "containers": containers,
    }


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

        for image in images:
            config_name = hashlib.sha256(image.config).hexdigest() + ".json"
            add(config_name, image.config)
            # Every layer an image names goes in, even ones the engine may
            # hold already: `docker load` skips those it has.
            for layer in image.layers:
                if layer.path not in seen:
                    seen.add(layer.path)
                    add(layer.path, layer.tar)
            manifest.append({"Config": config_name, "RepoTags": image.tags, "Layers": [l.path for l in image.layers]})
        add("manifest.json", json.dumps(manifest, separators=(",", ":")).encode())


def main(argv):
    if argv[1:2] == ["plan"] and len(argv) == 3:
        images, containers = select(argv[2])
    elif argv[1:2] == ["write"] and len(argv) == 4:
        images, containers = select(argv[2])
        present = json.load(sys.stdin)
        if not isinstance(present, list):
            sys.exit("bench_fixture.py write: stdin must be a JSON list of references")
        present = set(present)
        # An image is on the engine when all its tags are; else load it again.
        write(argv[3], [image for image in images if not set(image.tags) <= present])
    else:
        sys.exit("usage: bench_fixture.py plan SPEC | write SPEC FILE  (SPEC: a, b or scale:N; write reads a JSON list on stdin)")
    json.dump(plan(images, containers), sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv)
