"""The AKS node-type catalog: which Azure VM size each ``node_type`` means, and what fits on it.

Pure data and arithmetic (stdlib and ``ascend`` only), so the plugin can declare the catalog
without importing an SDK.

Naming
------
Users write readable names; the cluster sees an AKS pool name.

- CPU, general purpose (Dsv5): ``cpu-d<vCPUs>`` -- ``cpu-d2``, ``cpu-d4``, ``cpu-d8``, ``cpu-d16``.
- CPU, memory optimised (Esv5): ``mem-e<vCPUs>`` -- ``mem-e4``, ``mem-e8``, ``mem-e16``.
- GPU: ``gpu-<model>``, then ``x<GPUs>`` when the VM has more than one GPU, then ``-<vCPUs>c``
  when several sizes share the model and GPU count (only the bigger ones get it):
  ``gpu-t4``, ``gpu-t4-8c``, ``gpu-t4-16c``, ``gpu-t4x4``, ``gpu-v100``, ``gpu-v100x2``,
  ``gpu-v100x4``, ``gpu-a100``, ``gpu-a100x2``, ``gpu-a100x4``, ``gpu-h100``, ``gpu-h100x2``.

Each node type selects one AKS pool per VM size through the ``kubernetes.azure.com/agentpool``
label, which AKS sets to the pool name. The pool name is :func:`pool_name` of the VM size
(``Standard_D4s_v5`` -> ``d4sv5``). The previous catalog used names such as ``gpu-a100``, which
no AKS Linux pool can have (lowercase letters and digits only, starting with a letter, at most
12 characters). It also relied on an ``accelerator`` label that AKS never sets; neither is used
here.

Defaults
--------
A node type's ``cpu`` and ``memory`` are the whole allocatable of one node (:func:`allocatable`)
minus a headroom for the DaemonSets every AKS node runs. So by default one job takes one node,
and the request always fits: a request larger than a node's allocatable would stay Pending forever.
"""

from __future__ import annotations

import hashlib
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from ascend.errors import AscendError
from ascend.plugins.types import NodeType
from ascend_azure import PROVIDER

__all__ = [
    "AKS_MAX_PODS",
    "AKS_NODE_TYPES",
    "DAEMONSET_HEADROOM_CPU_MILLICORES",
    "DAEMONSET_HEADROOM_MEMORY_BYTES",
    "EVICTION_HARD_BYTES",
    "GPU_TOLERATIONS",
    "NODE_TYPE_VM_SIZES",
    "POOL_LABEL",
    "RETIRED_VM_SIZES",
    "UnknownNodeTypeError",
    "VmSize",
    "allocatable",
    "default_requests",
    "kube_reserved_cpu_millicores",
    "kube_reserved_memory_bytes",
    "node_capacity_bytes",
    "nodepool_add_command",
    "pool_name",
    "pool_of",
    "vm_size_of",
]

MIB = 2**20
GIB = 2**30

POOL_LABEL = "kubernetes.azure.com/agentpool"
"""AKS puts this label on every node, set to the node pool's name."""

_POOL_NAME = re.compile(r"^[a-z][a-z0-9]{0,11}$")
_POOL_NAME_MAX = 12


class UnknownNodeTypeError(AscendError, LookupError):
    """A node-type name that is not in the AKS catalog."""


@dataclass(frozen=True)
class VmSize:
    """An Azure VM size, as Azure documents it.

    :param name: the size as ``--node-vm-size`` takes it, for example ``Standard_D4s_v5``.
    :param vcpus: vCPUs; the node's CPU capacity is exactly this many cores.
    :param memory_gib: nominal memory in GiB (Azure's size tables are in GiB).
    :param gpus: NVIDIA GPUs on the VM, 0 for none.
    :param gpu_model: the GPU model (``T4``, ``A100 80GB``, ...), ``None`` without GPUs.
    """

    name: str
    vcpus: int
    memory_gib: int
    gpus: int = 0
    gpu_model: str | None = None

    @property
    def memory_bytes(self) -> int:
        return self.memory_gib * GIB


