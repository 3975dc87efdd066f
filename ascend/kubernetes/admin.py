"""Cluster set-up for users: a namespace each, with just the rights Ascend needs.

Everything is idempotent: running it twice changes nothing and fails on nothing.
"""

from __future__ import annotations

from typing import Any

from ascend.errors import ComputeError

ROLE_NAME = "ascend-job-runner"
RULES = [
    {
        "apiGroups": ["batch"],
        "resources": ["jobs"],
        "verbs": ["create", "get", "list", "watch", "delete", "patch"],
    },
    {
        "apiGroups": [""],
        "resources": ["pods", "pods/log", "events"],
        "verbs": ["get", "list", "watch"],
    },
    {  # the user's signing key, and no other Secret (ascend.kubernetes.keys)
        "apiGroups": [""],
        "resources": ["secrets"],
        "resourceNames": ["ascend-signing-key"],
        "verbs": ["get"],
    },
]

NODE_READER = "ascend-node-reader"  # lets a call compare its request with the nodes' sizes
NODE_READER_RULES = [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch"]}]
RBAC_GROUP = "rbac.authorization.k8s.io"
SERVICE_ACCOUNT = "ascend"


def user_namespace(user: str) -> str:
    return f"ascend-users-{user}"


def project_namespace(project: str) -> str:
    return f"ascend-projects-{project}"


def ensure_namespace(api_client: Any, namespace: str, subject: str) -> list[str]:
    """Create the namespace, its service account, the Role and the RoleBinding if missing.

    ``subject`` is the user the RoleBinding grants the Role to (besides the service account).
    Returns what was created (empty when everything existed).
    """
    from kubernetes import client

    core = client.CoreV1Api(api_client)
    rbac = client.RbacAuthorizationV1Api(api_client)
    service_account = SERVICE_ACCOUNT
    steps = [
        (
            "namespace",
            lambda: core.create_namespace(
                {
                    "apiVersion": "v1",
                    "kind": "Namespace",
                    "metadata": {
                        "name": namespace,
                        "labels": {"app.kubernetes.io/managed-by": "ascend"},
                    },
                }
            ),
        ),
        (
            "service account",
            lambda: core.create_namespaced_service_account(
                namespace,
                {
                    "apiVersion": "v1",
                    "kind": "ServiceAccount",
                    "metadata": {"name": service_account, "namespace": namespace},
                },
            ),
        ),
        (
            "role",
            lambda: rbac.create_namespaced_role(
                namespace,
                {
                    "apiVersion": "rbac.authorization.k8s.io/v1",
                    "kind": "Role",
                    "metadata": {"name": ROLE_NAME, "namespace": namespace},
                    "rules": RULES,
                },
            ),
        ),
        (
            "role binding",
            lambda: rbac.create_namespaced_role_binding(
                namespace,
                {
                    "apiVersion": "rbac.authorization.k8s.io/v1",
                    "kind": "RoleBinding",
                    "metadata": {"name": ROLE_NAME, "namespace": namespace},
                    "roleRef": {
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": "Role",
                        "name": ROLE_NAME,
                    },
                    "subjects": [
                        {"kind": "ServiceAccount", "name": service_account, "namespace": namespace},
                        {"kind": "User", "name": subject, "apiGroup": "rbac.authorization.k8s.io"},
                    ],
                },
            ),
        ),
    ]
    from ascend.kubernetes.keys import new_secret

    steps.append(
        ("signing key", lambda: core.create_namespaced_secret(namespace, new_secret(namespace)))
    )
    created = []
    for what, create in steps:
        if _created(create, what, namespace):
            created.append(what)
    return created


def node_reader_binding(namespace: str) -> str:
    """The ClusterRoleBinding granting read on nodes to the user or project of ``namespace``."""
    return f"{NODE_READER}-{namespace}"


def ensure_node_reader(api_client: Any, namespace: str, subject: str) -> list[str]:
    """Let ``subject`` and the service account of ``namespace`` read nodes (cluster-wide, read
    only), so a call larger than any node fails at once instead of after pending_timeout:
    the ClusterRole :data:`NODE_READER` and a ClusterRoleBinding named after the namespace,
    each created if missing. Returns what was created (empty when both existed)."""
    from kubernetes import client

    rbac = client.RbacAuthorizationV1Api(api_client)
    binding = node_reader_binding(namespace)
    steps = [
        (
            f"cluster role {NODE_READER}",
            lambda: rbac.create_cluster_role(
                {
                    "apiVersion": f"{RBAC_GROUP}/v1",
                    "kind": "ClusterRole",
                    "metadata": {
                        "name": NODE_READER,
                        "labels": {"app.kubernetes.io/managed-by": "ascend"},
                    },
                    "rules": NODE_READER_RULES,
                }
            ),
        ),
        (
            f"cluster role binding {binding}",
            lambda: rbac.create_cluster_role_binding(
                {
                    "apiVersion": f"{RBAC_GROUP}/v1",
                    "kind": "ClusterRoleBinding",
                    "metadata": {
                        "name": binding,
                        "labels": {"app.kubernetes.io/managed-by": "ascend"},
                    },
                    "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": NODE_READER},
                    "subjects": [
                        {"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": namespace},
                        {"kind": "User", "name": subject, "apiGroup": RBAC_GROUP},
                    ],
                }
            ),
        ),
    ]
    return [what for what, create in steps if _created(create, what, "the cluster")]


def _created(create: Any, what: str, namespace: str) -> bool:
    from kubernetes.client.exceptions import ApiException

    try:
        create()
        return True
    except ApiException as error:
        if error.status == 409:
            return False
        raise ComputeError(
            f"could not create the {what} in {namespace}: HTTP {error.status} {error.reason}",
            fix="run this as a cluster admin (it creates namespaces and RBAC objects)",
        ) from None
