"""A node type's cpu/memory are the default request and the most one job can have on it."""

from __future__ import annotations

import pytest

from ascend import NodeType, hookimpl
from ascend.decorator import ascend
from ascend.errors import ConfigError

GPU = NodeType(
    "gpu-big",
    cpu="23500m",
    memory="200Gi",
    gpus=1,
    node_selector=(("kubernetes.azure.com/agentpool", "ncbig"),),
)


class Catalog:
    @hookimpl
    def ascend_node_types(self):
        return [GPU]


@pytest.fixture
def catalog(register_plugin) -> None:
    register_plugin(Catalog(), "catalog")


def test_without_a_node_type_the_defaults_are_one_cpu_and_2gi(catalog) -> None:
    options = ascend(lambda: None).options
    assert (options.cpu, options.memory) == ("1", "2Gi")


def test_a_node_type_brings_its_own_cpu_and_memory(catalog) -> None:
    options = ascend(node_type="gpu-big")(lambda: None).options
    assert (options.cpu, options.memory) == ("23500m", "200Gi")


def test_an_explicit_request_that_fits_is_kept(catalog) -> None:
    options = ascend(node_type="gpu-big", cpu="8")(lambda: None).options
    assert (options.cpu, options.memory) == ("8", "200Gi")


@pytest.mark.parametrize(
    ("option", "value", "limit"), [("cpu", "24", "23500m"), ("memory", "256Gi", "200Gi")]
)
def test_a_request_larger_than_the_node_is_refused_naming_what_fits(
    catalog, option: str, value: str, limit: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        ascend(node_type="gpu-big", **{option: value})
    message = str(caught.value)
    assert f"@ascend({option}={value!r})" in message
    assert "gpu-big" in message and limit in message
