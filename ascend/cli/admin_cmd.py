"""``ascend admin``: cluster set-up for platform engineers."""

from __future__ import annotations

import click


@click.group("admin")
def admin() -> None:
    """Cluster set-up: namespaces and RBAC for Ascend users (needs cluster-admin rights)."""


@admin.command("add-user")
@click.argument("name")
@click.option(
    "--project",
    is_flag=True,
    help="Create the project namespace ascend-projects-NAME instead of a user's.",
)
def add_user(name: str, project: bool) -> None:
    """Create (idempotently) the namespace of user NAME with its service account, a Role that
    may run jobs and read their pods, logs and events, the RoleBinding, and NAME's signing key
    (the Secret ascend-signing-key, which the Role may read and no other Secret); and let NAME and
    that service account read nodes (the ClusterRole ascend-node-reader and a
    ClusterRoleBinding ascend-node-reader-NAMESPACE), so that a call asking for more than any
    node has fails at once. What was created in the namespace is printed on stdout, what was
    created cluster-wide on stderr."""
    from ascend.backend import get_backend
    from ascend.job_ids import PROJECT_MAX, USER_MAX, sanitize_name
    from ascend.kubernetes.admin import (
        ensure_namespace,
        ensure_node_reader,
        project_namespace,
        user_namespace,
    )
    from ascend.kubernetes.compute import KubernetesCompute

    compute = get_backend().compute
    if not isinstance(compute, KubernetesCompute):
        raise click.ClickException(
            f"the current provider runs jobs with {compute.name!r}, not Kubernetes; select a "
            "Kubernetes provider (cloud_provider) first"
        )
    if project:
        namespace = project_namespace(sanitize_name(name, PROJECT_MAX))
    else:
        namespace = user_namespace(sanitize_name(name, USER_MAX))
    created = ensure_namespace(compute._api(), namespace, subject=name)
    cluster = ensure_node_reader(compute._api(), namespace, subject=name)
    if created:
        click.echo(f"{namespace}: created {', '.join(created)}")
    elif cluster:
        click.echo(f"{namespace}: namespace already set up")
    else:
        click.echo(f"{namespace}: already set up, nothing to do")
    if cluster:  # stderr: stdout stays the one line about the namespace
        click.echo(f"cluster: created {', '.join(cluster)} (read on nodes)", err=True)


@admin.command("rotate-key")
@click.argument("name")
@click.option("--project", is_flag=True, help="Rotate the key of project NAME's namespace.")
def rotate_key(name: str, project: bool) -> None:
    """Give user NAME a new signing key. Results signed with the previous keys (the last four)
    still verify; new jobs are signed with the new key. On the local provider NAME must be
    you: it rotates the key file in your config directory."""
    from ascend.backend import get_backend
    from ascend.job_ids import PROJECT_MAX, USER_MAX, sanitize_name
    from ascend.kubernetes.compute import KubernetesCompute

    compute = get_backend().compute
    if isinstance(compute, KubernetesCompute):
        from ascend.kubernetes.admin import project_namespace, user_namespace
        from ascend.kubernetes.keys import rotate

        if project:
            namespace = project_namespace(sanitize_name(name, PROJECT_MAX))
        else:
            namespace = user_namespace(sanitize_name(name, USER_MAX))
        from kubernetes import client

        keys = rotate(client.CoreV1Api(compute._api()), namespace)
        where = f"namespace {namespace}"
    elif compute.name == "local":
        from ascend.local import keys as local_keys

        keys = local_keys.rotate()
        where = str(local_keys.key_path())
    else:
        raise click.ClickException(
            f"the {compute.name!r} compute keeps no signing keys that Ascend can rotate"
        )
    kept = ", ".join(key.key_id for key in keys.previous) or "none"
    click.echo(f"{where}: new signing key {keys.current.key_id} (previous keys kept: {kept})")
