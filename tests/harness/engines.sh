#!/usr/bin/env bash
# Isolated Docker engines for exapp-janitor's integration tests.
#
#   engines.sh install      install what is missing (Debian packages, Engine 26.1 from Debian 13)
#   engines.sh start DIR    start two engines under DIR and write DIR/env (shell exports)
#   engines.sh stop DIR     stop them and remove DIR
#
# Engine A: Debian 12's docker.io (Engine 20.10, API 1.41) on a unix socket and plain TCP.
# Engine B: Debian 13's docker.io (Engine 26.1, API 1.45) on a unix socket and TCP with
#           TLS client certificates (--tlsverify).
# Engine C: a spare Engine 20.10 on a unix socket, for tests that stop or restart
#           a daemon (engines.sh restart-spare DIR brings it back).
# Registry: Debian's docker-registry (distribution 2.8) on a loopback port, so
#           images get the digest references a real `docker pull` gives them.
#           Unpacked into the cache like Engine 26.1: installing the package
#           would start a system service.
# The host's /var/run/docker.sock is never used: every engine has its own socket,
# data root, exec root and containerd, all under DIR.
set -euo pipefail

CACHE=${EXAPP_JANITOR_HARNESS_CACHE:-/var/cache/exapp-janitor-harness}
ENGINE26_DIR="$CACHE/docker.io-trixie"
REGISTRY_DIR="$CACHE/docker-registry"

log() { echo "engines: $*" >&2; }
die() { echo "engines: error: $*" >&2; exit 1; }

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

apt_updated=
apt_install() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ -z "$apt_updated" ]; then as_root apt-get update -qq; apt_updated=1; fi
  log "installing ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# The Debian mirror this machine already uses (never hard-coded here).
debian_mirror() {
  local uri
  uri=$(grep -hE '^(URIs:|deb )' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
        | grep -E '/debian/?( |$)' | head -n1 | sed -E 's/^URIs:[[:space:]]*//; s/^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?//; s/[[:space:]].*$//')
  [ -n "$uri" ] || die "cannot find the Debian mirror in /etc/apt/sources.list*"
  echo "$uri"
}

install_engine26() {
  [ -x "$ENGINE26_DIR/usr/sbin/dockerd" ] && return 0
  log "fetching Debian 13's docker.io (Engine 26.1)"
  local tmp; tmp=$(mktemp -d)
  mkdir -p "$tmp/lists/partial" "$tmp/archives/partial"
  echo "deb $(debian_mirror) trixie main" > "$tmp/sources.list"
  local opts=(-o "Dir::Etc::SourceList=$tmp/sources.list" -o Dir::Etc::SourceParts=/dev/null
              -o "Dir::State::Lists=$tmp/lists" -o "Dir::Cache::Archives=$tmp/archives"
              -o APT::Get::List-Cleanup=0 -o Debug::NoLocking=1 -o APT::Sandbox::User=root)
  apt-get "${opts[@]}" update -qq >/dev/null
  (cd "$tmp" && apt-get "${opts[@]}" download docker.io >/dev/null)
  as_root mkdir -p "$CACHE"
  local staging="$ENGINE26_DIR.partial"
  as_root rm -rf "$staging"
  as_root dpkg-deb -x "$tmp"/docker.io_*.deb "$staging"
  as_root mv "$staging" "$ENGINE26_DIR"
  rm -rf "$tmp"
}

# Debian 12's docker-registry, unpacked (its package would start a service).
install_registry() {
  [ -x "$REGISTRY_DIR/usr/bin/docker-registry" ] && return 0
  log "fetching Debian's docker-registry"
  local tmp; tmp=$(mktemp -d)
  if [ -z "$apt_updated" ]; then as_root apt-get update -qq; apt_updated=1; fi
  (cd "$tmp" && apt-get download docker-registry >/dev/null 2>&1) \
    || (cd "$tmp" && as_root apt-get -o APT::Sandbox::User=root download docker-registry >/dev/null)
  as_root mkdir -p "$CACHE"
  local staging="$REGISTRY_DIR.partial"
  as_root rm -rf "$staging"
  as_root dpkg-deb -x "$tmp"/docker-registry_*.deb "$staging"
  as_root mv "$staging" "$REGISTRY_DIR"
  rm -rf "$tmp"
}

