"""The AKS node-type catalog: pools AKS can really have, defaults that fit the VM, GPU placement."""

from __future__ import annotations

import re
import shlex

import pytest

from ascend.compute import JobRequest
from ascend.errors import AscendError
from ascend.kubernetes.manifest import GPU_RESOURCE, build_job
from ascend.quantities import cpu_cores, memory_bytes
from ascend_azure.node_types import (
    AKS_NODE_TYPES,
    GPU_TOLERATIONS,
    NODE_TYPE_VM_SIZES,
    POOL_LABEL,
    UnknownNodeTypeError,
    VmSize,
    allocatable,
    default_requests,
    kube_reserved_cpu_millicores,
    kube_reserved_memory_bytes,
    node_capacity_bytes,
    nodepool_add_command,
    pool_name,
    pool_of,
    vm_size_of,
)

MIB = 2**20
GIB = 2**30
AKS_LINUX_POOL = re.compile(r"^[a-z][a-z0-9]{0,11}$")

BY_NAME = {t.name: t for t in AKS_NODE_TYPES}
GPU_TYPES = [t for t in AKS_NODE_TYPES if NODE_TYPE_VM_SIZES[t.name].gpus]
CPU_TYPES = [t for t in AKS_NODE_TYPES if not NODE_TYPE_VM_SIZES[t.name].gpus]

FAMILIES = {
    "general purpose": {
        "Standard_D2s_v5",
        "Standard_D4s_v5",
        "Standard_D8s_v5",
        "Standard_D16s_v5",
    },
    "memory optimised": {"Standard_E4s_v5", "Standard_E8s_v5", "Standard_E16s_v5"},
    "T4": {
        "Standard_NC4as_T4_v3",
        "Standard_NC8as_T4_v3",
        "Standard_NC16as_T4_v3",
        "Standard_NC64as_T4_v3",
    },
    "V100": {"Standard_NC6s_v3", "Standard_NC12s_v3", "Standard_NC24s_v3"},
    "A100": {
        "Standard_NC24ads_A100_v4",
        "Standard_NC48ads_A100_v4",
        "Standard_NC96ads_A100_v4",
    },
    "H100": {"Standard_NC40ads_H100_v5", "Standard_NC80adis_H100_v5"},
}

ids = [t.name for t in AKS_NODE_TYPES]


# -- pools ------------------------------------------------------------------------------------


@pytest.mark.parametrize("node_type", AKS_NODE_TYPES, ids=ids)
def test_every_entry_selects_a_pool_name_aks_accepts(node_type):
    (selector,) = node_type.node_selector
    label, pool = selector
    assert label == POOL_LABEL == "kubernetes.azure.com/agentpool"
    assert AKS_LINUX_POOL.match(pool), pool
    assert pool == pool_of(node_type.name) == pool_name(vm_size_of(node_type.name))


def test_names_and_pools_are_unique_one_pool_per_vm_size():
    names = [t.name for t in AKS_NODE_TYPES]
    sizes = [vm_size_of(n) for n in names]
    pools = [pool_of(n) for n in names]
    assert len(set(names)) == len(names)
    assert len(set(sizes)) == len(sizes)
    assert len(set(pools)) == len(pools)


def test_node_type_names_are_readable_and_consistent():
    for node_type in AKS_NODE_TYPES:
        vm = NODE_TYPE_VM_SIZES[node_type.name]
        assert re.match(r"^(cpu|mem|gpu)-[a-z0-9-]+$", node_type.name)
        if vm.gpus:
            model = vm.gpu_model.split()[0].lower()
            assert node_type.name.startswith(f"gpu-{model}")
            assert (f"x{vm.gpus}" in node_type.name) == (vm.gpus > 1)
        else:
            assert node_type.name.endswith(str(vm.vcpus))
    assert {"cpu-d4", "mem-e8", "gpu-t4", "gpu-t4x4", "gpu-v100", "gpu-a100", "gpu-h100"} <= set(
        BY_NAME
    )
    # The previous catalog's hyphenated pool names could never match a real pool.
    assert all("-" not in pool_of(n) for n in BY_NAME)


