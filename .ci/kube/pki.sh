#!/usr/bin/env bash
# Make a throw-away PKI for the local control plane with openssl.
#
#   bash .ci/kube/pki.sh DIR NODE_NAME
#
# Writes into DIR (which must be empty or absent):
#   ca.crt ca.key                         cluster CA (also signs kubelet CSRs)
#   apiserver.crt/.key                    serving cert, SANs for 127.0.0.1 and the
#                                         in-cluster names of the kubernetes service
#   admin.crt/.key                        CN=admin, O=system:masters
#   controller-manager.crt/.key           CN=system:kube-controller-manager
#   scheduler.crt/.key                    CN=system:kube-scheduler
#   apiserver-kubelet-client.crt/.key     the apiserver's client cert towards kubelets
#   node.crt/.key                         CN=system:node:NODE, O=system:nodes; client
#                                         and serving (SAN IP:127.0.0.1) for a kubelet
#   sa.key sa.pub                         RSA pair for service-account tokens
set -Eeuo pipefail

dir="${1:?usage: pki.sh DIR NODE_NAME}"
node="${2:?usage: pki.sh DIR NODE_NAME}"
# First address of --service-cluster-ip-range (10.0.0.0/24).
service_ip="${ASCEND_KUBE_SERVICE_IP:-10.0.0.1}"
days=3650

mkdir -p "$dir"
cd "$dir"
umask 077

ossl() { openssl "$@" 2>/dev/null || { echo "pki.sh: openssl $* failed" >&2; openssl "$@"; }; }

# EC keys are quick to make and every component accepts them; the
# service-account signer is RSA (RS256 tokens).
newkey() { ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key"; }

newkey ca
ossl req -x509 -new -key ca.key -sha256 -days "$days" -subj "/CN=ascend-test-kubernetes-ca" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
    -out ca.crt

# sign NAME SUBJECT EXTENDED_KEY_USAGE [SUBJECT_ALT_NAMES]
sign() {
    local name="$1" subj="$2" eku="$3" san="${4:-}"
    newkey "$name"
    ossl req -new -key "$name.key" -subj "$subj" -out "$name.csr"
    {
        echo "basicConstraints=critical,CA:FALSE"
        echo "keyUsage=critical,digitalSignature,keyEncipherment"
        echo "extendedKeyUsage=$eku"
        [[ -z "$san" ]] || echo "subjectAltName=$san"
    } >"$name.ext"
    ossl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -sha256 \
        -days "$days" -extfile "$name.ext" -out "$name.crt"
    rm -f "$name.csr" "$name.ext"
}

sign apiserver "/CN=kube-apiserver" serverAuth \
    "IP:127.0.0.1,IP:$service_ip,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
sign admin "/O=system:masters/CN=admin" clientAuth
sign controller-manager "/CN=system:kube-controller-manager" clientAuth
sign scheduler "/CN=system:kube-scheduler" clientAuth
sign apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
sign node "/O=system:nodes/CN=system:node:$node" "clientAuth,serverAuth" "IP:127.0.0.1,DNS:$node,DNS:localhost"

ossl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out sa.key
ossl pkey -in sa.key -pubout -out sa.pub
rm -f ca.srl
chmod 644 ./*.crt sa.pub
