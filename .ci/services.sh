#!/usr/bin/env bash
# Local stand-ins for the cloud services that ascend's integration tests talk to.
#
#   bash .ci/services.sh COMMAND [SERVICE...]
#
#   COMMAND  install | start | stop | env
#   SERVICE  moto | azurite | registry        (default: all three)
#            kube                             (only when named)
#
#   moto      S3 API (moto server, in its own virtualenv)    127.0.0.1:5002
#   azurite   Azure Blob API (Azurite, from npm)             127.0.0.1:10000
#   registry  OCI registries (Debian docker-registry)        127.0.0.1:5000 (open)
#                                                            127.0.0.1:5001 (basic auth)
#   kube      Kubernetes control plane built from the Go      127.0.0.1:6443
#             modules (etcd, kube-apiserver, controller-
#             manager, scheduler; see .ci/kube/)
#
# Typical use:
#   bash .ci/services.sh install && bash .ci/services.sh start
#   eval "$(bash .ci/services.sh env)"
#   ... run tests ...
#   bash .ci/services.sh stop
#
# Everything lives in one state directory (venv, node_modules, pid files, logs,
# env file, per-start data):
#   ${ASCEND_SERVICES_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ascend-ci-services}
# Ports can be changed with ASCEND_MOTO_PORT, ASCEND_AZURITE_PORT,
# ASCEND_REGISTRY_PORT, ASCEND_AUTH_REGISTRY_PORT, ASCEND_KUBE_PORT,
# ASCEND_KUBE_ETCD_PORT, ASCEND_KUBE_ETCD_PEER_PORT,
# ASCEND_KUBE_CONTROLLER_MANAGER_PORT and ASCEND_KUBE_SCHEDULER_PORT.
#
# kube is not in the default list: its first install builds from source
# (several minutes), so it is started explicitly:
#   bash .ci/services.sh install kube && bash .ci/services.sh start kube
#
# Progress lines ("[services] ...") go to stderr, so stdout stays clean for
# `eval "$(bash .ci/services.sh env)"`.

set -Eeuo pipefail

trap 'echo "[services] ERROR: unexpected failure (exit $?) at line $LINENO: $BASH_COMMAND" >&2' ERR

# ---------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------

ALL_SERVICES=(moto azurite registry)
# Known too, but only acted on when named on the command line.
OPTIONAL_SERVICES=(kube)

DIR="${ASCEND_SERVICES_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ascend-ci-services}"
DATA_ROOT="$DIR/data"          # per-start scratch dirs, wiped by `stop`
ENV_FILE="$DIR/env.sh"

PYTHON="${ASCEND_SERVICES_PYTHON:-python3.11}"

MOTO_VERSION="5.2.5"
MOTO_FALLBACK_SPEC="moto[server]>=5.1,<6"
MOTO_VENV="$DIR/moto-venv"
MOTO_PORT="${ASCEND_MOTO_PORT:-5002}"

# 3.36+ declares engines.node >= 21; keep this pin while CI runs Node 20.
AZURITE_VERSION="3.35.0"
AZURITE_PREFIX="$DIR/azurite"
AZURITE_PORT="${ASCEND_AZURITE_PORT:-10000}"
# Azurite's documented, public development account (not a secret).
AZURITE_ACCOUNT="devstoreaccount1"
AZURITE_KEY="Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

REGISTRY_PACKAGES=(docker-registry skopeo apache2-utils)
REGISTRY_PORT="${ASCEND_REGISTRY_PORT:-5000}"
AUTH_REGISTRY_PORT="${ASCEND_AUTH_REGISTRY_PORT:-5001}"
REGISTRY_USER="ascend"
REGISTRY_PASSWORD="s3cret"
REGISTRY_REALM="ascend-test-registry"

KUBE_SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/kube"
# shellcheck source=kube/versions.sh
. "$KUBE_SRC/versions.sh"
# Binaries, keyed by every version that goes into them; kept across stop.
KUBE_CACHE="$DIR/kube-bin/${KUBE_VERSION}-etcd${ETCD_VERSION}-go${KUBE_GO_VERSION}"
KUBE_PORT="${ASCEND_KUBE_PORT:-6443}"
KUBE_ETCD_PORT="${ASCEND_KUBE_ETCD_PORT:-23790}"
KUBE_ETCD_PEER_PORT="${ASCEND_KUBE_ETCD_PEER_PORT:-23800}"
KUBE_CM_PORT="${ASCEND_KUBE_CONTROLLER_MANAGER_PORT:-10257}"
KUBE_SCHED_PORT="${ASCEND_KUBE_SCHEDULER_PORT:-10259}"
# Name of the (future, process) kubelet's node; its cert is made at start.
KUBE_NODE="${ASCEND_KUBE_NODE:-ascend-node}"
KUBE_BUILD_TIMEOUT_S=1200
KUBE_READY_TIMEOUT_S=90

START_TIMEOUT_S=30
STOP_GRACE_S=5

# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------

log() { echo "[services] $*" >&2; }

die() {
    log "ERROR: $*"
    exit 1
}

now_ms() {
    if [[ -n "${EPOCHREALTIME:-}" ]]; then
        local us="${EPOCHREALTIME//[.,]/}"
        echo $((10#$us / 1000))
    else
        echo $(($(date +%s%N) / 1000000))
    fi
}

# Elapsed milliseconds since a timestamp taken with now_ms.
since() { echo $(($(now_ms) - $1)); }

usage() {
    cat >&2 <<'EOF'
usage: bash .ci/services.sh install|start|stop|env [moto] [azurite] [registry] [kube]
EOF
    exit 2
}

check_port_number() {
    local name="$1" value="$2"
    if [[ ! "$value" =~ ^[0-9]{1,5}$ ]] || ((10#$value < 1 || 10#$value > 65535)); then
        die "$name must be a TCP port number, got '$value'"
    fi
}

# True when something accepts TCP connections on 127.0.0.1:PORT.
port_open() {
    (: <>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Print the last lines of a log file, indented, on stderr.
show_log_tail() {
    local file="$1"
    if [[ -s "$file" ]]; then
        log "last lines of $file:"
        tail -n 25 "$file" | sed 's/^/    /' >&2
    fi
}

# Run a command with its output going to a log file; on failure show the tail.
run_logged() {
    local logfile="$1"
    shift
    if ! "$@" >>"$logfile" 2>&1; then
        show_log_tail "$logfile"
        return 1
    fi
}

# Command line of a process, or nothing if it does not exist.
proc_cmdline() {
    if [[ -r "/proc/$1/cmdline" ]]; then
        tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null || true
    else
        ps -o args= -p "$1" 2>/dev/null || true
    fi
}

# True when PID exists and is not a zombie (an orphan may linger as a zombie
# if PID 1 does not reap it; it no longer holds its port).
pid_alive() {
    local pid="$1" state=""
    kill -0 "$pid" 2>/dev/null || return 1
    if [[ -r "/proc/$pid/stat" ]]; then
        state="$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -c1)" || true
        [[ "$state" != "Z" ]] || return 1
    fi
    return 0
}

# Pid recorded for NAME, if that process is still alive and still runs a
# command line containing MARKER (guards against pid reuse). Prints the pid.
running_pid() {
    local name="$1" marker="$2" pidfile="$DIR/$1.pid" pid
    [[ -f "$pidfile" ]] || return 1
    pid="$(tr -dc '0-9' <"$pidfile")"
    [[ -n "$pid" ]] || return 1
    pid_alive "$pid" || return 1
    [[ "$(proc_cmdline "$pid")" == *"$marker"* ]] || return 1
    echo "$pid"
}

# Recorded port for a running process NAME.
recorded_port() {
    cat "$DIR/$1.port"
}

# Fresh scratch directory for one process; removed by `stop`.
new_data_dir() {
    mkdir -p "$DATA_ROOT"
    mktemp -d "$DATA_ROOT/$1.XXXXXX"
}

remove_data_dirs() {
    local name="$1" d
    for d in "$DATA_ROOT/$name".*; do
        [[ -e "$d" ]] || continue
        rm -rf -- "$d"
    done
    rmdir "$DATA_ROOT" 2>/dev/null || true
}

# Launch a server in its own session, detached from our stdin/stdout, and
# wait until its port accepts connections.
#   launch NAME PORT MARKER COMMAND...
launch() {
    local name="$1" port="$2" marker="$3"
    shift 3
    local logfile="$DIR/$name.log" pidfile="$DIR/$name.pid" pid t0 deadline

    if port_open "$port"; then
        die "$name: port 127.0.0.1:$port is already taken by another process" \
            "(check with: ss -ltnp 'sport = :$port'; or pick another port via the ASCEND_*_PORT variables)"
    fi

    t0=$(now_ms)
    : >"$logfile"
    # In a non-interactive shell the background child is not a process-group
    # leader, so setsid (and nohup) exec in place and $! is the server's pid.
    setsid nohup "$@" </dev/null >>"$logfile" 2>&1 &
    pid=$!
    disown "$pid" 2>/dev/null || true   # no "Killed" job notices from this shell
    echo "$pid" >"$pidfile"
    echo "$port" >"$DIR/$name.port"

    deadline=$((t0 + START_TIMEOUT_S * 1000))
    until port_open "$port"; do
        if ! pid_alive "$pid"; then
            rm -f "$pidfile" "$DIR/$name.port"
            show_log_tail "$logfile"
            die "$name exited before listening on 127.0.0.1:$port (log: $logfile)"
        fi
        if (($(now_ms) > deadline)); then
            kill -KILL "$pid" 2>/dev/null || true
            rm -f "$pidfile" "$DIR/$name.port"
            show_log_tail "$logfile"
            die "$name did not listen on 127.0.0.1:$port within ${START_TIMEOUT_S}s (log: $logfile)"
        fi
        sleep 0.1
    done
    # The port could belong to someone else if our process died in between.
    [[ "$(running_pid "$name" "$marker" || true)" == "$pid" ]] ||
        die "$name: process $pid vanished after 127.0.0.1:$port opened (log: $logfile)"
    log "start $name: pid $pid on 127.0.0.1:$port ($(since "$t0") ms)"
}

# Stop the process recorded in NAME.pid: SIGTERM, then SIGKILL after the grace
# period. Never fails when the process is already gone.
terminate() {
    local name="$1" marker="$2" pidfile="$DIR/$1.pid" pid t0 deadline
    t0=$(now_ms)
    if ! pid="$(running_pid "$name" "$marker")"; then
        rm -f "$pidfile" "$DIR/$name.port"
        log "stop $name: not running ($(since "$t0") ms)"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((t0 + STOP_GRACE_S * 1000))
    while pid_alive "$pid" && (($(now_ms) < deadline)); do
        sleep 0.1
    done
    local how="SIGTERM"
    if pid_alive "$pid"; then
        how="SIGKILL after ${STOP_GRACE_S}s"
        kill -KILL "$pid" 2>/dev/null || true
        deadline=$(($(now_ms) + 2000))
        while pid_alive "$pid" && (($(now_ms) < deadline)); do
            sleep 0.1
        done
        if pid_alive "$pid"; then
            log "WARNING: $name (pid $pid) is still alive after SIGKILL"
        fi
    fi
    rm -f "$pidfile" "$DIR/$name.port"
    log "stop $name: pid $pid stopped by $how ($(since "$t0") ms)"
}

# Run a privileged command (apt) as root, through sudo when needed.
as_root() {
    if ((EUID == 0)); then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n "$@"
    else
        die "need root (or passwordless sudo) to run: $*"
    fi
}

# ---------------------------------------------------------------------------
# moto (S3)
# ---------------------------------------------------------------------------

# Installed moto version in the dedicated venv, or nothing.
moto_installed_version() {
    local marker="$MOTO_VENV/.ascend-moto-version"
    [[ -f "$marker" && -x "$MOTO_VENV/bin/moto_server" ]] || return 1
    "$MOTO_VENV/bin/python" -c '' 2>/dev/null || return 1
    cat "$marker"
}

install_moto() {
    local t0 have installed logfile="$DIR/install-moto.log"
    t0=$(now_ms)
    if have="$(moto_installed_version)"; then
        # A fallback install is accepted as long as it is still within range.
        if [[ "$have" == "$MOTO_VERSION" || -f "$MOTO_VENV/.ascend-moto-fallback" ]]; then
            log "install moto: already $have in $MOTO_VENV ($(since "$t0") ms)"
            return 0
        fi
    fi
    command -v "$PYTHON" >/dev/null 2>&1 || die "install moto: $PYTHON not found"

    : >"$logfile"
    rm -rf "$MOTO_VENV"
    run_logged "$logfile" "$PYTHON" -m venv "$MOTO_VENV" ||
        die "install moto: could not create $MOTO_VENV (log: $logfile)"

    local pip=("$MOTO_VENV/bin/python" -m pip install --disable-pip-version-check --no-input -q)
    if run_logged "$logfile" "${pip[@]}" "moto[server]==$MOTO_VERSION"; then
        :
    else
        log "install moto: moto[server]==$MOTO_VERSION failed, trying '$MOTO_FALLBACK_SPEC'"
        run_logged "$logfile" "${pip[@]}" "$MOTO_FALLBACK_SPEC" ||
            die "install moto: pip install failed (log: $logfile)"
        touch "$MOTO_VENV/.ascend-moto-fallback"
    fi
    installed="$("$MOTO_VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("moto"))')" ||
        die "install moto: moto is not importable after install (log: $logfile)"
    [[ -x "$MOTO_VENV/bin/moto_server" ]] || die "install moto: moto_server missing in $MOTO_VENV"
    echo "$installed" >"$MOTO_VENV/.ascend-moto-version"
    log "install moto: $installed into $MOTO_VENV ($(since "$t0") ms)"
}

start_moto() {
    local t0 pid
    t0=$(now_ms)
    if pid="$(running_pid moto moto_server)"; then
        log "start moto: already running, pid $pid on 127.0.0.1:$(recorded_port moto) ($(since "$t0") ms)"
        return 0
    fi
    [[ -x "$MOTO_VENV/bin/moto_server" ]] || die "start moto: not installed; run: bash .ci/services.sh install moto"
    launch moto "$MOTO_PORT" moto_server \
        "$MOTO_VENV/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT"
}

stop_moto() {
    terminate moto moto_server
}

env_moto() {
    running_pid moto moto_server >/dev/null || return 0
    local url
    url="http://127.0.0.1:$(recorded_port moto)"
    cat <<EOF
# moto (S3)
export ASCEND_TEST_S3_ENDPOINT='$url'
export AWS_ENDPOINT_URL_S3='$url'
export AWS_ACCESS_KEY_ID='testing'
export AWS_SECRET_ACCESS_KEY='testing'
export AWS_DEFAULT_REGION='us-east-1'
EOF
}

# ---------------------------------------------------------------------------
# azurite (Azure Blob)
# ---------------------------------------------------------------------------

AZURITE_BIN="$AZURITE_PREFIX/node_modules/.bin/azurite-blob"

azurite_installed_version() {
    local pkg="$AZURITE_PREFIX/node_modules/azurite/package.json"
    [[ -f "$pkg" && -x "$AZURITE_BIN" ]] || return 1
    sed -n 's/^[[:space:]]*"version":[[:space:]]*"\([^"]*\)".*/\1/p' "$pkg" | head -n 1
}

install_azurite() {
    local t0 have logfile="$DIR/install-azurite.log"
    t0=$(now_ms)
    have="$(azurite_installed_version || true)"
    if [[ "$have" == "$AZURITE_VERSION" ]]; then
        log "install azurite: already $have in $AZURITE_PREFIX ($(since "$t0") ms)"
        return 0
    fi
    command -v npm >/dev/null 2>&1 || die "install azurite: npm not found"
    : >"$logfile"
    mkdir -p "$AZURITE_PREFIX"
    run_logged "$logfile" npm install --prefix "$AZURITE_PREFIX" --save-exact \
        --no-audit --no-fund --no-update-notifier --loglevel=error \
        "azurite@$AZURITE_VERSION" ||
        die "install azurite: npm install failed (log: $logfile)"
    have="$(azurite_installed_version || true)"
    [[ "$have" == "$AZURITE_VERSION" ]] ||
        die "install azurite: expected $AZURITE_VERSION, found '${have:-nothing}' (log: $logfile)"
    log "install azurite: $have into $AZURITE_PREFIX ($(since "$t0") ms)"
}

start_azurite() {
    local t0 pid data
    t0=$(now_ms)
    if pid="$(running_pid azurite azurite-blob)"; then
        log "start azurite: already running, pid $pid on 127.0.0.1:$(recorded_port azurite) ($(since "$t0") ms)"
        return 0
    fi
    [[ -x "$AZURITE_BIN" ]] || die "start azurite: not installed; run: bash .ci/services.sh install azurite"
    # Azurite never gives disk space back on delete, so start from an empty dir.
    remove_data_dirs azurite
    data="$(new_data_dir azurite)"
    # --skipApiVersionCheck: current azure-storage-blob sends an x-ms-version
    # newer than this Azurite knows and would otherwise be rejected.
    launch azurite "$AZURITE_PORT" azurite-blob \
        "$AZURITE_BIN" --blobHost 127.0.0.1 --blobPort "$AZURITE_PORT" \
        --location "$data" --silent --disableTelemetry --skipApiVersionCheck
}

stop_azurite() {
    terminate azurite azurite-blob
    remove_data_dirs azurite
}

env_azurite() {
    running_pid azurite azurite-blob >/dev/null || return 0
    local endpoint
    endpoint="http://127.0.0.1:$(recorded_port azurite)/$AZURITE_ACCOUNT"
    cat <<EOF
# azurite (Azure Blob)
# Not AZURE_STORAGE_CONNECTION_STRING: adlfs reads that by itself, which would let a test pass
# without the code under test passing the connection string on.
export ASCEND_TEST_AZURITE='DefaultEndpointsProtocol=http;AccountName=$AZURITE_ACCOUNT;AccountKey=$AZURITE_KEY;BlobEndpoint=$endpoint;'
# The launcher itself, for tests that start their own Azurite (HTTPS, --oauth basic).
export ASCEND_TEST_AZURITE_BIN='$AZURITE_BIN'
EOF
}

# ---------------------------------------------------------------------------
# registry (OCI distribution, open + htpasswd)
# ---------------------------------------------------------------------------

registry_missing_packages() {
    local pkg status
    for pkg in "${REGISTRY_PACKAGES[@]}"; do
        status="$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)"
        [[ "$status" == "install ok installed" ]] || echo "$pkg"
    done
}

install_registry() {
    local t0 missing still logfile="$DIR/install-registry.log"
    t0=$(now_ms)
    command -v dpkg-query >/dev/null 2>&1 || die "install registry: needs a Debian/Ubuntu system (apt)"
    missing="$(registry_missing_packages | tr '\n' ' ')"
    if [[ -z "${missing// /}" ]]; then
        log "install registry: already installed (${REGISTRY_PACKAGES[*]}) ($(since "$t0") ms)"
        return 0
    fi
    : >"$logfile"
    run_logged "$logfile" as_root env DEBIAN_FRONTEND=noninteractive apt-get -q update ||
        die "install registry: apt-get update failed (log: $logfile)"
    run_logged "$logfile" as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends "${REGISTRY_PACKAGES[@]}" ||
        die "install registry: apt-get install failed (log: $logfile)"
    still="$(registry_missing_packages | tr '\n' ' ')"
    [[ -z "${still// /}" ]] || die "install registry: still missing after apt-get: $still"
    log "install registry: apt installed ${missing% } ($(since "$t0") ms)"
}

# Write a registry config (our own, never the packaged one) into DATA.
#   write_registry_config DATA PORT [HTPASSWD_FILE]
write_registry_config() {
    local data="$1" port="$2" htpasswd="${3:-}" secret
    secret="$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')"
    mkdir -p "$data/storage"
    {
        cat <<EOF
version: 0.1
log:
  level: info
  fields:
    service: registry
storage:
  filesystem:
    rootdirectory: $data/storage
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
  secret: $secret
EOF
        if [[ -n "$htpasswd" ]]; then
            cat <<EOF
auth:
  htpasswd:
    realm: $REGISTRY_REALM
    path: $htpasswd
EOF
        fi
    } >"$data/config.yml"
    echo "$data/config.yml"
}

start_registry() {
    local t0 pid data config
    t0=$(now_ms)
    command -v docker-registry >/dev/null 2>&1 ||
        die "start registry: not installed; run: bash .ci/services.sh install registry"

    if pid="$(running_pid registry "docker-registry serve")"; then
        log "start registry: already running, pid $pid on 127.0.0.1:$(recorded_port registry) ($(since "$t0") ms)"
    else
        remove_data_dirs registry
        data="$(new_data_dir registry)"
        config="$(write_registry_config "$data" "$REGISTRY_PORT")"
        launch registry "$REGISTRY_PORT" "docker-registry serve" docker-registry serve "$config"
    fi

    t0=$(now_ms)
    if pid="$(running_pid registry-auth "docker-registry serve")"; then
        log "start registry-auth: already running, pid $pid on 127.0.0.1:$(recorded_port registry-auth) ($(since "$t0") ms)"
    else
        command -v htpasswd >/dev/null 2>&1 ||
            die "start registry-auth: htpasswd missing; run: bash .ci/services.sh install registry"
        remove_data_dirs registry-auth
        data="$(new_data_dir registry-auth)"
        # The registry only accepts bcrypt entries (-B).
        htpasswd -Bbn "$REGISTRY_USER" "$REGISTRY_PASSWORD" >"$data/htpasswd" 2>/dev/null ||
            die "start registry-auth: htpasswd failed"
        config="$(write_registry_config "$data" "$AUTH_REGISTRY_PORT" "$data/htpasswd")"
        launch registry-auth "$AUTH_REGISTRY_PORT" "docker-registry serve" docker-registry serve "$config"
    fi
}

stop_registry() {
    terminate registry "docker-registry serve"
    terminate registry-auth "docker-registry serve"
    remove_data_dirs registry
    remove_data_dirs registry-auth
}

env_registry() {
    if running_pid registry "docker-registry serve" >/dev/null; then
        echo "# registry (open)"
        echo "export ASCEND_TEST_REGISTRY='127.0.0.1:$(recorded_port registry)'"
    fi
    if running_pid registry-auth "docker-registry serve" >/dev/null; then
        echo "# registry (htpasswd)"
        echo "export ASCEND_TEST_AUTH_REGISTRY='127.0.0.1:$(recorded_port registry-auth)'"
        echo "export ASCEND_TEST_REGISTRY_USER='$REGISTRY_USER'"
        echo "export ASCEND_TEST_REGISTRY_PASSWORD='$REGISTRY_PASSWORD'"
    fi
    return 0
}

# ---------------------------------------------------------------------------
# kube (etcd + kube-apiserver + kube-controller-manager + kube-scheduler)
# ---------------------------------------------------------------------------

KUBE_BIN="$KUBE_CACHE/bin"
KUBE_STATE="$DIR/kube"            # PKI, kubeconfigs; wiped by `stop`
KUBE_COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler)

kube_installed() {
    local b
    [[ -f "$KUBE_CACHE/VERSIONS" ]] || return 1
    for b in "${KUBE_COMPONENTS[@]}"; do [[ -x "$KUBE_BIN/$b" ]] || return 1; done
}

install_kube() {
    local t0 logfile="$DIR/install-kube.log"
    t0=$(now_ms)
    if kube_installed; then
        log "install kube: already $KUBE_VERSION, etcd $ETCD_VERSION (go$KUBE_GO_VERSION) in $KUBE_CACHE ($(since "$t0") ms)"
        return 0
    fi
    command -v go >/dev/null 2>&1 || die "install kube: go not found on PATH"
    command -v openssl >/dev/null 2>&1 || die "install kube: openssl not found on PATH"
    : >"$logfile"
    mkdir -p "$(dirname "$KUBE_CACHE")"
    rm -rf -- "$KUBE_CACHE".tmp.*    # left by a build that was killed
    log "install kube: building $KUBE_VERSION and etcd $ETCD_VERSION with go$KUBE_GO_VERSION (several minutes; log: $logfile)"
    run_logged "$logfile" timeout --kill-after=10 "$KUBE_BUILD_TIMEOUT_S" \
        bash "$KUBE_SRC/build.sh" "$KUBE_CACHE" ||
        die "install kube: build failed or exceeded ${KUBE_BUILD_TIMEOUT_S}s (log: $logfile)"
    kube_installed || die "install kube: binaries missing in $KUBE_BIN after build (log: $logfile)"
    log "install kube: built into $KUBE_CACHE ($(since "$t0") ms)"
}

# kubeconfig for one client cert of the throw-away PKI, certs embedded.
#   kube_write_kubeconfig FILE USER CERT KEY
kube_write_kubeconfig() {
    local file="$1" user="$2" cert="$3" key="$4" pki="$KUBE_STATE/pki"
    (
        umask 077
        cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: ascend-test
  cluster:
    server: https://127.0.0.1:$KUBE_PORT
    certificate-authority-data: $(base64 -w0 <"$pki/ca.crt")
users:
- name: $user
  user:
    client-certificate-data: $(base64 -w0 <"$cert")
    client-key-data: $(base64 -w0 <"$key")
contexts:
- name: $user@ascend-test
  context:
    cluster: ascend-test
    user: $user
current-context: $user@ascend-test
EOF
    )
}

# GET a path on the apiserver with the admin cert; prints the body.
kube_get() {
    local pki="$KUBE_STATE/pki"
    curl -sf --max-time 5 --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" \
        "https://127.0.0.1:$KUBE_PORT$1"
}

# Poll COMMAND until it succeeds; fail with the log of NAME if NAME's process
# dies or the timeout passes.
#   kube_wait NAME MARKER WHAT COMMAND...
kube_wait() {
    local name="$1" marker="$2" what="$3" t0 deadline
    shift 3
    t0=$(now_ms)
    deadline=$((t0 + KUBE_READY_TIMEOUT_S * 1000))
    until "$@" >/dev/null 2>&1; do
        if ! running_pid "$name" "$marker" >/dev/null; then
            show_log_tail "$DIR/$name.log"
            die "$name exited before $what (log: $DIR/$name.log)"
        fi
        if (($(now_ms) > deadline)); then
            show_log_tail "$DIR/$name.log"
            die "$name: no $what within ${KUBE_READY_TIMEOUT_S}s (log: $DIR/$name.log)"
        fi
        sleep 0.2
    done
    log "start $name: $what ($(since "$t0") ms)"
}

# Pid-file name of a component: kube-etcd, or the component's own name.
kube_name() {
    if [[ "$1" == etcd ]]; then echo kube-etcd; else echo "$1"; fi
}

kube_all_running() {
    local c
    for c in "${KUBE_COMPONENTS[@]}"; do
        running_pid "$(kube_name "$c")" "$KUBE_BIN/$c" >/dev/null || return 1
    done
}

kube_any_running() {
    local c
    for c in "${KUBE_COMPONENTS[@]}"; do
        running_pid "$(kube_name "$c")" "$KUBE_BIN/$c" >/dev/null && return 0
    done
    return 1
}

# The body of `start kube`; runs in a subshell so that a failure anywhere
# (each `die`) can be followed by stopping whatever did start.
kube_start_all() {
    local t0 data pki st="$KUBE_STATE"
    t0=$(now_ms)
    rm -rf -- "$st"
    remove_data_dirs kube
    mkdir -p "$st"
    data="$(new_data_dir kube)"
    pki="$st/pki"
    : >"$DIR/kube-pki.log"
    run_logged "$DIR/kube-pki.log" bash "$KUBE_SRC/pki.sh" "$pki" "$KUBE_NODE" ||
        die "start kube: making the PKI failed (log: $DIR/kube-pki.log)"
    kube_write_kubeconfig "$st/controller-manager.kubeconfig" system:kube-controller-manager \
        "$pki/controller-manager.crt" "$pki/controller-manager.key"
    kube_write_kubeconfig "$st/scheduler.kubeconfig" system:kube-scheduler \
        "$pki/scheduler.crt" "$pki/scheduler.key"
    log "start kube: PKI and kubeconfigs in $st ($(since "$t0") ms)"

    launch kube-etcd "$KUBE_ETCD_PORT" "$KUBE_BIN/etcd" \
        "$KUBE_BIN/etcd" --name default --data-dir "$data/etcd" \
        --listen-client-urls "http://127.0.0.1:$KUBE_ETCD_PORT" \
        --advertise-client-urls "http://127.0.0.1:$KUBE_ETCD_PORT" \
        --listen-peer-urls "http://127.0.0.1:$KUBE_ETCD_PEER_PORT" \
        --initial-advertise-peer-urls "http://127.0.0.1:$KUBE_ETCD_PEER_PORT" \
        --initial-cluster "default=http://127.0.0.1:$KUBE_ETCD_PEER_PORT" \
        --unsafe-no-fsync --log-level warn
    kube_wait kube-etcd "$KUBE_BIN/etcd" "/health ok" \
        curl -sf --max-time 2 "http://127.0.0.1:$KUBE_ETCD_PORT/health"

    launch kube-apiserver "$KUBE_PORT" "$KUBE_BIN/kube-apiserver" \
        "$KUBE_BIN/kube-apiserver" \
        --etcd-servers "http://127.0.0.1:$KUBE_ETCD_PORT" \
        --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$KUBE_PORT" \
        --cert-dir "$data/apiserver" \
        --endpoint-reconciler-type none \
        --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
        --client-ca-file "$pki/ca.crt" \
        --kubelet-client-certificate "$pki/apiserver-kubelet-client.crt" \
        --kubelet-client-key "$pki/apiserver-kubelet-client.key" \
        --kubelet-certificate-authority "$pki/ca.crt" \
        --kubelet-preferred-address-types InternalIP \
        --service-account-issuer https://kubernetes.default.svc.cluster.local \
        --service-account-key-file "$pki/sa.pub" \
        --service-account-signing-key-file "$pki/sa.key" \
        --service-cluster-ip-range 10.0.0.0/24 \
        --authorization-mode Node,RBAC \
        --enable-admission-plugins NodeRestriction \
        --audit-policy-file "$KUBE_SRC/audit-policy.yaml" \
        --audit-log-path "$st/audit.log" --audit-log-format json \
        --audit-log-mode blocking --audit-log-maxsize 200 \
        --allow-privileged=true
    kube_wait kube-apiserver "$KUBE_BIN/kube-apiserver" "/readyz ok" kube_get /readyz

    # Written under a temporary name; it appears only once everything is ready.
    kube_write_kubeconfig "$st/admin.kubeconfig.tmp" admin "$pki/admin.crt" "$pki/admin.key"

    launch kube-controller-manager "$KUBE_CM_PORT" "$KUBE_BIN/kube-controller-manager" \
        "$KUBE_BIN/kube-controller-manager" \
        --kubeconfig "$st/controller-manager.kubeconfig" \
        --authentication-kubeconfig "$st/controller-manager.kubeconfig" \
        --authorization-kubeconfig "$st/controller-manager.kubeconfig" \
        --bind-address 127.0.0.1 --secure-port "$KUBE_CM_PORT" \
        --cert-dir "$data/controller-manager" \
        --controllers '*' --use-service-account-credentials \
        --service-account-private-key-file "$pki/sa.key" \
        --root-ca-file "$pki/ca.crt" \
        --cluster-signing-cert-file "$pki/ca.crt" --cluster-signing-key-file "$pki/ca.key" \
        --service-cluster-ip-range 10.0.0.0/24 \
        --leader-elect=false

    launch kube-scheduler "$KUBE_SCHED_PORT" "$KUBE_BIN/kube-scheduler" \
        "$KUBE_BIN/kube-scheduler" \
        --kubeconfig "$st/scheduler.kubeconfig" \
        --authentication-kubeconfig "$st/scheduler.kubeconfig" \
        --authorization-kubeconfig "$st/scheduler.kubeconfig" \
        --bind-address 127.0.0.1 --secure-port "$KUBE_SCHED_PORT" \
        --leader-elect=false

    kube_wait kube-controller-manager "$KUBE_BIN/kube-controller-manager" \
        "default service account in default" \
        kube_get /api/v1/namespaces/default/serviceaccounts/default
    running_pid kube-scheduler "$KUBE_BIN/kube-scheduler" >/dev/null || {
        show_log_tail "$DIR/kube-scheduler.log"
        die "kube-scheduler exited (log: $DIR/kube-scheduler.log)"
    }
    mv -f "$st/admin.kubeconfig.tmp" "$st/admin.kubeconfig"
    log "start kube: control plane $KUBE_VERSION ready on https://127.0.0.1:$KUBE_PORT ($(since "$t0") ms)"
}

start_kube() {
    local t0
    t0=$(now_ms)
    if kube_all_running && [[ -f "$KUBE_STATE/admin.kubeconfig" ]]; then
        log "start kube: already running on https://127.0.0.1:$(recorded_port kube-apiserver) ($(since "$t0") ms)"
        return 0
    fi
    kube_installed || die "start kube: not installed; run: bash .ci/services.sh install kube"
    command -v openssl >/dev/null 2>&1 || die "start kube: openssl not found on PATH"
    command -v curl >/dev/null 2>&1 || die "start kube: curl not found on PATH"
    if kube_any_running; then
        log "start kube: some components run without the others; restarting all"
        stop_kube
    fi
    # In the background and waited for, not `if ! (...)`: a condition context
    # would switch off errexit inside the subshell.
    kube_start_all &
    if ! wait $!; then
        log "start kube: failed; stopping what started"
        stop_kube
        die "start kube: control plane did not come up (logs: $DIR/kube-*.log)"
    fi
}

stop_kube() {
    local i
    # Reverse order: clients first, etcd last.
    for ((i = ${#KUBE_COMPONENTS[@]} - 1; i >= 0; i--)); do
        terminate "$(kube_name "${KUBE_COMPONENTS[i]}")" "$KUBE_BIN/${KUBE_COMPONENTS[i]}"
    done
    remove_data_dirs kube
    rm -rf -- "$KUBE_STATE"
}

env_kube() {
    running_pid kube-apiserver "$KUBE_BIN/kube-apiserver" >/dev/null || return 0
    [[ -f "$KUBE_STATE/admin.kubeconfig" ]] || return 0
    cat <<EOF
# kube (Kubernetes $KUBE_VERSION control plane, RBAC + Node authorizer)
export ASCEND_TEST_KUBECONFIG='$KUBE_STATE/admin.kubeconfig'
# ca.crt, node.crt and node.key (CN=system:node:$KUBE_NODE) for a process kubelet
export ASCEND_TEST_KUBE_PKI='$KUBE_STATE/pki'
export ASCEND_TEST_KUBE_NODE='$KUBE_NODE'
export ASCEND_TEST_KUBE_SERVER='https://127.0.0.1:$(recorded_port kube-apiserver)'
# one JSON record per request of people and test clients (see kube/audit-policy.yaml)
export ASCEND_TEST_KUBE_AUDIT_LOG='$KUBE_STATE/audit.log'
EOF
}

# ---------------------------------------------------------------------------
# env file
# ---------------------------------------------------------------------------

# Rewrite env.sh from whatever is running right now (all services, not only
# the ones named on the command line). Removed when nothing runs.
write_env_file() {
    local body tmp
    body="$(env_moto; env_azurite; env_registry; env_kube)"
    if [[ -z "$body" ]]; then
        rm -f "$ENV_FILE"
        return 0
    fi
    tmp="$(mktemp "$DIR/.env.sh.XXXXXX")"
    chmod 644 "$tmp"
    {
        echo "# Generated by .ci/services.sh; variables for the services running now."
        echo "$body"
    } >"$tmp"
    mv -f "$tmp" "$ENV_FILE"
}

# ---------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------

cmd_install() {
    local s
    for s in "$@"; do "install_$s"; done
}

cmd_start() {
    local s
    for s in "$@"; do "start_$s"; done
    write_env_file
    [[ -f "$ENV_FILE" ]] || die "start: no service is running after start"
    log "env file: $ENV_FILE"
    echo "$ENV_FILE"
}

cmd_stop() {
    local s
    for s in "$@"; do "stop_$s"; done
    write_env_file
}

cmd_env() {
    [[ -f "$ENV_FILE" ]] || die "env: no env file at $ENV_FILE; run: bash .ci/services.sh start"
    cat "$ENV_FILE"
}

main() {
    (($# >= 1)) || usage
    local command="$1"
    shift
    case "$command" in
        install | start | stop | env) ;;
        -h | --help | help) usage ;;
        *) log "unknown command '$command'"; usage ;;
    esac

    local services=() s k known
    if (($# == 0)); then
        services=("${ALL_SERVICES[@]}")
    else
        for s in "$@"; do
            known=""
            for k in "${ALL_SERVICES[@]}" "${OPTIONAL_SERVICES[@]}"; do [[ "$s" == "$k" ]] && known=1; done
            [[ -n "$known" ]] || { log "unknown service '$s' (expected: ${ALL_SERVICES[*]} ${OPTIONAL_SERVICES[*]})"; usage; }
            services+=("$s")
        done
    fi

    check_port_number ASCEND_MOTO_PORT "$MOTO_PORT"
    check_port_number ASCEND_AZURITE_PORT "$AZURITE_PORT"
    check_port_number ASCEND_REGISTRY_PORT "$REGISTRY_PORT"
    check_port_number ASCEND_AUTH_REGISTRY_PORT "$AUTH_REGISTRY_PORT"
    check_port_number ASCEND_KUBE_PORT "$KUBE_PORT"
    check_port_number ASCEND_KUBE_ETCD_PORT "$KUBE_ETCD_PORT"
    check_port_number ASCEND_KUBE_ETCD_PEER_PORT "$KUBE_ETCD_PEER_PORT"
    check_port_number ASCEND_KUBE_CONTROLLER_MANAGER_PORT "$KUBE_CM_PORT"
    check_port_number ASCEND_KUBE_SCHEDULER_PORT "$KUBE_SCHED_PORT"

    mkdir -p "$DIR"

    local t0
    t0=$(now_ms)
    "cmd_$command" "${services[@]}"
    [[ "$command" == env ]] || log "$command ${services[*]}: done ($(since "$t0") ms)"
}

main "$@"
