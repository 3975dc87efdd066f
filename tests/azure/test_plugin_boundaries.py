"""The core never knows Azure, and the Azure plugin's entry point costs nothing to load."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FORBIDDEN_IN_CORE = ("azure", "adlfs", "ascend_azure")


def imported_modules(tree: ast.AST, *, top_level_only: bool = False) -> list[tuple[int, str]]:
    nodes = tree.body if top_level_only and isinstance(tree, ast.Module) else ast.walk(tree)
    found = []
    for node in nodes:
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Expr | ast.Assign) and "import_module" in ast.unparse(node):
            found.append((node.lineno, ast.unparse(node)))
    return found


def test_no_azure_import_anywhere_in_the_core() -> None:
    offending = []
    for path in sorted((REPO / "ascend").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for line, module in imported_modules(tree):
            if module.split(".")[0] in FORBIDDEN_IN_CORE:
                offending.append(f"{path.relative_to(REPO)}:{line}: {module}")
    assert offending == []


def test_the_walk_would_catch_an_azure_import() -> None:
    tree = ast.parse("def f():\n    from azure.identity import DefaultAzureCredential\n")
    assert [m for _, m in imported_modules(tree)] == ["azure.identity"]


def test_plugin_module_imports_no_sdk_at_module_level() -> None:
    tree = ast.parse((REPO / "ascend_azure" / "plugin.py").read_text(encoding="utf-8"))
    top = [module for _, module in imported_modules(tree, top_level_only=True)]
    assert all(m.split(".")[0] not in ("azure", "adlfs", "fsspec", "kubernetes") for m in top)


@pytest.mark.parametrize("module", ["ascend_azure.plugin", "ascend_azure.cli"])
def test_loading_the_plugin_and_its_cli_imports_no_sdk(module: str) -> None:
    code = (
        f"import sys, {module}\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'azure', 'adlfs', 'aiohttp', 'fsspec', 'kubernetes', 'msal'}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_entry_point_is_declared_for_the_ascend_group() -> None:
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["entry-points"]["ascend"] == {"azure": "ascend_azure.plugin"}
    assert {"adlfs", "azure-identity", "azure-mgmt-containerservice"} <= {
        requirement.split(">")[0].split("=")[0].strip()
        for requirement in project["optional-dependencies"]["azure"]
    }
