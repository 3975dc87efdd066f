"""Shared by the benchmarks: make fresh interpreters start the way installed ones do."""

from __future__ import annotations

import compileall
import importlib.util

PACKAGES = ("ascend", "cloudpickle", "fsspec", "pluggy", "click", "yaml", "platformdirs")


def compile_bytecode(packages: tuple[str, ...] = PACKAGES) -> None:
    """Write .pyc files first, as a wheel install does.

    Under PYTHONDONTWRITEBYTECODE every fresh interpreter would otherwise compile ascend and its
    dependencies from source, and the benchmark would measure the compiler.
    """
    for name in packages:
        spec = importlib.util.find_spec(name)
        if spec and spec.submodule_search_locations:
            for location in spec.submodule_search_locations:
                compileall.compile_dir(location, quiet=1)