cmd_install() {
  # docker.io brings dockerd 20.10, containerd, runc and the docker CLI;
  # busybox-static runs real containers; openssl makes the TLS certificates;
  # chromium and chromium-driver run the browser tests.
  apt_install docker.io busybox-static openssl ca-certificates curl iproute2 procps python3 chromium chromium-driver
  install_engine26
  install_registry
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

make_tls() {
  local d=$1
  mkdir -p "$d"
  (
    cd "$d"
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=janitor-test-ca" \
      -keyout ca-key.pem -out ca.pem 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout server-key.pem -out server.csr 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' > server.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 2 \
      -extfile server.ext -out server-cert.pem 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=janitor-client" -keyout key.pem -out client.csr 2>/dev/null
    printf 'extendedKeyUsage=clientAuth\n' > client.ext
    openssl x509 -req -in client.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 2 \
      -extfile client.ext -out cert.pem 2>/dev/null
    chmod 600 ./*key.pem
  )
}

# start_engine NAME DOCKERD PATH_PREFIX EXTRA_ARGS...
start_engine() {
  local name=$1 dockerd=$2 path_prefix=$3; shift 3
  local d="$ROOT/$name"
  mkdir -p "$d/data" "$d/exec"
  PATH="$path_prefix:$PATH" "$dockerd" \
    --host "unix://$d/docker.sock" --data-root "$d/data" --exec-root "$d/exec" \
    --pidfile "$d/docker.pid" --storage-driver vfs --iptables=false --ip6tables=false \
    --bridge=none --log-level warn "$@" > "$d/dockerd.log" 2>&1 &
  echo $! > "$d/launcher.pid"
}

start_registry() {
  local port=$1 d="$ROOT/registry"
  mkdir -p "$d/data"
  cat > "$d/config.yml" <<YML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $d/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
YML
  "$REGISTRY_DIR/usr/bin/docker-registry" serve "$d/config.yml" > "$d/registry.log" 2>&1 &
  echo $! > "$d/launcher.pid"
}

wait_registry() {
  local port=$1 d="$ROOT/registry"
  for _ in $(seq 1 150); do
    if curl -fsS "http://127.0.0.1:$port/v2/" >/dev/null 2>&1; then return 0; fi
    if ! kill -0 "$(cat "$d/launcher.pid")" 2>/dev/null; then
      cat "$d/registry.log" >&2; die "the registry exited during start"
    fi
    sleep 0.2
  done
  cat "$d/registry.log" >&2; die "the registry did not answer within 30 s"
}

wait_engine() {
  local name=$1 d="$ROOT/$1"
  for _ in $(seq 1 150); do
    if docker -H "unix://$d/docker.sock" version >/dev/null 2>&1; then return 0; fi
    if ! kill -0 "$(cat "$d/launcher.pid")" 2>/dev/null; then
      cat "$d/dockerd.log" >&2; die "engine $name exited during start"
    fi
    sleep 0.2
  done
  cat "$d/dockerd.log" >&2; die "engine $name did not answer within 30 s"
}

cmd_start() {
  ROOT=$(realpath -m "$1")
  mkdir -p "$ROOT"
  cmd_install
  make_tls "$ROOT/tls"
  local port_a port_b
  port_a=$(free_port); port_b=$(free_port)
  start_engine a /usr/sbin/dockerd "/usr/sbin:/usr/bin" --host "tcp://127.0.0.1:$port_a"
  start_engine b "$ENGINE26_DIR/usr/sbin/dockerd" "$ENGINE26_DIR/usr/bin:$ENGINE26_DIR/usr/sbin" \
    --host "tcp://127.0.0.1:$port_b" --tlsverify --tlscacert "$ROOT/tls/ca.pem" \
    --tlscert "$ROOT/tls/server-cert.pem" --tlskey "$ROOT/tls/server-key.pem"
  start_engine c /usr/sbin/dockerd "/usr/sbin:/usr/bin"
  local port_registry; port_registry=$(free_port)
  start_registry "$port_registry"
  wait_engine a
  wait_engine b
  wait_engine c
  wait_registry "$port_registry"
  cat > "$ROOT/env" <<ENV
export EXAPP_JANITOR_TEST_ROOT='$ROOT'
export EXAPP_JANITOR_TEST_ENGINE_A_SOCK='unix://$ROOT/a/docker.sock'
export EXAPP_JANITOR_TEST_ENGINE_A_TCP='tcp://127.0.0.1:$port_a'
export EXAPP_JANITOR_TEST_ENGINE_A_PIDFILE='$ROOT/a/docker.pid'
export EXAPP_JANITOR_TEST_ENGINE_B_SOCK='unix://$ROOT/b/docker.sock'
export EXAPP_JANITOR_TEST_ENGINE_B_TLS='https://127.0.0.1:$port_b'
export EXAPP_JANITOR_TEST_ENGINE_B_PIDFILE='$ROOT/b/docker.pid'
export EXAPP_JANITOR_TEST_ENGINE_C_SOCK='unix://$ROOT/c/docker.sock'
export EXAPP_JANITOR_TEST_ENGINE_C_PIDFILE='$ROOT/c/docker.pid'
export EXAPP_JANITOR_TEST_REGISTRY='127.0.0.1:$port_registry'
export EXAPP_JANITOR_TEST_HARNESS='$(realpath "$0")'
export EXAPP_JANITOR_TEST_TLS_CA='$ROOT/tls/ca.pem'
export EXAPP_JANITOR_TEST_TLS_CERT='$ROOT/tls/cert.pem'
export EXAPP_JANITOR_TEST_TLS_KEY='$ROOT/tls/key.pem'
ENV
  log "engine a: $(docker -H "unix://$ROOT/a/docker.sock" version -f '{{.Server.Version}} (API {{.Server.APIVersion}})')"
  log "engine b: $(docker -H "unix://$ROOT/b/docker.sock" version -f '{{.Server.Version}} (API {{.Server.APIVersion}})')"
  log "environment in $ROOT/env"
}

# A process that is gone, or a zombie nobody reaps (its parent, an earlier
# run of this script, has exited), counts as stopped.
alive() {
  local pid=$1
  [ -n "$pid" ] && [ -e "/proc/$pid" ] || return 1
  ! grep -qE '^[0-9]+ \(.*\) Z' "/proc/$pid/stat" 2>/dev/null
}

stop_engine() {
  local d=$1 pid
  for f in "$d/launcher.pid" "$d/docker.pid"; do
    [ -f "$f" ] || continue
    pid=$(cat "$f")
    kill "$pid" 2>/dev/null || true
  done
  pid=$(cat "$d/launcher.pid" 2>/dev/null || echo)
  for _ in $(seq 1 150); do
    alive "$pid" || break
    sleep 0.1
  done
  if alive "$pid"; then kill -9 "$pid" 2>/dev/null || true; fi
  # containerd shims and mounts that outlive the daemon
  pkill -9 -f -- "$d/exec" 2>/dev/null || true
  local mounts
  mounts=$(grep -o " $d/[^ ]*" /proc/mounts | sort -r || true)
  for m in $mounts; do umount -l "$m" 2>/dev/null || true; done
  # A killed dockerd leaves its pid file, and the next start refuses to run.
  rm -f "$d/docker.pid" "$d/launcher.pid"
}

cmd_stop() {
  local root; root=$(realpath -m "$1")
  [ -d "$root" ] || return 0
  # All three at once: each waits seconds for its daemon and containers to end.
  for e in a b c; do if [ -d "$root/$e" ]; then stop_engine "$root/$e" & fi; done
  wait
  if [ -f "$root/registry/launcher.pid" ]; then kill "$(cat "$root/registry/launcher.pid")" 2>/dev/null || true; fi
  rm -rf "$root"
}

# Stops engine C and starts it again on the same socket and data (tests that
# take a daemon down bring it back with this).
cmd_restart_spare() {
  ROOT=$(realpath -m "$1")
  stop_engine "$ROOT/c"
  start_engine c /usr/sbin/dockerd "/usr/sbin:/usr/bin"
  wait_engine c
}

case "${1:-}" in
  install) cmd_install ;;
  start) [ $# -eq 2 ] || die "usage: engines.sh start DIR"; cmd_start "$2" ;;
  restart-spare) [ $# -eq 2 ] || die "usage: engines.sh restart-spare DIR"; cmd_restart_spare "$2" ;;
  stop) [ $# -eq 2 ] || die "usage: engines.sh stop DIR"; cmd_stop "$2" ;;
  *) die "usage: engines.sh install | start DIR | restart-spare DIR | stop DIR" ;;
esac
