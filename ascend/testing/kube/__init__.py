"""A local Kubernetes API emulator for tests: real HTTP, real API semantics, pods as processes.

README
======

What it serves
--------------
One HTTP/1.1 server on 127.0.0.1 speaking the Kubernetes REST API (JSON) to the official
``kubernetes`` Python client and to ``kubectl``:

- Discovery: ``/version``, ``/api``, ``/api/v1``, ``/apis``, ``/apis/batch/v1``,
  ``/apis/rbac.authorization.k8s.io/v1``, ``/healthz``, ``/readyz``, and a minimal
  ``/openapi/v3`` (so ``kubectl create`` works without ``--validate=false``: kubectl learns
  that the server validates fields itself).
- Resources: namespaces and nodes (cluster-scoped); pods, jobs (batch/v1), events, secrets,
  configmaps, serviceaccounts, resourcequotas, roles and rolebindings (rbac/v1), and
  clusterroles and clusterrolebindings (rbac/v1, cluster-scoped). Verbs:
  create (``generateName``; 409 AlreadyExists), get (404 NotFound), list (``labelSelector``
  with ``=``, ``!=``, ``in``, ``notin``, exists and ``!key``; ``fieldSelector`` on the
  fields the real server supports), update (PUT, with resourceVersion conflicts), patch
  (JSON merge patch, JSON patch, strategic merge patch approximated), delete
  (``propagationPolicy``, ``gracePeriodSeconds``, preconditions), deletecollection, and the
  ``status`` subresources. Every error is a ``Status`` object with the real reason.
- Validation: incoming objects are checked against the official 1.30 schema with
  ``kubernetes-validate`` (strict: unknown fields are rejected) plus the usual semantic
  checks (names, restart policies, Job rules, requests <= limits): 422 Invalid.
- Watch: ``?watch=true|True|1`` on any list, newline-delimited JSON over chunked transfer,
  ``resourceVersion`` (resume; older than the history -> ERROR 410 Expired),
  ``timeoutSeconds``, selectors (objects leaving a selector arrive as DELETED).
- ``pods/{name}/log`` (``follow``, ``tailLines``, ``timestamps``, ``sinceSeconds``,
  ``limitBytes``, ``previous``, ``container``), ``pods/{name}/eviction``.
- ``GET /debug/requests``: the request counter as JSON (``DELETE`` resets it).

The cluster behind it: one node with the CPU, memory, ``nvidia.com/gpu``, labels and taints
you choose; a scheduler (resources, nodeSelector, required node affinity, taints;
``FailedScheduling`` with the real wording); the Job controller (completions, parallelism,
Indexed, backoffLimit, podFailurePolicy, activeDeadlineSeconds, suspend,
ttlSecondsAfterFinished, conditions and events); a garbage collector (ownerReferences); and a
kubelet that runs every container as a local process in its own session: env from values,
secrets, config maps and the downward API; the memory limit enforced by watching RSS
(``OOMKilled``, 137); logs; SIGTERM then SIGKILL on deletion.

Images
------
The node starts with its *preloaded* images (``preloaded_images=``, as after ``kind load
docker-image``; default only ``DEV_RUNTIME_IMAGE = "ascend-runtime:dev"``, the development
runtime: this checkout and the test environment). A preloaded image's command runs on the
host; ``python -m ascend.runner`` (or an ``ascend-runtime`` image without a command) runs
this interpreter with this checkout on ``PYTHONPATH``. Event: "already present on machine".

Every other image is pulled for real from the registry its reference names, as containerd
would: manifest (an index narrowed to linux/amd64), config and layers over the distribution
API with the pod's ``imagePullSecrets`` (basic auth, bearer challenges), each blob checked
against its digest, layers unpacked safely (whiteouts applied) into a root per image under a
directory the emulator owns (``image_dir``), blobs shared between images. Only loopback
registries (``127.x``, ``localhost``, ``[::1]``; plain HTTP) are reachable: Docker Hub and
other hosts fail as on a node without network. Missing images, refused credentials and bad
blobs give ``ErrImagePull`` then ``ImagePullBackOff`` with containerd's wording;
``imagePullPolicy: Never`` for an image the node lacks gives ``ErrImageNeverPull``. A
container of a pulled image sees only its image: the environment starts from the image's
``Env`` (absolute ``PATH``/``PYTHONPATH`` entries and ``WorkingDir`` mapped into its root),
``Entrypoint``/``Cmd`` apply, and ``python`` (a ``python:X.Y`` base declaring
``PYTHON_VERSION``) is this interpreter with ``-S``: the standard library, none of the test
environment's packages. The image's X.Y must be this interpreter's, or the container fails
to start naming both.

Starting it
-----------
In Python::

    from ascend.testing.kube import KubeEmulator

    with KubeEmulator(cpu="4", memory="8Gi", gpu=1, taints=["gpu=true:NoSchedule"]) as kube:
        kube.write_kubeconfig(tmp_path / "kubeconfig", namespace="default")
        ...  # kubernetes.config.load_kube_config(config_file=str(kube.kubeconfig))
        kube.requests.total, kube.requests.reset()

The object: ``start()`` (port 0: ephemeral, 127.0.0.1 only), ``url``, ``port``,
``write_kubeconfig(path, namespace=None) -> Path`` (also kept as ``.kubeconfig``),
``requests`` (a :class:`RequestCounter`: ``total``, ``snapshot()``, ``matching(method,
contains)``, ``by_method()``, ``reset()``; also ``GET /debug/requests``), ``running_pids()``,
``errors`` (tracebacks from the control plane; empty when healthy), ``api_client()``,
``create_namespace(name)``, ``add_node(name, cpu, memory, gpu, labels, taints,
unschedulable=False)`` (another node, of another pool: no kubelet runs on it, so pods bound to
it stay Pending), ``forbid(verb, resource)`` / ``allow(verb, resource)`` (answer, say,
``("list", "nodes")`` with 403 Forbidden and the real Status, as RBAC refuses a user without
the right; there is no RBAC otherwise), ``store`` (direct access to objects), ``stop()``
(kills every pod process, joins every thread), and use as a context manager. Other keywords: ``host``,
``port``, ``node_name``, ``watch_history`` (default 1000), ``env`` (variables every
container starts with), ``namespaces`` (created at start; default, kube-system...),
``preloaded_images`` (see Images; a list given is exactly what the node has), ``image_dir``
(pulled images, removed by ``stop()``). ``registry`` is deprecated and ignored.
A container's ``containerID`` is ``emulator://<pid>`` of its process; a pulled image's
``imageID`` is ``<host>/<repository>@sha256:<manifest digest>``.

As pytest fixtures: ``from ascend.testing.kube.fixtures import kube_emulator,
make_kube_emulator`` (see :mod:`ascend.testing.kube.fixtures`).

From a shell::

    python -m ascend.testing.kube serve --port 0 --kubeconfig /tmp/kubeconfig \\
        [--cpu 4] [--memory 8Gi] [--gpu 0] [--node-label k=v ...] \\
        [--taint k=v:NoSchedule ...] [--preload IMAGE ...] [--namespace NS]
    kubectl --kubeconfig /tmp/kubeconfig get jobs -n NS

The first stdout line is the URL; SIGTERM or SIGINT stops it cleanly.

Limits
------
- One node runs pods (``add_node`` adds nodes only the scheduler uses); no networking: no
  Services, DNS, ports or pod IPs beyond 127.0.0.1; no Deployments, ReplicaSets,
  StatefulSets, PVCs or CRDs.
- No real containers: every container runs on the host, as the current user, with no
  chroot or namespaces. A pulled image's files are reachable through mapped paths only (an
  executable's own absolute paths, shebangs and shared libraries still mean the host's), so
  in practice pulled images are Python images running Python; a preloaded image runs in a
  temporary directory (``workingDir`` is ignored) and needs a ``command`` unless it is the
  Ascend runtime. Pulls use plain HTTP (no TLS registries); zstd layers are not supported.
  Volumes are not mounted at their paths: an ``emptyDir`` at ``/tmp`` becomes ``TMPDIR``, and a
  Secret volume's files are written to the container's scratch directory, with environment
  values under its ``mountPath`` (``DOCKER_CONFIG=/ascend/docker``) pointed there.
- Security contexts (``runAsNonRoot``, ``runAsUser``, capabilities, seccomp...) are accepted
  and ignored. CPU limits are not enforced; memory limits are (RSS, every 50 ms).
- Strategic merge patch is approximated (merge keys for the common lists); no server-side
  apply; no RBAC enforcement or authentication (only what ``forbid`` refuses); ResourceQuotas
  are stored, not enforced.
- Unknown fields are rejected (422) unless ``fieldValidation=Ignore``; the real server's
  default (Warn) would drop them with a warning instead.
- Deleting a Job without ``propagationPolicy`` orphans its pods, as the real batch/v1 API
  does (with the same Warning header); pass ``propagation_policy="Background"``.
- The eviction API keeps the evicted pod (phase Failed, reason Evicted, condition
  DisruptionTarget) instead of deleting it, so tests can inspect it.
- Timings are shortened: pod retries wait 0.2 s doubling (real: 10 s), image pull back-off
  starts at 1 s, grace periods are capped at 2 s.
- ``kubectl`` get (server-side Table columns), describe, create, apply (client-side), run,
  delete, logs (``-f``), wait and api-resources work; ``kubectl explain`` and
  ``apply --server-side`` do not (no OpenAPI schemas, no server-side apply).
"""

from __future__ import annotations

from ascend.testing.kube.counter import RequestCounter
from ascend.testing.kube.emulator import KubeEmulator
from ascend.testing.kube.images import DEV_RUNTIME_IMAGE

__all__ = ["DEV_RUNTIME_IMAGE", "KubeEmulator", "RequestCounter"]
