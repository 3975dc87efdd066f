"""Install a real (tiny) distribution with an ``ascend`` entry point into a directory.

pip installs a package by writing the module and a ``.dist-info`` folder (METADATA,
entry_points.txt, RECORD) into site-packages; this writes the same files into a directory the
test puts on ``sys.path`` or ``PYTHONPATH``, so importlib.metadata finds it as pip's would.
"""

from __future__ import annotations

from pathlib import Path


def install_distribution(
    target: Path, dist: str, version: str, entry_name: str, module: str, source: str
) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    (target / f"{module}.py").write_text(source, encoding="utf-8")
    info = target / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n", encoding="utf-8"
    )
    (info / "entry_points.txt").write_text(f"[ascend]\n{entry_name} = {module}\n", encoding="utf-8")
    (info / "top_level.txt").write_text(module + "\n", encoding="utf-8")
    (info / "RECORD").write_text(
        f"{module}.py,,\n{info.name}/METADATA,,\n{info.name}/entry_points.txt,,\n"
        f"{info.name}/RECORD,,\n",
        encoding="utf-8",
    )
    return target


ENTRY_POINT_PLUGIN = """
from ascend import Provider, hookimpl

@hookimpl
def ascend_providers():
    return [Provider("acmecloud", summary="ACME cloud")]

@hookimpl
def ascend_registry_url(config):
    return "ep.registry.example"
"""

BROKEN_ENTRY_POINT_PLUGIN = "raise RuntimeError('acme plugin cannot start: licence file missing')\n"