# ---------------------------------------------------------------------------------------------
# AKS node reservations (AKS 1.29 and later).
#
# Source: "Node resource reservations in Azure Kubernetes Service (AKS)",
# https://learn.microsoft.com/en-us/azure/aks/node-resource-reservations
# (MicrosoftDocs article dated 2024-04-16):
#
# - CPU, kube-reserved, by cores on the host: 1 -> 60m, 2 -> 100m, 4 -> 140m, 8 -> 180m,
#   16 -> 260m, 32 -> 420m, 64 -> 740m.
# - Memory, AKS 1.29 and later: an eviction threshold of memory.available < 100Mi, plus a
#   kube-reserved of the lesser of "20 MB * max pods + 50 MB" and "25% of the total system
#   memory". Before 1.29 it was a 750Mi threshold and a regressive 25/20/10/6/2% scale, which
#   reserves more than this on nodes above about 45 GiB; only 1.29+ is modelled here, so on
#   an older cluster (a 1.27/1.28 LTS one) the defaults of the big node types may not fit.
#
# Unit check: a DS2_v2 node of an AKS 1.29.7 cluster with 30 max pods reported capacity
# 7097600Ki and allocatable 6329600Ki, a difference of exactly 750Mi = 30 * 20Mi + 50Mi + 100Mi
# (github.com/virtual-kubelet/virtual-kubelet issue 1250), so the page's "MB" are MiB.
# ---------------------------------------------------------------------------------------------

AKS_MAX_PODS = 250
"""The max-pods value the memory reservation is computed for.

250 is the most a node pool can be configured with (and the default of Azure CNI Overlay and
Cilium; kubenet defaults to 110, legacy Azure CNI to 30). More pods means a larger reservation,
so assuming the maximum gives the smallest allocatable any cluster can have, and the defaults
fit every network configuration. On VMs up to about 20 GiB the 25% cap applies anyway.
"""

EVICTION_HARD_BYTES = 100 * MIB
"""AKS 1.29+ ``--eviction-hard memory.available<100Mi``."""

_KUBE_RESERVED_MEMORY_PER_POD = 20 * MIB
_KUBE_RESERVED_MEMORY_BASE = 50 * MIB

# The kubelet's memory capacity is the kernel's MemTotal, which is less than the VM's nominal
# memory: the kernel keeps its page tables (about 1.6% of RAM) and other boot-time reservations,
# and the AKS page itself says the node OS "also reserves an amount of CPU and memory". AKS does
# not document the amount, so this is an estimate fitted below the capacities AKS nodes reported
# in public issues, with room to spare:
#   Standard_B2s    4 GiB -> 4017088Ki (95.8%)   Azure/AKS issue 1216 (estimate: 3845Mi < 3923Mi)
#   Standard_DS2_v2 7 GiB -> 7097600Ki (96.7%)   virtual-kubelet issue 1250 (6825Mi < 6931Mi)
#   Standard_D4s_v3 16 GiB -> 16403296Ki (97.8%) Azure/AKS issue 1216 (15765Mi < 16019Mi)
# No figure for the large GPU VMs was found; 3% there is an assumption (page tables alone are
# about 1.6%), and the daemonset headroom below is a further margin.
_OS_OVERHEAD_PERCENT = 3
_OS_OVERHEAD_FIXED = 128 * MIB


def kube_reserved_cpu_millicores(cores: int) -> int:
    """AKS's kube-reserved CPU for a node with ``cores`` vCPUs, in millicores.

    Reproduces the documented table exactly (60m for the first core, 40m for the second, 20m
    for each of the third and fourth, 10m for every core after). AKS documents only 1, 2, 4, 8,
    16, 32 and 64 cores; other counts (6, 12, 24, 40, 48, 80, 96 in this catalog) follow the
    same per-core slope, which is constant from 4 to 64 cores in the table. That they do is
    inferred, not documented; the daemonset headroom absorbs a small difference.
    """
    if cores < 1:
        raise ValueError(f"a node has at least one core, not {cores}")
    reserved = 60
    if cores >= 2:
        reserved += 40
    reserved += 20 * min(max(cores - 2, 0), 2)
    reserved += 10 * max(cores - 4, 0)
    return reserved


def node_capacity_bytes(vm: VmSize) -> int:
    """An estimate, on the low side, of the memory capacity the kubelet reports for ``vm``."""
    nominal = vm.memory_bytes
    return nominal - nominal * _OS_OVERHEAD_PERCENT // 100 - _OS_OVERHEAD_FIXED


