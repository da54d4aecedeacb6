#!/usr/bin/env bash
# Isolated Docker engines for exapp-janitor's integration tests.
#
#   engines.sh install      install what is missing (Debian packages, Engine 26.1 from Debian 13,
#                           the HaRP agent's Python venv, schemathesis, cargo-deb)
#   engines.sh start DIR    start three engines, a registry and a HaRP under DIR and write
#                           DIR/env (shell exports)
#   engines.sh restart-spare DIR   stop engine C and start it again
#   engines.sh stop DIR     stop them all and remove DIR
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
# HaRP:     a real Nextcloud HaRP v0.4.4 (AppAPI's proxy: Debian 12's HAProxy and
#           HaRP's unmodified Python agent, vendored in tests/third_party/) in front of
#           engine A's plain TCP port and, through tests/harness/uds-bridge.py (the
#           stand-in for HaRP's FRP tunnel), engine B's unix socket. See "HaRP" below.
# The host's /var/run/docker.sock is never used: every engine has its own socket,
# data root, exec root and containerd, all under DIR.
#
# Knobs: EXAPP_JANITOR_HARNESS_CACHE (default /var/cache/exapp-janitor-harness);
# EXAPP_JANITOR_HARNESS_HARP=0 starts no HaRP (DIR/env then has no
# EXAPP_JANITOR_TEST_HARP_* and the HaRP tests fail, saying so).
set -euo pipefail

CACHE=${EXAPP_JANITOR_HARNESS_CACHE:-/var/cache/exapp-janitor-harness}
ENGINE26_DIR="$CACHE/docker.io-trixie"
REGISTRY_DIR="$CACHE/docker-registry"
HERE=$(dirname "$(realpath "$0")")
THIRD_PARTY=$(realpath "$HERE/../third_party")
HARP_VENDOR="$THIRD_PARTY/harp-v0.4.4"
SPOA_VENDOR="$THIRD_PARTY/haproxy-python-spoa-f00f3f7"
HARP_VENV="$CACHE/harp-venv"
HARP_REQUIREMENTS="$HERE/harp-requirements.txt"
HARP_ENABLED=${EXAPP_JANITOR_HARNESS_HARP:-1}
# HaRP's agent always listens on 127.0.0.1:8200 for its control API (hard-coded
# in haproxy_agent.py and haproxy.cfg.template): one HaRP per network namespace.
HARP_CONTROL_PORT=8200
# After this many failed requests (a wrong key, say) from one address within
# HP_BLACKLIST_WINDOW (300 s), HaRP drops every later request from it without
# an answer until the agent restarts. Upstream's 10 would let a few wrong-key
# tests ban 127.0.0.1, and with it the whole suite; 1000 keeps the ban real
# (a test can still reach it on purpose) but out of reach by accident.
HARP_BLACKLIST_COUNT=1000

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

# The HaRP agent's venv: Debian's python3 (3.11; the agent needs >= 3.11) and the
# pinned PyPI packages of harp-requirements.txt, made again when that file changes.
install_harp_venv() {
  local stamp="$HARP_VENV/harp-requirements.txt"
  if [ -x "$HARP_VENV/bin/python" ] && cmp -s "$HARP_REQUIREMENTS" "$stamp"; then return 0; fi
  log "making the HaRP agent's venv in $HARP_VENV (aiohttp, pydantic from PyPI)"
  as_root mkdir -p "$CACHE"
  as_root rm -rf "$HARP_VENV"
  as_root /usr/bin/python3 -m venv "$HARP_VENV"
  as_root env PIP_DISABLE_PIP_VERSION_CHECK=1 "$HARP_VENV/bin/python" -m pip install -q \
    --only-binary :all: -r "$HARP_REQUIREMENTS" \
    || { as_root rm -rf "$HARP_VENV"; die "pip could not install $HARP_REQUIREMENTS into $HARP_VENV"; }
  as_root "$HARP_VENV/bin/python" -c 'import aiohttp, pydantic'
  # Written last: a venv without it is incomplete and made again.
  as_root cp "$HARP_REQUIREMENTS" "$stamp"
}

