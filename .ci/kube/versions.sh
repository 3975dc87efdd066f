# Pinned versions for the `kube` test service (sourced by .ci/services.sh and
# the scripts in .ci/kube/). Change them together, then run
#   bash .ci/kube/gen-gomod.sh
# and commit the regenerated .ci/kube/build/go.mod, go.sum (and etcd/).

# Newest v1.36 patch on the module proxy when pinned. Its .go-version says
# which Go it is released with; we build with exactly that toolchain.
KUBE_VERSION="v1.36.3"
# The staging modules (k8s.io/api, k8s.io/apiserver, ...) at the matching v0.x.
KUBE_STAGING_VERSION="v0.36.3"
# From k8s.io/kubernetes@v1.36.3/.go-version; fetched through the module proxy
# as golang.org/toolchain when the installed go differs.
KUBE_GO_VERSION="1.26.5"
# From k8s.io/kubernetes@v1.36.3/build/dependencies.yaml (name: etcd) and its go.mod.
ETCD_VERSION="v3.6.8"