@pytest.mark.parametrize(
    "size, pool",
    [
        ("Standard_D4s_v5", "d4sv5"),
        ("Standard_E16s_v5", "e16sv5"),
        ("Standard_NC4as_T4_v3", "nc4ast4v3"),
        ("Standard_NC64as_T4_v3", "nc64ast4v3"),
        ("Standard_NC6s_v3", "nc6sv3"),
        # Too long with the version: the version goes.
        ("Standard_NC24ads_A100_v4", "nc24adsa100"),
        ("Standard_NC80adis_H100_v5", "nc80adish100"),
        ("standard_d4s_v5", "d4sv5"),
    ],
)
def test_pool_name_is_derived_from_the_vm_size(size, pool):
    assert pool_name(size) == pool


def test_pool_name_of_a_very_long_size_is_still_valid_and_distinct():
    first = pool_name("Standard_ABCDEFGHIJKLMN_v2")
    second = pool_name("Standard_ABCDEFGHIJKLMX_v2")
    assert AKS_LINUX_POOL.match(first) and AKS_LINUX_POOL.match(second)
    assert first != second
    assert first == pool_name("Standard_ABCDEFGHIJKLMN_v2")  # deterministic


@pytest.mark.parametrize("size", ["", "Standard_", "Standard_4x", "___"])
def test_pool_name_refuses_what_is_not_a_vm_size(size):
    with pytest.raises(ValueError, match="not an Azure VM size"):
        pool_name(size)


# -- coverage ---------------------------------------------------------------------------------


def test_catalog_covers_the_six_families():
    sizes = {vm.name for vm in NODE_TYPE_VM_SIZES.values()}
    assert sizes == set().union(*FAMILIES.values())
    models = {vm.gpu_model.split()[0] for vm in NODE_TYPE_VM_SIZES.values() if vm.gpus}
    assert models == {"T4", "V100", "A100", "H100"}


def test_mapping_and_lookups_agree():
    assert list(NODE_TYPE_VM_SIZES) == [t.name for t in AKS_NODE_TYPES]
    assert vm_size_of("gpu-t4") == "Standard_NC4as_T4_v3"
    assert vm_size_of("cpu-d4") == "Standard_D4s_v5"
    assert NODE_TYPE_VM_SIZES["gpu-a100x4"] == VmSize(
        "Standard_NC96ads_A100_v4", 96, 880, 4, "A100 80GB"
    )
    with pytest.raises(TypeError):
        NODE_TYPE_VM_SIZES["x"] = NODE_TYPE_VM_SIZES["cpu-d4"]  # type: ignore[index]


def test_unknown_node_type_names_the_known_ones():
    with pytest.raises(UnknownNodeTypeError) as raised:
        vm_size_of("gpu-a100-80")
    assert isinstance(raised.value, AscendError)
    assert isinstance(raised.value, LookupError)
    assert "gpu-a100-80" in str(raised.value)
    assert "gpu-a100x2" in str(raised.value)


def test_retired_v100_sizes_say_so():
    for name in ("gpu-v100", "gpu-v100x2", "gpu-v100x4"):
        assert "retired" in BY_NAME[name].summary
    assert "retired" not in BY_NAME["gpu-a100"].summary


# -- defaults fit the VM ----------------------------------------------------------------------


@pytest.mark.parametrize("node_type", AKS_NODE_TYPES, ids=ids)
def test_defaults_parse_and_fit_one_node(node_type):
    vm = NODE_TYPE_VM_SIZES[node_type.name]
    cpu = cpu_cores(node_type.cpu) * 1000
    memory = memory_bytes(node_type.memory)
    alloc_cpu, alloc_memory = allocatable(vm)
    assert cpu <= alloc_cpu
    assert memory <= alloc_memory
    # Still most of the machine: one job per node.
    assert cpu > vm.vcpus * 1000 / 2
    assert memory > vm.memory_gib * GIB / 2
    assert (node_type.cpu, node_type.memory) == default_requests(vm)
    assert node_type.cpu.endswith("m") and node_type.memory.endswith("Mi")


