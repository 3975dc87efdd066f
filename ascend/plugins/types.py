"""Typed records that plugins return from zero-argument hooks (settings, providers).

Records are plain data so that the manager can validate, sort and attribute them to the plugin
that contributed them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

_KEY = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")
SETTING_TYPES: tuple[type, ...] = (str, int, float, bool, list, dict)


@dataclass(frozen=True)
class Setting:
    """A configuration key a plugin declares (``ascend_settings``).

    :param name: the key, lowercase; a dotted name (``azure.storage_account``) is written as a
        nested mapping in ``.ascend.yaml`` and as ``ASCEND_AZURE_STORAGE_ACCOUNT`` in the
        environment.
    :param type: one of ``str``, ``int``, ``float``, ``bool``, ``list`` (of str), ``dict``.
    :param default: the value when nothing sets it (``None`` means unset).
    :param help: one line shown by ``ascend config show`` and in errors.
    :param validate: optional callable ``value -> None`` raising ``ValueError(reason)``.
    :param fix: what to tell the user when ``validate`` rejects a value.
    :param secret: the value is a secret (a key, token, password, connection string): it is
        masked wherever Ascend shows it (``ascend config show``, configuration errors), and
        setting it in a config file draws a warning. A ``dict`` setting need not be secret as a
        whole: its secret-looking keys (``account_key``, ``sas_token``...) are masked anyway
        (:mod:`ascend.secrets`).
    :param choices: when given, the only values accepted.
    """

    name: str
    type: type = str
    default: Any = None
    help: str = ""
    validate: Callable[[Any], None] | None = field(default=None, compare=False)
    fix: str | None = None
    secret: bool = False
    choices: tuple[Any, ...] | None = None

    def __post_init__(self) -> None:
        if not _KEY.match(self.name):
            raise ValueError(
                f"setting name {self.name!r} is invalid: use lowercase words joined by '_' "
                "and '.' (for example 'acme.registry_host')"
            )
        if self.type not in SETTING_TYPES:
            names = ", ".join(t.__name__ for t in SETTING_TYPES)
            raise ValueError(f"setting {self.name!r} has type {self.type!r}; use one of {names}")

    @property
    def env_var(self) -> str:
        """The environment variable that overrides this setting."""
        return "ASCEND_" + self.name.upper().replace(".", "_")


@dataclass(frozen=True)
class NodeType:
    """A kind of node jobs can ask for (``@ascend(node_type=...)``), from a provider's catalog.

    :param name: what users write, for example ``gpu-t4``.
    :param cpu: default CPU request for jobs on it (a Kubernetes quantity).
    :param memory: default memory request, fitting the node's allocatable memory.
    :param gpus: GPUs per job (``nvidia.com/gpu``), 0 for CPU nodes.
    :param node_selector: labels a node must carry (e.g. the agent pool name).
    :param tolerations: Kubernetes tolerations (dicts) for tainted pools.
    :param summary: one line shown in listings.
    :param provider: the provider whose clusters have these nodes (``azure``); ``None``: any.
        Its cpu/memory defaults apply only when that provider is selected.
    :param max_cpu: the most CPU one job can have on such a node (``None``: not known);
        a larger request is refused when the function is decorated.
    :param max_memory: the same for memory.
    :param base_image: the image to build ``requirements`` on for jobs on this node type (a
        CUDA base for GPU nodes); an explicit ``base_image`` in the decorator wins. It needs a
        Python of the client's X.Y (``PYTHON_VERSION`` in its environment).
    """

    name: str
    cpu: str = "1"
    memory: str = "2Gi"
    gpus: int = 0
    node_selector: tuple[tuple[str, str], ...] = ()
    tolerations: tuple[tuple[tuple[str, str], ...], ...] = ()
    summary: str = ""
    provider: str | None = None
    max_cpu: str | None = None
    max_memory: str | None = None
    base_image: str | None = None


@dataclass(frozen=True)
class Provider:
    """A cloud provider a plugin offers (``ascend_providers``).

    :param name: what ``cloud_provider`` selects, for example ``azure``.
    :param summary: one line shown by ``ascend plugins``.
    :param builtin: built-in providers (``local``, ``kubernetes``) are never selected
        automatically; a user names them.
    :param unavailable: when the provider is installed but cannot work (a missing extra),
        the reason; ``None`` when it is usable.
    :param fix: how to make an unavailable provider usable (``pip install ascend[azure]``).
    """

    name: str
    summary: str = ""
    builtin: bool = False
    unavailable: str | None = None
    fix: str | None = None

    @property
    def available(self) -> bool:
        return self.unavailable is None
