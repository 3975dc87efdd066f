"""The Job manifest of one call: what it asks of the cluster, checked against the 1.30 schema."""

from __future__ import annotations

import pytest

from ascend.compute import JobRequest
from ascend.kubernetes.manifest import build_job, label_value
from ascend.plugins.types import NodeType

kubernetes_validate = pytest.importorskip("kubernetes_validate")

JOB_ID = "20261128-142053123-k3x9q--bob-x--my-proj"


def request(**overrides) -> JobRequest:
    values = dict(
        job_id=JOB_ID,
        package_uri=f"s3://jobs/users/bob-x/jobs/{JOB_ID}/package.pkl",
        result_uri=f"s3://jobs/users/bob-x/jobs/{JOB_ID}/result.pkl",
        cpu="2",
        memory="4Gi",
        timeout=600,
        labels={"user": "bob-x", "project": "my-proj"},
    )
    values.update(overrides)
    return JobRequest(**values)


def validate(manifest: dict) -> None:
    kubernetes_validate.validate(manifest, "1.30.0", strict=True)


GPU = NodeType(
    "gpu-t4",
    cpu="4",
    memory="24Gi",
    gpus=1,
    node_selector=(("agentpool", "gput4"),),
    tolerations=((("key", "nvidia.com/gpu"), ("operator", "Exists"), ("effect", "NoSchedule")),),
)


@pytest.mark.parametrize(
    "manifest",
    [
        build_job(
            request(), namespace="ascend-users-bob-x", image="reg.example/ascend-runtime:py3.11"
        ),
        build_job(request(retries=2), namespace="ns", image="img:1", ttl_seconds=300),
        build_job(
            request(node_type="gpu-t4"),
            namespace="ns",
            image="img:1",
            node_type=GPU,
            env={"AWS_ENDPOINT_URL_S3": "http://127.0.0.1:5002"},
            secret_env={"AWS_SECRET_ACCESS_KEY": ("s3-creds", "secret")},
            service_account="ascend",
        ),
    ],
    ids=["plain", "retries", "gpu-secrets"],
)
def test_every_manifest_validates_strictly_against_kubernetes_1_30(manifest: dict) -> None:
    validate(manifest)


def test_a_misspelled_field_fails_strict_validation() -> None:
    manifest = build_job(request(), namespace="ns", image="img:1")
    manifest["spec"]["backofLimit"] = 0
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(manifest)


def test_the_function_never_reruns_behind_the_users_back() -> None:
    spec = build_job(request(), namespace="ns", image="img:1")["spec"]
    assert spec["backoffLimit"] == 0
    # an eviction fails it too, under a name that outlives the deleted pod
    assert spec["podFailurePolicy"]["rules"] == [
        {"action": "FailJob", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}
    ]
    assert spec["template"]["spec"]["restartPolicy"] == "Never"
    assert spec["activeDeadlineSeconds"] == 600


def test_retries_do_not_count_disruptions() -> None:
    spec = build_job(request(retries=3), namespace="ns", image="img:1")["spec"]
    assert spec["backoffLimit"] == 3
    assert spec["podFailurePolicy"]["rules"] == [
        # an overrun, a corrupt package or a version mismatch would only fail again
        {
            "action": "FailJob",
            "onExitCodes": {"containerName": "runner", "operator": "In", "values": [3, 4, 7]},
        },
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
    ]


def test_labels_name_and_resources() -> None:
    manifest = build_job(request(), namespace="ascend-users-bob-x", image="img:1")
    assert manifest["metadata"]["name"] == f"ascend-{JOB_ID}"
    assert len(manifest["metadata"]["name"]) <= 63
    labels = manifest["metadata"]["labels"]
    assert labels == {
        "app.kubernetes.io/managed-by": "ascend",
        "ascend.io/job-id": JOB_ID,
        "ascend.io/user": "bob-x",
        "ascend.io/project": "my-proj",
    }
    assert manifest["spec"]["template"]["metadata"]["labels"] == labels
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"] == {
        "requests": {"cpu": "2", "memory": "4Gi"},
        "limits": {"cpu": "2", "memory": "4Gi"},
    }
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert container["command"] == ["python", "-m", "ascend.runner"]


def test_pod_gets_uris_never_payloads_and_secrets_only_by_reference() -> None:
    manifest = build_job(
        request(env={"MODE": "fast"}),
        namespace="ns",
        image="img:1",
        secret_env={"TOKEN": ("creds", "token")},
    )
    env = {e["name"]: e for e in manifest["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["ASCEND_PACKAGE_URI"]["value"].startswith("s3://")
    assert env["ASCEND_RESULT_URI"]["value"].endswith("/result.pkl")
    assert env["MODE"] == {"name": "MODE", "value": "fast"}
    assert env["TOKEN"] == {
        "name": "TOKEN",
        "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}},
    }
    assert all(len(str(e)) < 500 for e in env.values())


def test_pod_is_locked_down() -> None:
    pod = build_job(request(), namespace="ns", image="img:1")["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    security = pod["containers"][0]["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    shm = next(v for v in pod["volumes"] if v["name"] == "dshm")
    assert shm["emptyDir"] == {"medium": "Memory"}
    assert {"name": "dshm", "mountPath": "/dev/shm"} in pod["containers"][0]["volumeMounts"]


def test_gpu_node_type_sets_gpu_resources_selector_and_tolerations() -> None:
    pod = build_job(request(node_type="gpu-t4"), namespace="ns", image="img:1", node_type=GPU)[
        "spec"
    ]["template"]["spec"]
    resources = pod["containers"][0]["resources"]
    assert resources["limits"]["nvidia.com/gpu"] == "1"
    assert resources["requests"]["nvidia.com/gpu"] == "1"
    assert pod["nodeSelector"] == {"agentpool": "gput4"}
    assert pod["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]


@pytest.mark.parametrize(
    ("text", "value"),
    [("bob-x", "bob-x"), ("a" * 80, "a" * 63), ("weird name!", "weird-name"), ("-", "none")],
)
def test_label_values_are_valid(text: str, value: str) -> None:
    assert label_value(text) == value


def test_the_jobs_deadline_leaves_room_to_wait_for_a_node_and_pull_the_image() -> None:
    # the runner applies timeout from the function's start; the Job's deadline is a backstop
    manifest = build_job(request(timeout=600), namespace="n", image="i", start_allowance=1500)
    assert manifest["spec"]["activeDeadlineSeconds"] == 2100
    validate(manifest)