@pytest.mark.parametrize("node_type", AKS_NODE_TYPES, ids=ids)
def test_defaults_fit_whatever_the_clusters_max_pods(node_type):
    vm = NODE_TYPE_VM_SIZES[node_type.name]
    for max_pods in (30, 110, 250):
        _, alloc_memory = allocatable(vm, max_pods=max_pods)
        assert memory_bytes(node_type.memory) <= alloc_memory


def test_d4s_v5_allocatable_computed_by_hand():
    vm = NODE_TYPE_VM_SIZES["cpu-d4"]
    assert (vm.vcpus, vm.memory_gib) == (4, 16)
    # CPU: 4 cores, kube-reserved 140m (AKS table) -> 3860m.
    # Memory, AKS 1.29+ with 250 max pods:
    #   nominal          16 GiB                              = 17_179_869_184
    #   OS estimate      3% (515_396_075) + 128Mi (134_217_728) -> capacity 16_530_255_381
    #   kube-reserved    min(250 * 20Mi + 50Mi = 5050Mi, 25% of 16Gi = 4Gi) = 4_294_967_296
    #   eviction         100Mi                               =    104_857_600
    #   allocatable      16_530_255_381 - 4_294_967_296 - 104_857_600 = 12_130_430_485
    assert allocatable(vm) == (3860, 12_130_430_485)
    # Minus 500m and 1Gi of DaemonSet headroom, rounded down to whole MiB.
    assert default_requests(vm) == ("3360m", "10544Mi")
    assert (BY_NAME["cpu-d4"].cpu, BY_NAME["cpu-d4"].memory) == ("3360m", "10544Mi")


@pytest.mark.parametrize(
    "cores, millicores",
    [(1, 60), (2, 100), (4, 140), (8, 180), (16, 260), (32, 420), (64, 740)],
)
def test_kube_reserved_cpu_matches_the_documented_table(cores, millicores):
    assert kube_reserved_cpu_millicores(cores) == millicores


def test_kube_reserved_cpu_grows_with_cores_between_table_rows():
    reserved = [kube_reserved_cpu_millicores(n) for n in range(1, 129)]
    assert reserved == sorted(reserved)
    assert kube_reserved_cpu_millicores(96) == 1060
    with pytest.raises(ValueError):
        kube_reserved_cpu_millicores(0)


def test_kube_reserved_memory_follows_the_documented_examples():
    # "8 GB of memory and up to 30 pods: 20 MB * 30 + 50 MB = 650 MB".
    assert kube_reserved_memory_bytes(VmSize("x", 2, 8), max_pods=30) == 650 * MIB
    # "4 GB and up to 70 pods: 25% * 4 GB, as this is less than 20 MB * 70 + 50 MB".
    assert kube_reserved_memory_bytes(VmSize("x", 2, 4), max_pods=70) == 1 * GIB
    with pytest.raises(ValueError):
        kube_reserved_memory_bytes(VmSize("x", 2, 4), max_pods=0)


def test_reservations_match_a_real_aks_1_29_node():
    # A DS2_v2 node (7 GiB), AKS 1.29.7, 30 max pods: capacity 7097600Ki, allocatable 6329600Ki.
    vm = VmSize("Standard_DS2_v2", 2, 7)
    reserved = kube_reserved_memory_bytes(vm, max_pods=30) + 100 * MIB
    assert 7097600 * 1024 - reserved == 6329600 * 1024


@pytest.mark.parametrize(
    "memory_gib, reported_capacity_ki",
    [(4, 4017088), (7, 7097600), (16, 16403296)],
)
def test_capacity_estimate_stays_below_what_aks_nodes_reported(memory_gib, reported_capacity_ki):
    estimate = node_capacity_bytes(VmSize("x", 2, memory_gib))
    assert estimate <= reported_capacity_ki * 1024
    assert estimate > 0.9 * memory_gib * GIB


def test_a_vm_too_small_for_a_job_is_refused():
    with pytest.raises(ValueError, match="too small"):
        default_requests(VmSize("Standard_B1ls", 1, 1))


# -- GPU placement ----------------------------------------------------------------------------