cmd_install() {
  # docker.io brings dockerd 20.10, containerd, runc and the docker CLI;
  # busybox-static runs real containers; openssl makes the TLS certificates;
  # chromium and chromium-driver run the browser tests; haproxy (2.6),
  # python3-venv and gettext-base (envsubst) run HaRP; docker-compose (1.29)
  # checks and runs compose.yaml, and adduser the Debian package's scripts.
  apt_install docker.io busybox-static openssl ca-certificates curl iproute2 procps python3 chromium chromium-driver \
    haproxy python3-venv gettext-base docker-compose adduser
  install_engine26
  install_registry
  install_harp_venv
  install_schemathesis
  install_cargo_deb
}

# cargo-deb (crates.io) builds the Debian package (tests/debian_package.rs).
# Pinned, in a root of its own in the cache: nothing global.
CARGO_DEB_VERSION=3.8.0
CARGO_DEB_ROOT="$CACHE/cargo-deb-$CARGO_DEB_VERSION"
install_cargo_deb() {
  [ -x "$CARGO_DEB_ROOT/bin/cargo-deb" ] && return 0
  log "installing cargo-deb $CARGO_DEB_VERSION (a minute or two of compiling)"
  # Built as the caller, whose toolchain it is; moved into the cache whole,
  # so that a build cut short leaves nothing that looks installed.
  local tmp; tmp=$(mktemp -d)
  cargo install --quiet --locked --root "$tmp/root" "cargo-deb@$CARGO_DEB_VERSION" \
    || { rm -rf "$tmp"; die "cargo could not install cargo-deb $CARGO_DEB_VERSION"; }
  as_root mkdir -p "$CACHE"
  as_root rm -rf "$CARGO_DEB_ROOT"
  as_root mv "$tmp/root" "$CARGO_DEB_ROOT"
  rm -rf "$tmp"
}

