"""Kubernetes quantities as the decorator validates them."""

from __future__ import annotations

from decimal import Decimal

import pytest

from ascend.quantities import cpu_cores, memory_bytes, parse_quantity


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1", Decimal(1)),
        ("500m", Decimal("0.5")),
        ("0.25", Decimal("0.25")),
        ("2Gi", Decimal(2 * 2**30)),
        ("512Mi", Decimal(512 * 2**20)),
        ("1.5G", Decimal("1.5e9")),
        ("1e9", Decimal("1e9")),
        ("3k", Decimal(3000)),
        ("100Ki", Decimal(102400)),
        (".5", Decimal("0.5")),
    ],
)
def test_valid_quantities(text: str, value: Decimal) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["", "lots", "2GB", "2 Gi", "-1", "1.2.3", "Gi", "1Gb", "1x"])
def test_invalid_quantities(text: str) -> None:
    with pytest.raises(ValueError):
        parse_quantity(text)


def test_cpu_must_be_positive_and_at_least_a_millicore() -> None:
    assert cpu_cores("100m") == Decimal("0.1")
    for bad in ("0", "0m", "0.0001"):
        with pytest.raises(ValueError):
            cpu_cores(bad)


def test_memory_is_whole_bytes_and_at_least_a_mebibyte() -> None:
    assert memory_bytes("1Mi") == 2**20
    assert memory_bytes("2Gi") == 2 * 2**30
    with pytest.raises(ValueError, match="at least 1Mi"):
        memory_bytes("512")
    with pytest.raises(ValueError, match="whole number"):
        memory_bytes("1.0000001Mi")