def kube_reserved_memory_bytes(vm: VmSize, *, max_pods: int = AKS_MAX_PODS) -> int:
    """AKS 1.29+ kube-reserved memory: min(20Mi * max pods + 50Mi, 25% of the VM's memory).

    The 25% is taken of the nominal memory, which is at least the real total, so the result is
    never smaller than what AKS reserves.
    """
    if max_pods < 1:
        raise ValueError(f"max_pods must be at least 1, not {max_pods}")
    by_pods = _KUBE_RESERVED_MEMORY_PER_POD * max_pods + _KUBE_RESERVED_MEMORY_BASE
    return min(by_pods, vm.memory_bytes // 4)


def allocatable(vm: VmSize, *, max_pods: int = AKS_MAX_PODS) -> tuple[int, int]:
    """The node allocatable of ``vm`` on AKS 1.29+: ``(cpu_millicores, memory_bytes)``.

    CPU: the vCPUs minus :func:`kube_reserved_cpu_millicores`. Memory: the kubelet's capacity
    (:func:`node_capacity_bytes`, an estimate) minus :func:`kube_reserved_memory_bytes` minus
    the 100Mi eviction threshold. This is what the scheduler lets pods request on one node,
    DaemonSets included.
    """
    cpu = vm.vcpus * 1000 - kube_reserved_cpu_millicores(vm.vcpus)
    memory = (
        node_capacity_bytes(vm)
        - kube_reserved_memory_bytes(vm, max_pods=max_pods)
        - EVICTION_HARD_BYTES
    )
    return cpu, memory


# Every AKS node runs DaemonSets whose requests come out of the same allocatable as the job's.
# Requests seen on AKS nodes in public issues: kube-proxy 100m, azure-ip-masq-agent 100m/50Mi
# (Azure/AKS issue 1558), cloud-node-manager 50m/50Mi (Azure/AKS issue 5251), csi-azuredisk-node
# 30m/60Mi (kubernetes-sigs/azuredisk-csi-driver issue 662), csi-azurefile-node about the same:
# about 310m and 220Mi before networking and monitoring. Network-policy and CNI agents add more
# (azure-cns and azure-npm requested about 550 MB together in Azure/AKS issue 3525), and so do
# monitoring agents (ama-logs, ama-metrics-node) where enabled. 500m and 1Gi cover that base
# plus one such agent. A cluster with heavier DaemonSets needs smaller cpu/memory per call (the
# pod stays Pending with "Insufficient cpu/memory" otherwise).
DAEMONSET_HEADROOM_CPU_MILLICORES = 500
DAEMONSET_HEADROOM_MEMORY_BYTES = 1 * GIB


def default_requests(vm: VmSize, *, max_pods: int = AKS_MAX_PODS) -> tuple[str, str]:
    """The default ``(cpu, memory)`` of a job on ``vm``: one node's allocatable minus headroom.

    Returned as Kubernetes quantities: CPU in millicores (``"3360m"``), memory rounded down to
    whole MiB (``"10544Mi"``).
    """
    cpu, memory = allocatable(vm, max_pods=max_pods)
    cpu -= DAEMONSET_HEADROOM_CPU_MILLICORES
    memory -= DAEMONSET_HEADROOM_MEMORY_BYTES
    if cpu <= 0 or memory < MIB:
        raise ValueError(f"{vm.name} is too small to run a job next to the AKS DaemonSets")
    return f"{cpu}m", f"{memory // MIB}Mi"


# ---------------------------------------------------------------------------------------------
# Pool names
# ---------------------------------------------------------------------------------------------


def pool_name(vm_size: str) -> str:
    """The AKS node pool name for ``vm_size``: one pool per VM size, always a valid Linux pool
    name (``^[a-z][a-z0-9]{0,11}$``).

    The size without its ``Standard_`` prefix, lowercased, with ``_`` and ``-`` removed:
    ``Standard_D4s_v5`` -> ``d4sv5``, ``Standard_NC4as_T4_v3`` -> ``nc4ast4v3``. When that is
    longer than 12 characters the version suffix goes (``Standard_NC24ads_A100_v4`` ->
    ``nc24adsa100``); if it is still too long, the first 8 characters plus 4 hex characters of
    its SHA-256, so that two long sizes never share a pool.
    """
    text = vm_size.strip()
    if text.lower().startswith("standard_"):
        text = text[len("standard_") :]
    compact = re.sub(r"[^a-z0-9]", "", text.lower())
    if not compact or not compact[0].isalpha():
        raise ValueError(f"{vm_size!r} is not an Azure VM size (e.g. 'Standard_D4s_v5')")
    if len(compact) <= _POOL_NAME_MAX:
        return compact
    unversioned = re.sub(r"v\d+$", "", compact)
    if len(unversioned) <= _POOL_NAME_MAX:
        return unversioned
    digest = hashlib.sha256(compact.encode()).hexdigest()[:4]
    return compact[: _POOL_NAME_MAX - 4] + digest


# ---------------------------------------------------------------------------------------------
# The catalog
# ---------------------------------------------------------------------------------------------

# GPU pools are tainted so that only pods asking for them land there (an idle GPU VM is
# expensive). Jobs tolerate both taints in use on AKS: ``sku=gpu:NoSchedule``, which the AKS
# documentation uses for GPU pools (``az aks nodepool add --node-taints sku=gpu:NoSchedule``),
# and ``nvidia.com/gpu:NoSchedule`` (any value), which the NVIDIA GPU operator and many clusters
# put on GPU nodes. Tolerating a taint a node does not have changes nothing, so a job schedules
# on a GPU pool set up either way; the node selector, not the toleration, picks the pool.
GPU_TOLERATIONS: tuple[tuple[tuple[str, str], ...], ...] = (
    (("key", "sku"), ("operator", "Equal"), ("value", "gpu"), ("effect", "NoSchedule")),
    (("key", "nvidia.com/gpu"), ("operator", "Exists"), ("effect", "NoSchedule")),
)
_GPU_TAINT = "sku=gpu:NoSchedule"

# VM sizes: vCPUs / memory GiB / GPUs. Source for every figure: the Azure VM size list that
# .NET Aspire generates for AKS node pools (src/Aspire.Hosting.Azure.Kubernetes/AksNodeVmSizes.cs,
# as published at https://aspire.dev/reference/api/csharp/aspire.hosting.azure.kubernetes/,
# classes StandardDSv5, StandardESv5, StandardNCASv3T4, StandardNCSv3, StandardNCADSA100v4 and
# StandardNCadsH100v5). They agree with the previous catalog (which used the v3 D/E sizes and
# the same GPU sizes), and the GPU counts and models of the T4, A100 and H100 sizes agree with
# https://huggingface.co/docs/microsoft-azure/en/azure-ai/hardware. The Microsoft Learn series
# pages themselves were not in the stored sources.
# - GPU models: T4 16 GB; V100 (16 GB); A100 80 GB PCIe (NC A100 v4, per the Azure HPC blog
#   on NC A100 v4); H100: the NC H100 v5 sizes carry the 94 GB PCIe "H100 NVL" variant according
#   to the previous catalog -- not confirmed from an Azure page here (Hugging Face lists them as
#   "H100 80GB"), so the model is written as plain "H100".
# - Retired: Azure retired Standard_NC6s_v3, NC12s_v3 and NC24s_v3 (V100) on 2025-09-30 and
#   recommends NC A100 v4 instead (MicrosoftDocs/azure-docs,
#   articles/virtual-machines/ncv3-nc6s-nc12s-nc24s-retirement.md). They stay in the catalog for
#   clusters that still have such pools; ``az aks nodepool add`` for them will be refused.
RETIRED_VM_SIZES: Mapping[str, str] = MappingProxyType(
    {
        "Standard_NC6s_v3": "2025-09-30",
        "Standard_NC12s_v3": "2025-09-30",
        "Standard_NC24s_v3": "2025-09-30",
    }
)

_CATALOG: tuple[tuple[str, VmSize], ...] = (
    # General purpose, Intel, 4 GiB per vCPU.
    ("cpu-d2", VmSize("Standard_D2s_v5", 2, 8)),
    ("cpu-d4", VmSize("Standard_D4s_v5", 4, 16)),
    ("cpu-d8", VmSize("Standard_D8s_v5", 8, 32)),
    ("cpu-d16", VmSize("Standard_D16s_v5", 16, 64)),
    # Memory optimised, Intel, 8 GiB per vCPU.
    ("mem-e4", VmSize("Standard_E4s_v5", 4, 32)),
    ("mem-e8", VmSize("Standard_E8s_v5", 8, 64)),
    ("mem-e16", VmSize("Standard_E16s_v5", 16, 128)),
    # NVIDIA T4 (16 GB), AMD EPYC host.
    ("gpu-t4", VmSize("Standard_NC4as_T4_v3", 4, 28, 1, "T4")),
    ("gpu-t4-8c", VmSize("Standard_NC8as_T4_v3", 8, 56, 1, "T4")),
    ("gpu-t4-16c", VmSize("Standard_NC16as_T4_v3", 16, 110, 1, "T4")),
    ("gpu-t4x4", VmSize("Standard_NC64as_T4_v3", 64, 440, 4, "T4")),
    # NVIDIA V100 (NCv3; retired by Azure, see RETIRED_VM_SIZES).
    ("gpu-v100", VmSize("Standard_NC6s_v3", 6, 112, 1, "V100")),
    ("gpu-v100x2", VmSize("Standard_NC12s_v3", 12, 224, 2, "V100")),
    ("gpu-v100x4", VmSize("Standard_NC24s_v3", 24, 448, 4, "V100")),
    # NVIDIA A100 80 GB PCIe.
    ("gpu-a100", VmSize("Standard_NC24ads_A100_v4", 24, 220, 1, "A100 80GB")),
    ("gpu-a100x2", VmSize("Standard_NC48ads_A100_v4", 48, 440, 2, "A100 80GB")),
    ("gpu-a100x4", VmSize("Standard_NC96ads_A100_v4", 96, 880, 4, "A100 80GB")),
    # NVIDIA H100 (NVL variant per the previous catalog; see above).
    ("gpu-h100", VmSize("Standard_NC40ads_H100_v5", 40, 320, 1, "H100")),
    ("gpu-h100x2", VmSize("Standard_NC80adis_H100_v5", 80, 640, 2, "H100")),
)

NODE_TYPE_VM_SIZES: Mapping[str, VmSize] = MappingProxyType(dict(_CATALOG))
"""Node-type name -> the Azure VM size its pool runs."""


def _summary(vm: VmSize, pool: str) -> str:
    machine = f"{vm.vcpus} vCPU, {vm.memory_gib} GiB"
    if vm.gpus:
        machine = f"{vm.gpus}x NVIDIA {vm.gpu_model}, {machine}"
    text = f"{machine} ({vm.name}, AKS pool {pool})"
    if vm.name in RETIRED_VM_SIZES:
        text += f"; retired by Azure on {RETIRED_VM_SIZES[vm.name]}, prefer gpu-a100"
    return text


def _node_type(name: str, vm: VmSize) -> NodeType:
    cpu, memory = default_requests(vm)
    pool = pool_name(vm.name)
    return NodeType(
        name=name,
        cpu=cpu,
        memory=memory,
        gpus=vm.gpus,
        node_selector=((POOL_LABEL, pool),),
        tolerations=GPU_TOLERATIONS if vm.gpus else (),
        summary=_summary(vm, pool),
        # one job per node: the default is also the most a job can have there
        provider=PROVIDER,
        max_cpu=cpu,
        max_memory=memory,
    )


AKS_NODE_TYPES: tuple[NodeType, ...] = tuple(_node_type(name, vm) for name, vm in _CATALOG)
"""Every node type of the Azure provider, CPU first, then GPUs by generation and size."""

_BY_NAME: Mapping[str, NodeType] = MappingProxyType({t.name: t for t in AKS_NODE_TYPES})


def _vm(node_type_name: str) -> VmSize:
    try:
        return NODE_TYPE_VM_SIZES[node_type_name]
    except KeyError:
        known = ", ".join(NODE_TYPE_VM_SIZES)
        raise UnknownNodeTypeError(
            f"{node_type_name!r} is not an AKS node type", fix=f"use one of: {known}"
        ) from None


def vm_size_of(node_type_name: str) -> str:
    """The Azure VM size of a node type, as ``--node-vm-size`` takes it (``Standard_D4s_v5``)."""
    return _vm(node_type_name).name


def pool_of(node_type_name: str) -> str:
    """The AKS node pool a node type's jobs are scheduled on."""
    return pool_name(vm_size_of(node_type_name))


def nodepool_add_command(node_type: NodeType | str, cluster: str, resource_group: str) -> str:
    """The ``az aks nodepool add`` command that creates the pool ``node_type`` schedules on.

    The pool starts at zero nodes with the cluster autoscaler on (0 to 3 nodes), so it costs
    nothing until a job asks for it. GPU pools get the ``sku=gpu:NoSchedule`` taint that the
    GPU node types tolerate. ``nvidia.com/gpu`` is only schedulable once the NVIDIA device
    plugin (or the GPU operator) runs on the pool; AKS installs the driver, not the plugin.
    """
    name = node_type if isinstance(node_type, str) else node_type.name
    vm = _vm(name)
    parts = [
        "az aks nodepool add",
        f"--resource-group {shlex.quote(resource_group)}",
        f"--cluster-name {shlex.quote(cluster)}",
        f"--name {pool_name(vm.name)}",
        f"--node-vm-size {vm.name}",
        "--node-count 0",
        "--enable-cluster-autoscaler",
        "--min-count 0",
        "--max-count 3",
    ]
    if vm.gpus:
        parts.append(f"--node-taints {_GPU_TAINT}")
    return " ".join(parts)


def _check_catalog() -> None:
    # Import-time guard: a catalog edit that breaks a rule fails loudly, not in a cluster.
    pools = [pool_name(vm.name) for _, vm in _CATALOG]
    if len(_BY_NAME) != len(_CATALOG) or len(set(pools)) != len(pools):
        raise RuntimeError("AKS node-type names and pool names must be unique")
    bad = [p for p in pools if not _POOL_NAME.match(p)]
    if bad:
        raise RuntimeError(f"invalid AKS pool names: {bad}")


_check_catalog()
