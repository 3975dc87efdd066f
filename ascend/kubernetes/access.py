"""What a 403 from the cluster means for the person calling, and who can fix it.

RBAC refuses a user the same way whether a namespace exists or not, so "forbidden" alone cannot
say whether the namespace is someone else's or was never set up. The API can tell the caller
who they are (``SelfSubjectReview``) and what they may do in a namespace
(``SelfSubjectRulesReview``); with both, a refusal becomes one of:

- *a right is missing* from a role the caller has there (an old or edited role): re-running
  ``ascend admin add-user`` restores it;
- *not set up yet* for the caller: ``ascend admin add-user <them>``;
- *someone else's namespace*: use your own, or ask for a RoleBinding there.

The missing permission itself is read from the API server's Status message (``User "alice"
cannot create resource "jobs" in API group "batch" in the namespace "..."``). Where the cluster
cannot answer the reviews (an old API server, the emulator), the error still names the missing
permission and the likely fix.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from ascend.errors import ClusterForbiddenError
from ascend.job_ids import USER_MAX, sanitize_name

ROLE = "ascend-job-runner"  # the Role `ascend admin add-user` makes (admin.ROLE_NAME)
# What Ascend's role covers: rules naming any of these mean the caller was set up there.
ASCEND_RESOURCES = {"jobs", "pods", "pods/log", "secrets", "events", "*"}
REVIEW_TIMEOUT = (3.05, 5)

_REFUSAL = re.compile(
    r'User "(?P<user>[^"]*)" cannot (?P<verb>[a-z]+) resource "(?P<resource>[^"]+)"'
    r'(?: in API group "(?P<group>[^"]*)")?'
)


@dataclass(frozen=True)
class Refusal:
    """What the API server refused, from its Status message."""

    user: str
    verb: str
    resource: str
    group: str

    @property
    def permission(self) -> str:
        """``create jobs.batch``, ``get secrets``: as ``kubectl auth can-i`` spells it."""
        return f"{self.verb} {self.resource}{'.' + self.group if self.group else ''}"


def refusal(error: Any) -> Refusal | None:
    """The refused permission in a 403 ``ApiException``, when its message says."""
    body = getattr(error, "body", None) or ""
    try:
        message = str(json.loads(body).get("message", ""))
    except (ValueError, AttributeError, TypeError):
        message = str(body)
    match = _REFUSAL.search(message)
    if match is None:
        return None
    return Refusal(match["user"], match["verb"], match["resource"], match["group"] or "")


def who_am_i(api_client: Any) -> str | None:
    """The caller's user name as the cluster knows it (None when the API cannot say)."""
    from kubernetes import client

    try:
        review = client.AuthenticationV1Api(api_client).create_self_subject_review(
            {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
            _request_timeout=REVIEW_TIMEOUT,
        )
    except Exception:  # 404 on clusters before 1.28, 403 if refused: no answer, no failure
        return None
    info = getattr(getattr(review, "status", None), "user_info", None)
    return getattr(info, "username", None) or None


def has_ascend_rights(api_client: Any, namespace: str) -> bool | None:
    """Whether any of the caller's rules in ``namespace`` covers Ascend's resources (None when
    the API cannot say)."""
    from kubernetes import client

    try:
        review = client.AuthorizationV1Api(api_client).create_self_subject_rules_review(
            {
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SelfSubjectRulesReview",
                "spec": {"namespace": namespace},
            },
            _request_timeout=REVIEW_TIMEOUT,
        )
    except Exception:
        return None
    rules = getattr(review.status, "resource_rules", None) or []
    return any(ASCEND_RESOURCES & set(rule.resources or []) for rule in rules)


def owner_of(namespace: str) -> tuple[str, str] | None:
    """("user"|"project", name) for Ascend's namespaces, else None."""
    for prefix, kind in (("ascend-users-", "user"), ("ascend-projects-", "project")):
        if namespace.startswith(prefix):
            return kind, namespace[len(prefix) :]
    return None


def forbidden_error(
    api_client: Any, error: Any, namespace: str, action: str
) -> ClusterForbiddenError:
    """The error for a 403 while doing ``action`` in ``namespace``: what was refused, to whom,
    why (as far as the cluster lets Ascend tell) and who can fix it."""
    refused = refusal(error)
    identity = who_am_i(api_client) or (refused.user if refused else None)
    you = f"you ({identity!r})" if identity else "you"
    permission = f" ({refused.permission})" if refused else ""
    first = f"the cluster refused to {action} in namespace {namespace!r}: {you} may not"
    first += f" {refused.permission} there" if refused else " do that there"
    owner = owner_of(namespace)
    add_user = (
        f"ascend admin add-user {'--project ' if owner[0] == 'project' else ''}{owner[1]}"
        if owner
        else None
    )
    rights = has_ascend_rights(api_client, namespace)
    mine = (
        identity is not None
        and owner is not None
        and owner[0] == "user"
        and sanitize_name(identity, USER_MAX) == owner[1]
    )
    evidence: dict[str, Any] = {
        "namespace": namespace,
        "user": identity,
        "permission": refused.permission if refused else None,
    }
    restore = f"ask a cluster admin to run: {add_user}" if add_user else None
    if rights:
        return ClusterForbiddenError(
            f"{first}: your role there lacks this right, probably an older or edited role",
            **evidence,
            fix=f"{restore} (it restores the role {ROLE})"
            if restore
            else f"ask a cluster admin to grant {you} {permission.strip(' ()') or 'it'} there",
        )
    if rights is False and not mine:
        own = f"ascend-users-{sanitize_name(identity, USER_MAX)}" if identity else None
        subject = identity or "YOU"
        return ClusterForbiddenError(
            f"{first}: namespace {namespace!r} is not yours (or does not exist), and you have "
            "no rights in it",
            **evidence,
            fix=(f"use your own namespace ({own}), or " if own else "")
            + f"ask a cluster admin to let you in: kubectl -n {namespace} create rolebinding "
            f"ascend-{sanitize_name(subject, 40)} --role={ROLE} --user={subject}",
        )
    if rights is False:  # the caller's own namespace, and no rights in it
        return ClusterForbiddenError(
            f"{first}: namespace {namespace!r} is not set up for you yet",
            **evidence,
            fix=restore or "ask a cluster admin to give you a namespace (ascend admin add-user)",
        )
    # The cluster cannot say what the caller may do there (no SelfSubjectRulesReview).
    return ClusterForbiddenError(
        f"{first}: either the namespace is not set up for you yet, or it is someone else's",
        **evidence,
        fix=(f"for your own namespace, {restore}; for another's, " if restore else "")
        + f"ask a cluster admin to grant {you} {ROLE} there",
    )
