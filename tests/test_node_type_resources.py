"""A node type's cpu/memory are the default request and the most one job can have on it."""

from __future__ import annotations

import pytest

from ascend import NodeType, hookimpl
from ascend.decorator import ascend
from ascend.runtime import resolve_resources

GPU = NodeType(
    "gpu-big",
    cpu="23500m",
    memory="200Gi",
    gpus=1,
    node_selector=(("kubernetes.azure.com/agentpool", "ncbig"),),
    provider="kubernetes",
    max_cpu="23500m",
    max_memory="200Gi",
)
# another plugin's node type with no known maximum, offered to any provider
ONPREM = NodeType("onprem-gpu8", cpu="8", memory="64Gi", gpus=8)


class Catalog:
    @hookimpl
    def ascend_node_types(self):
        return [GPU, ONPREM]


@pytest.fixture
def catalog(register_plugin) -> None:
    register_plugin(Catalog(), "catalog")


def resources(provider: str = "kubernetes", **options):
    return resolve_resources(ascend(**options)(lambda: None).options, provider)


def test_without_a_node_type_the_defaults_are_one_cpu_and_2gi(catalog) -> None:
    assert resources() == ("1", "2Gi")


def test_a_node_type_brings_its_own_cpu_and_memory(catalog) -> None:
    assert resources(node_type="gpu-big") == ("23500m", "200Gi")


def test_an_explicit_request_that_fits_is_kept(catalog) -> None:
    assert resources(node_type="gpu-big", cpu="8") == ("8", "200Gi")


def test_another_providers_node_type_keeps_the_plain_defaults(catalog) -> None:
    # e.g. the local provider running code written for a GPU cluster
    assert resources("local", node_type="gpu-big") == ("1", "2Gi")


def test_a_node_type_without_a_known_maximum_accepts_any_request(catalog) -> None:
    assert resources(node_type="onprem-gpu8", cpu="32", memory="256Gi") == ("32", "256Gi")
    assert resources("azure", node_type="onprem-gpu8") == ("8", "64Gi")


def test_another_providers_node_type_warns_that_its_defaults_do_not_apply(catalog) -> None:
    import warnings

    from ascend.backend import ConfigWarning

    with pytest.warns(ConfigWarning, match="provider 'kubernetes'.s catalog"):
        assert resources("azure", node_type="gpu-big") == ("1", "2Gi")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        resources("local", node_type="gpu-big")  # the local provider ignores node types
        resources("kubernetes", node_type="gpu-big")