@pytest.mark.parametrize("node_type", GPU_TYPES, ids=[t.name for t in GPU_TYPES])
def test_gpu_entries_ask_for_the_vms_gpus_and_tolerate_gpu_taints(node_type):
    vm = NODE_TYPE_VM_SIZES[node_type.name]
    assert node_type.gpus == vm.gpus > 0
    tolerations = [dict(t) for t in node_type.tolerations]
    assert {"key": "sku", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"} in (
        tolerations
    )
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in tolerations
    assert node_type.tolerations == GPU_TOLERATIONS


@pytest.mark.parametrize("node_type", CPU_TYPES, ids=[t.name for t in CPU_TYPES])
def test_cpu_entries_have_no_gpus_and_no_tolerations(node_type):
    assert node_type.gpus == 0
    assert node_type.tolerations == ()


def test_gpu_counts_per_size():
    counts = {n: BY_NAME[n].gpus for n in ("gpu-t4", "gpu-t4x4", "gpu-v100x2", "gpu-a100x4")}
    assert counts == {"gpu-t4": 1, "gpu-t4x4": 4, "gpu-v100x2": 2, "gpu-a100x4": 4}
    assert BY_NAME["gpu-h100x2"].gpus == 2


def _gpu_job(node_type):
    request = JobRequest(
        job_id="20261128-142053123-k3x9q--bob--proj",
        package_uri="az://ascend-data/p/package.pkl",
        result_uri="az://ascend-data/p/result.pkl",
        cpu=node_type.cpu,
        memory=node_type.memory,
        node_type=node_type.name,
    )
    return build_job(request, namespace="ascend-bob", image="img:1", node_type=node_type)


def test_build_job_places_a_gpu_job_on_its_pool():
    node_type = BY_NAME["gpu-a100x2"]
    manifest = _gpu_job(node_type)
    pod = manifest["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"kubernetes.azure.com/agentpool": "nc48adsa100"}
    assert pod["tolerations"] == [
        {"key": "sku", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"},
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
    ]
    resources = pod["containers"][0]["resources"]
    assert resources["limits"][GPU_RESOURCE] == "2"
    assert resources["requests"][GPU_RESOURCE] == "2"
    assert resources["limits"]["cpu"] == node_type.cpu
    assert resources["limits"]["memory"] == node_type.memory


def test_gpu_job_manifest_is_valid_kubernetes():
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    kubernetes_validate.validate(_gpu_job(BY_NAME["gpu-t4"]), "1.30.0", strict=True)


# -- az aks nodepool add ----------------------------------------------------------------------


@pytest.mark.parametrize("node_type", AKS_NODE_TYPES, ids=ids)
def test_nodepool_add_command_creates_the_selected_pool(node_type):
    command = nodepool_add_command(node_type, "my-aks", "my-rg")
    argv = shlex.split(command)
    assert argv[:4] == ["az", "aks", "nodepool", "add"]
    assert argv[argv.index("--name") + 1] == pool_of(node_type.name)
    assert argv[argv.index("--node-vm-size") + 1] == vm_size_of(node_type.name)
    assert argv[argv.index("--cluster-name") + 1] == "my-aks"
    assert argv[argv.index("--resource-group") + 1] == "my-rg"
    assert argv[argv.index("--node-count") + 1] == "0"
    assert argv[argv.index("--min-count") + 1] == "0"
    assert "--enable-cluster-autoscaler" in argv
    if node_type.gpus:
        assert argv[argv.index("--node-taints") + 1] == "sku=gpu:NoSchedule"
    else:
        assert "--node-taints" not in argv
        assert "gpu" not in command


def test_nodepool_add_command_takes_a_name_and_quotes_arguments():
    command = nodepool_add_command("gpu-t4", "my cluster", "rg; rm -rf /")
    argv = shlex.split(command)
    assert argv[argv.index("--cluster-name") + 1] == "my cluster"
    assert argv[argv.index("--resource-group") + 1] == "rg; rm -rf /"
    assert argv[argv.index("--name") + 1] == "nc4ast4v3"
    with pytest.raises(UnknownNodeTypeError):
        nodepool_add_command("gpu-b200", "c", "rg")
