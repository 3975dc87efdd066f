"""``requirements="local"``: pin what the function imports to the versions installed here.

The distributions come from the modules the function's globals, closure and arguments reach
(``importlib.metadata.packages_distributions``), so the pod gets the versions that worked on
the laptop. The standard library, the runner's own packages, and distributions installed from a
local directory (editable installs of your own code) are not pinned: those cannot come from an
index, and travel with the call by value instead.
"""

from __future__ import annotations

import inspect
import json
import sys
import types
from collections.abc import Callable, Iterable
from importlib import metadata
from typing import Any

RUNNER_PACKAGES = {"ascend", "cloudpickle", "fsspec"}


def _top(name: str | None) -> str | None:
    return name.split(".", 1)[0] if name else None


def referenced_modules(fn: Callable[..., Any], values: Iterable[Any] = ()) -> set[str]:
    """Top-level module names reached from ``fn`` (globals it names, its closure, functions
    of its own module it calls, recursively) and from ``values`` (the call's arguments)."""
    found: set[str] = set()
    seen: set[int] = set()
    pending: list[Any] = [fn, *values]
    while pending:
        item = pending.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, types.ModuleType):
            found.add(item.__name__.split(".", 1)[0])
            continue
        module = _top(getattr(item, "__module__", None) or getattr(type(item), "__module__", None))
        if module:
            found.add(module)
        function = inspect.unwrap(item) if callable(item) else None
        code = getattr(function, "__code__", None)
        if code is None:
            continue
        scope = getattr(function, "__globals__", {})
        names = set(code.co_names)
        for const in code.co_consts:  # nested functions and comprehensions
            if isinstance(const, types.CodeType):
                names |= set(const.co_names)
        pending += [scope[name] for name in names if name in scope]
        pending += [cell.cell_contents for cell in getattr(function, "__closure__", None) or ()]
    return found


def _installed_from_a_directory(distribution: metadata.Distribution) -> bool:
    text = distribution.read_text("direct_url.json")
    if not text:
        return False
    try:
        return str(json.loads(text).get("url", "")).startswith("file:")
    except ValueError:
        return False


def local_requirements(
    fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[str, ...]:
    """``name==version`` for every installed distribution the call reaches."""
    from packaging.utils import canonicalize_name

    by_module = metadata.packages_distributions()
    pins: set[str] = set()
    for module in referenced_modules(fn, [*args, *kwargs.values()]):
        if module in sys.stdlib_module_names or module in ("__main__", "builtins"):
            continue
        for name in by_module.get(module, []):
            canonical = canonicalize_name(name)
            if canonical in RUNNER_PACKAGES:
                continue
            try:
                distribution = metadata.distribution(name)
            except metadata.PackageNotFoundError:
                continue
            if _installed_from_a_directory(distribution):
                continue
            pins.add(f"{canonical}=={distribution.version}")
    return tuple(sorted(pins))