# schemathesis (PyPI) fuzzes the JSON API against its own OpenAPI document
# (tests/api_contract.rs). Pinned, in a venv of the cache: nothing global.
SCHEMATHESIS_VERSION=4.32.5
SCHEMATHESIS_VENV="$CACHE/schemathesis-$SCHEMATHESIS_VERSION"
install_schemathesis() {
  # A venv cannot be moved (its scripts name their own path): an install
  # cut short is recognised by the missing marker and made again.
  [ -f "$SCHEMATHESIS_VENV/.installed" ] && return 0
  log "installing schemathesis $SCHEMATHESIS_VERSION"
  as_root rm -rf "$SCHEMATHESIS_VENV"
  as_root mkdir -p "$CACHE"
  as_root python3 -m venv "$SCHEMATHESIS_VENV"
  as_root "$SCHEMATHESIS_VENV/bin/pip" install -q --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
  as_root touch "$SCHEMATHESIS_VENV/.installed"
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

# --- HaRP ------------------------------------------------------------------
# What HaRP's own start.sh does, minus FRP, TLS and its /certs and /run/harp:
# the agent (haproxy_agent.py, unmodified, in the venv with the vendored
# haproxyspoa fork on PYTHONPATH) and HAProxy with haproxy.cfg.template
# rendered by envsubst under DIR/harp. Everything of one HaRP is in DIR/harp:
#   shared-key (0600)  haproxy.cfg  spoe-agent.conf  {agent,haproxy,bridge}.log and .pid
# Requests go to http://127.0.0.1:PORT/exapps/app_api/... with the headers
# `harp-shared-key: KEY` and, for Docker calls, `docker-engine-port: P`: HaRP
# forwards those to 127.0.0.1:P (in production an FRP tunnel to a Docker host).

# pid_is PIDFILE WORD: the pid file's process is alive and its command line has
# WORD (a pid file left by a crash may name a pid some other process has now).
pid_is() {
  local pid
  pid=$(cat "$1" 2>/dev/null) || return 1
  alive "$pid" && tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$2"
}

# stop_pidfile PIDFILE WORD: TERM, up to 5 s to exit, then KILL.
stop_pidfile() {
  local f=$1 word=$2 pid
  pid=$(cat "$f" 2>/dev/null) || return 0
  if pid_is "$f" "$word"; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do alive "$pid" || break; sleep 0.1; done
    if alive "$pid"; then kill -9 "$pid" 2>/dev/null || true; fi
  fi
  rm -f "$f"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

harp_control_port_free() {
  port_open "$HARP_CONTROL_PORT" || return 0
  local who
  who=$(ss -ltnpH "sport = :$HARP_CONTROL_PORT" 2>/dev/null | grep -o 'users:(.*)' | head -n1 || true)
  die "127.0.0.1:$HARP_CONTROL_PORT is already in use${who:+ ($who)}. HaRP's agent always listens there, so only one HaRP can run on this machine (network namespace): stop the other one first (engines.sh stop ITS_DIR; its DIR/harp/agent.pid names it), or start without HaRP (EXAPP_JANITOR_HARNESS_HARP=0)."
}

harp_fail() {
  local d="$ROOT/harp" f
  for f in agent.log haproxy-check.log haproxy.log bridge.log; do
    [ -s "$d/$f" ] || continue
    echo "---- $d/$f (last 60 lines)" >&2
    tail -n 60 "$d/$f" >&2
  done
  die "HaRP: $* (engines.sh stop $ROOT stops what did start)"
}

# start_harp ENGINE_A_PORT ENGINE_B_SOCKET: starts the bridge to engine B and
# the agent (which take a moment to come up) and renders HAProxy's config;
# start_harp_proxy then starts HAProxy, wait_harp waits until HaRP answers.
start_harp() {
  local port_a=$1 sock_b=$2 d="$ROOT/harp"
  mkdir -p "$d"
  HARP_KEY=$(openssl rand -hex 24)
  (umask 077 && printf '%s\n' "$HARP_KEY" > "$d/shared-key")
  HARP_PORT_A=$port_a
  HARP_PORT=$(free_port)
  HARP_HTTPS_PORT=$(free_port)
  HARP_PORT_B=$(free_port)
  # HaRP's own HTTPS frontend, with the harness's server certificate
  # (127.0.0.1, signed by DIR/tls/ca.pem): HAProxy wants certificate and key in one file.
  (umask 077 && cat "$ROOT/tls/server-cert.pem" "$ROOT/tls/server-key.pem" > "$d/cert.pem")
  local port_spoa; port_spoa=$(free_port)
  echo "$port_spoa" > "$d/spoa.port"

  /usr/bin/python3 -B "$HERE/uds-bridge.py" "$HARP_PORT_B" "$sock_b" \
    < /dev/null > "$d/bridge.log" 2>&1 &
  echo $! > "$d/bridge.pid"

  # The agent reads its settings from the environment; env -i keeps anything
  # else of the caller's out (KUBERNETES_SERVICE_HOST, say, would change it).
  # NC_INSTANCE_URL must be set but is never contacted on the /exapps/app_api
  # paths (only ExApps' own routes ask Nextcloud): port 9 refuses at once.
  local agent_env=(
    PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME="$d" LANG=C.UTF-8
    PYTHONPATH="$SPOA_VENDOR" PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
    HP_SHARED_KEY="$HARP_KEY"
    NC_INSTANCE_URL=http://127.0.0.1:9/
    HP_EXAPPS_ADDRESS="127.0.0.1:$HARP_PORT"
    HP_SPOA_ADDRESS="127.0.0.1:$port_spoa"
    HP_TRUSTED_PROXY_IPS=
    HP_LOG_LEVEL=info
    HP_BLACKLIST_COUNT="$HARP_BLACKLIST_COUNT"
  )
  env -i "${agent_env[@]}" "$HARP_VENV/bin/python" -B "$HARP_VENDOR/haproxy_agent.py" \
    < /dev/null > "$d/agent.log" 2>&1 &
  echo $! > "$d/agent.pid"

  # haproxy.cfg.template as start.sh renders it with a certificate: the HTTPS
  # frontend's lines kept (their marker taken off, the certificate's path
  # under DIR/harp), and spoe-agent.conf's path under DIR/harp.
  cp "$HARP_VENDOR/spoe-agent.conf" "$d/spoe-agent.conf"
  # shellcheck disable=SC2016 # envsubst's argument lists the variables it replaces, unexpanded
  HP_EXAPPS_ADDRESS="127.0.0.1:$HARP_PORT" HP_EXAPPS_HTTPS_ADDRESS="127.0.0.1:$HARP_HTTPS_PORT" \
  HP_SPOA_ADDRESS="127.0.0.1:$port_spoa" HP_LOG_LEVEL_HAPROXY=info \
  HP_TIMEOUT_CONNECT=30s HP_TIMEOUT_CLIENT=30s HP_TIMEOUT_SERVER=1800s HP_TIMEOUT_TUNNEL=1800s \
    envsubst '${HP_EXAPPS_ADDRESS} ${HP_EXAPPS_HTTPS_ADDRESS} ${HP_SPOA_ADDRESS} ${HP_LOG_LEVEL_HAPROXY}
              ${HP_TIMEOUT_CONNECT} ${HP_TIMEOUT_CLIENT} ${HP_TIMEOUT_SERVER} ${HP_TIMEOUT_TUNNEL}' \
      < "$HARP_VENDOR/haproxy.cfg.template" \
    | sed -e 's|^_HTTPS_FRONTEND_ ||' -e "s|/certs/cert.pem|$d/cert.pem|g" \
          -e "s|/etc/haproxy/spoe-agent.conf|$d/spoe-agent.conf|g" \
    > "$d/haproxy.cfg"
  # A variable a newer template adds would be left as is: say which.
  if grep -nE '^[^#]*[$][{]' "$d/haproxy.cfg" > "$d/haproxy-check.log"; then
    harp_fail "haproxy.cfg.template uses variables this harness does not set"
  fi
  haproxy -c -f "$d/haproxy.cfg" > "$d/haproxy-check.log" 2>&1 || harp_fail "HAProxy rejected $d/haproxy.cfg"
}

# Waits up to SECONDS for the agent's control and SPOA ports; fails if it died.
wait_harp_agent() {
  local d="$ROOT/harp" deadline=$((SECONDS + $1)) port_spoa
  port_spoa=$(cat "$d/spoa.port")
  until port_open "$port_spoa" && port_open "$HARP_CONTROL_PORT"; do
    pid_is "$d/agent.pid" haproxy_agent.py || harp_fail "the agent exited during start"
    [ "$SECONDS" -lt "$deadline" ] || harp_fail "the agent did not listen on 127.0.0.1:$port_spoa and :$HARP_CONTROL_PORT within $1 s"
    sleep 0.1
  done
}

start_harp_proxy() {
  local d="$ROOT/harp"
  # Started once the agent listens: HAProxy's first check then finds it.
  wait_harp_agent 60
  # -db: in the foreground (this script keeps its pid), no master process.
  haproxy -f "$d/haproxy.cfg" -db < /dev/null > "$d/haproxy.log" 2>&1 &
  echo $! > "$d/haproxy.pid"
}

# harp_get PORT PATH: the status of GET PATH through HaRP with the key (and
# docker-engine-port PORT unless it is -), or 000 without an answer.
harp_get() {
  local hdr=()
  [ "$1" = - ] || hdr=(-H "docker-engine-port: $1")
  curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H "harp-shared-key: $HARP_KEY" "${hdr[@]}" \
    "http://127.0.0.1:$HARP_PORT/exapps/app_api$2" || true
}

# Ready when GET /info answers 200 and both engines answer a ping through HaRP.
# While HAProxy counts the agent down, HaRP answers 503 (its check: rise 2,
# every 2 s); HAProxy 2.6 counts it up from the start, so the first try passes.
wait_harp() {
  local d="$ROOT/harp" deadline=$((SECONDS + 60)) code='' p
  while :; do
    code=$(harp_get - /info)
    [ "$code" = 200 ] && break
    for p in agent:haproxy_agent.py haproxy:"$d/haproxy.cfg" bridge:uds-bridge.py; do
      pid_is "$d/${p%%:*}.pid" "${p#*:}" || harp_fail "HaRP's ${p%%:*} exited during start"
    done
    [ "$SECONDS" -lt "$deadline" ] || harp_fail "GET /exapps/app_api/info did not answer 200 within 60 s (last: $code)"
    sleep 0.2
  done
  # An engine behind HaRP may still be starting (one CI run saw engine B's
  # first ping through the bridge go unanswered): ping until the deadline.
  for p in "A:$HARP_PORT_A" "B:$HARP_PORT_B"; do
    until code=$(harp_get "${p#*:}" /v1.41/_ping); [ "$code" = 200 ]; do
      [ "$SECONDS" -lt "$deadline" ] || harp_fail "engine ${p%%:*} (docker-engine-port ${p#*:}) did not answer a ping through HaRP within 60 s: $code"
      sleep 0.2
    done
  done
}

stop_harp() {
  local d=$1 had_agent=
  stop_pidfile "$d/haproxy.pid" "$d/haproxy.cfg"
  if pid_is "$d/agent.pid" haproxy_agent.py; then had_agent=1; fi
  stop_pidfile "$d/agent.pid" haproxy_agent.py
  stop_pidfile "$d/bridge.pid" uds-bridge.py
  # The next start needs the control port: say so if it is still taken.
  if [ -n "$had_agent" ]; then
    for _ in $(seq 1 50); do port_open "$HARP_CONTROL_PORT" || return 0; sleep 0.1; done
    log "warning: 127.0.0.1:$HARP_CONTROL_PORT is still in use after HaRP's agent stopped"
  fi
}

cmd_start() {
  ROOT=$(realpath -m "$1")
  cmd_install
  # Before anything starts, so that this failure leaves nothing running.
  if [ "$HARP_ENABLED" != 0 ]; then harp_control_port_free; fi
  mkdir -p "$ROOT"
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
  if [ "$HARP_ENABLED" != 0 ]; then start_harp "$port_a" "$ROOT/b/docker.sock"; fi
  wait_engine a
  wait_engine b
  wait_engine c
  wait_registry "$port_registry"
  if [ "$HARP_ENABLED" != 0 ]; then start_harp_proxy; wait_harp; fi
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
export EXAPP_JANITOR_TEST_SCHEMATHESIS='$SCHEMATHESIS_VENV/bin/st'
export EXAPP_JANITOR_TEST_CARGO_DEB='$CARGO_DEB_ROOT/bin/cargo-deb'
ENV
  if [ "$HARP_ENABLED" != 0 ]; then
    # HaRP (see tests/common/harp.rs): the URL is HaRP's address as AppAPI's
    # daemon settings hold it, without the fixed /exapps/app_api base path.
    cat >> "$ROOT/env" <<ENV
export EXAPP_JANITOR_TEST_HARP_URL='http://127.0.0.1:$HARP_PORT'
export EXAPP_JANITOR_TEST_HARP_HTTPS_URL='https://127.0.0.1:$HARP_HTTPS_PORT'
export EXAPP_JANITOR_TEST_HARP_KEY_FILE='$ROOT/harp/shared-key'
export EXAPP_JANITOR_TEST_HARP_KEY='$HARP_KEY'
export EXAPP_JANITOR_TEST_HARP_PORT_A='$HARP_PORT_A'
export EXAPP_JANITOR_TEST_HARP_PORT_B='$HARP_PORT_B'
ENV
  fi
  log "engine a: $(docker -H "unix://$ROOT/a/docker.sock" version -f '{{.Server.Version}} (API {{.Server.APIVersion}})')"
  log "engine b: $(docker -H "unix://$ROOT/b/docker.sock" version -f '{{.Server.Version}} (API {{.Server.APIVersion}})')"
  if [ "$HARP_ENABLED" != 0 ]; then
    log "HaRP $(curl -s -H "harp-shared-key: $HARP_KEY" "http://127.0.0.1:$HARP_PORT/exapps/app_api/info") on 127.0.0.1:$HARP_PORT (engine A: docker-engine-port $HARP_PORT_A, engine B: $HARP_PORT_B)"
  fi
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
    # dockerd removes docker.pid as it exits: gone by now is fine (and must
    # not end this script half-way, leaving the other engines running).
    pid=$(cat "$f" 2>/dev/null) || continue
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
  # HaRP first: it stands in front of the engines.
  if [ -d "$root/harp" ]; then stop_harp "$root/harp"; fi
  # All three at once: each waits seconds for its daemon and containers to end.
  for e in a b c; do if [ -d "$root/$e" ]; then stop_engine "$root/$e" & fi; done
  wait
  stop_pidfile "$root/registry/launcher.pid" docker-registry
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
