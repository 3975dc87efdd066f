#!/usr/bin/env bash
# Build etcd, kube-apiserver, kube-controller-manager and kube-scheduler from
# their Go modules at the versions pinned in versions.sh, into OUT_DIR/bin.
#
#   bash .ci/kube/build.sh OUT_DIR
#
# OUT_DIR is created atomically (built in OUT_DIR.tmp.*, then renamed), so a
# half-finished build is never taken for a finished one. Uses the Go module
# proxy (modules and, when the installed go differs, the pinned toolchain as
# golang.org/toolchain) and the usual Go build cache.
set -Eeuo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.sh
. "$here/versions.sh"

out="${1:?usage: build.sh OUT_DIR}"
command -v go >/dev/null 2>&1 || { echo "build.sh: go not found on PATH" >&2; exit 1; }

# Exactly the release's Go: a newer Go served a broken /openapi/v2.
export GOTOOLCHAIN="go$KUBE_GO_VERSION"
export CGO_ENABLED=0 GOWORK=off GOFLAGS="-mod=readonly -buildvcs=false"

tmp="$(mktemp -d "$out.tmp.XXXXXX")"
trap 'rm -rf -- "$tmp"' EXIT
trap 'exit 143' TERM INT   # so the EXIT trap runs under `timeout` too
mkdir -p "$tmp/bin"

go version
have="$(go env GOVERSION)"
[[ "$have" == "go$KUBE_GO_VERSION" ]] || { echo "build.sh: got $have, wanted go$KUBE_GO_VERSION" >&2; exit 1; }

t() { local s=$SECONDS; "$@"; echo "built in $((SECONDS - s)) s: ${*: -1}"; }

# --- etcd -------------------------------------------------------------------
eversion="${ETCD_VERSION#v}"
(cd "$here/etcd" && t nice -n 10 go build -trimpath -o "$tmp/bin/etcd" \
    -ldflags "-s -w" go.etcd.io/etcd/server/v3)

# --- kubernetes ------------------------------------------------------------
kv="${KUBE_VERSION#v}"
major="${kv%%.*}"
minor="${kv#*.}"; minor="${minor%%.*}"
vpkg=k8s.io/component-base/version
ldflags="-s -w -X $vpkg.gitVersion=$KUBE_VERSION -X $vpkg.gitMajor=$major -X $vpkg.gitMinor=$minor"
ldflags+=" -X $vpkg.gitTreeState=clean -X $vpkg.buildDate=1970-01-01T00:00:00Z"
for cmd in kube-apiserver kube-controller-manager kube-scheduler; do
    (cd "$here/build" && t nice -n 10 go build -trimpath -o "$tmp/bin/$cmd" \
        -ldflags "$ldflags" "k8s.io/kubernetes/cmd/$cmd")
done

# --- check and publish -------------------------------------------------------
"$tmp/bin/etcd" --version | grep -q "etcd Version: $eversion" ||
    { echo "build.sh: etcd does not report $eversion:" >&2; "$tmp/bin/etcd" --version >&2; exit 1; }
for cmd in kube-apiserver kube-controller-manager kube-scheduler; do
    "$tmp/bin/$cmd" --version | grep -qx "Kubernetes $KUBE_VERSION" ||
        { echo "build.sh: $cmd does not report $KUBE_VERSION:" >&2; "$tmp/bin/$cmd" --version >&2; exit 1; }
done
{
    echo "KUBE_VERSION=$KUBE_VERSION"
    echo "ETCD_VERSION=$ETCD_VERSION"
    echo "GO_VERSION=$have"
} >"$tmp/VERSIONS"
ls -l "$tmp/bin"
rm -rf -- "$out"
mv -- "$tmp" "$out"
trap - EXIT
echo "build.sh: binaries in $out/bin"
