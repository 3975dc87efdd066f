"""The real control plane as a test cluster: kube-apiserver, controller-manager and scheduler
started by ``bash .ci/services.sh start kube``, with a process kubelet
(:class:`~ascend.testing.kube.node_agent.NodeAgent`) joined as its node.

:class:`RealCluster` offers what tests use of a :class:`~ascend.testing.kube.KubeEmulator`
(``kubeconfig``, ``api_client()``, ``node_name``, ``running_pids()``, ``requests``), so one test
can run against both. Requests are counted by the API server itself, from its audit log
(``.ci/kube/audit-policy.yaml`` records people and test clients, not the control plane).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ascend.testing.kube.counter import RequestCounts
from ascend.testing.kube.images import DEV_RUNTIME_IMAGE
from ascend.testing.kube.node_agent import NodeAgent, environment_from_pki, wait_ready
from ascend.testing.kube.remote import KubeClient

# Environment of a running `.ci/services.sh start kube` (see `.ci/services.sh env`).
ENVIRONMENT = (
    "ASCEND_TEST_KUBECONFIG",
    "ASCEND_TEST_KUBE_SERVER",
    "ASCEND_TEST_KUBE_PKI",
    "ASCEND_TEST_KUBE_NODE",
)
_METHODS = {
    "get": "GET",
    "list": "GET",
    "watch": "GET",
    "create": "POST",
    "update": "PUT",
    "patch": "PATCH",
    "delete": "DELETE",
    "deletecollection": "DELETE",
}


class AuditCounter(RequestCounts):
    """The requests the API server audited since :meth:`reset`, with the interface of the
    emulator's :class:`~ascend.testing.kube.counter.RequestCounter`."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._offset = self._size()

    def _size(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def reset(self) -> None:
        with self._lock:
            self._offset = self._size()

    def records(self) -> list[dict[str, Any]]:
        with self._lock:
            offset = self._offset
        with self.path.open("rb") as log:
            log.seek(offset)
            data = log.read()
        lines = data.split(b"\n")
        if not data.endswith(b"\n"):
            lines = lines[:-1]  # a record still being written
        return [json.loads(line) for line in lines if line.strip()]

    def snapshot(self) -> dict[tuple[str, str], int]:
        counts: Counter[tuple[str, str]] = Counter()
        for record in self.records():
            method = _METHODS.get(record.get("verb", ""), record.get("verb", "").upper())
            counts[(method, urlsplit(record.get("requestURI", "")).path)] += 1
        return dict(counts)


class RealCluster:
    """A started real control plane with this process's kubelet as its node."""

    kind = "real"

    def __init__(
        self,
        kubeconfig: str | os.PathLike[str],
        server: str,
        pki: str | os.PathLike[str],
        node_name: str,
        audit_log: str | os.PathLike[str] | None = None,
        *,
        cpu: str = "4",
        memory: str = "8Gi",
        preloaded_images: tuple[str, ...] = (DEV_RUNTIME_IMAGE,),
    ) -> None:
        self.kubeconfig = Path(kubeconfig)
        self.server = server
        self.pki = Path(pki)
        self.node_name = node_name
        self.requests = AuditCounter(audit_log) if audit_log else None
        tls = environment_from_pki(pki)
        self.agent = NodeAgent(
            KubeClient(server, *tls),
            node_name,
            tls=tls,
            cpu=cpu,
            memory=memory,
            preloaded_images=preloaded_images,
        )

    @classmethod
    def from_environment(cls) -> RealCluster | None:
        """The cluster `.ci/services.sh env` describes, or None when it is not running."""
        if not all(os.environ.get(name) for name in ENVIRONMENT):
            return None
        return cls(
            os.environ["ASCEND_TEST_KUBECONFIG"],
            os.environ["ASCEND_TEST_KUBE_SERVER"],
            os.environ["ASCEND_TEST_KUBE_PKI"],
            os.environ["ASCEND_TEST_KUBE_NODE"],
            os.environ.get("ASCEND_TEST_KUBE_AUDIT_LOG") or None,
        )

    def start(self, timeout: float = 60.0) -> RealCluster:
        self.agent.start()
        wait_ready(self.agent.client, self.node_name, timeout)
        return self

    def stop(self) -> None:
        """Stop the kubelet and delete its Node (as the admin), so that nothing more is
        scheduled on it."""
        self.agent.stop()
        from kubernetes import client

        try:
            client.CoreV1Api(self.api_client()).delete_node(self.node_name)
        except client.ApiException as error:
            if error.status != 404:
                raise

    def api_client(self) -> Any:
        """A ``kubernetes.client.ApiClient`` authenticated as the cluster admin."""
        from kubernetes import config

        return config.new_client_from_config(config_file=str(self.kubeconfig))

    def running_pids(self, namespace: str | None = None) -> list[int]:
        """Process ids of the containers running on the node (of one namespace's pods)."""
        kubelet = self.agent.kubelet
        return kubelet.running_pids(namespace) if kubelet is not None else []

    @property
    def errors(self) -> list[str]:
        return list(self.agent.errors)

    def user_kubeconfig(
        self, user: str, path: str | os.PathLike[str], groups: tuple[str, ...] = ()
    ) -> Path:
        """A kubeconfig authenticating as ``user`` (not an admin), the way a cluster admin
        onboards a person: a key made here (openssl), a CertificateSigningRequest for the
        ``kubernetes.io/kube-apiserver-client`` signer, approved, signed by the controller
        manager."""
        from kubernetes import client

        with tempfile.TemporaryDirectory() as work:
            key, csr = os.path.join(work, "user.key"), os.path.join(work, "user.csr")
            subject = "".join(f"/O={group}" for group in groups) + f"/CN={user}"
            for command in (
                [
                    "openssl",
                    "genpkey",
                    "-algorithm",
                    "EC",
                    "-pkeyopt",
                    "ec_paramgen_curve:P-256",
                    "-out",
                    key,
                ],
                ["openssl", "req", "-new", "-key", key, "-subj", subject, "-out", csr],
            ):
                subprocess.run(command, check=True, capture_output=True)
            request = Path(csr).read_bytes()
            key_pem = Path(key).read_bytes()
        certificates = client.CertificatesV1Api(self.api_client())
        name = f"ascend-test-{user}-{os.urandom(3).hex()}"
        certificates.create_certificate_signing_request(
            {
                "apiVersion": "certificates.k8s.io/v1",
                "kind": "CertificateSigningRequest",
                "metadata": {"name": name},
                "spec": {
                    "request": base64.b64encode(request).decode(),
                    "signerName": "kubernetes.io/kube-apiserver-client",
                    "expirationSeconds": 3600,
                    "usages": ["client auth"],
                },
            }
        )
        csr_obj = certificates.read_certificate_signing_request(name)
        csr_obj.status.conditions = [
            client.V1CertificateSigningRequestCondition(
                type="Approved", status="True", reason="AscendTest", message="test user"
            )
        ]
        certificates.replace_certificate_signing_request_approval(name, csr_obj)
        deadline = time.monotonic() + 30
        while True:
            signed = certificates.read_certificate_signing_request(name).status.certificate
            if signed:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"the controller manager did not sign {name} in 30 s")
            time.sleep(0.1)
        certificates.delete_certificate_signing_request(name)
        ca = (self.pki / "ca.crt").read_bytes()
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "ascend-test",
                    "cluster": {
                        "server": self.server,
                        "certificate-authority-data": base64.b64encode(ca).decode(),
                    },
                }
            ],
            "users": [
                {
                    "name": user,
                    "user": {
                        "client-certificate-data": signed,
                        "client-key-data": base64.b64encode(key_pem).decode(),
                    },
                }
            ],
            "contexts": [{"name": user, "context": {"cluster": "ascend-test", "user": user}}],
            "current-context": user,
        }
        target = Path(path)
        target.write_text(json.dumps(config))
        target.chmod(0o600)
        return target
