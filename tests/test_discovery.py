"""Plugin discovery: order, autoload switch, ASCEND_PLUGINS, blocking, failures, validation."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from ascend.errors import PluginError, PluginHookError
from ascend.plugins.manager import AscendPluginManager

from .fakedist import BROKEN_ENTRY_POINT_PLUGIN, ENTRY_POINT_PLUGIN, install_distribution


@pytest.fixture
def entry_point_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A distribution 'acme-ascend' 1.2.3 whose entry point 'acme' is module acme_ascend_ep."""
    target = install_distribution(
        tmp_path / "site", "acme-ascend", "1.2.3", "acme", "acme_ascend_ep", ENTRY_POINT_PLUGIN
    )
    monkeypatch.syspath_prepend(str(target))
    yield target
    sys.modules.pop("acme_ascend_ep", None)


@pytest.fixture
def broken_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    target = install_distribution(
        tmp_path / "broken-site",
        "acme-broken",
        "0.9",
        "broken",
        "acme_broken_ep",
        BROKEN_ENTRY_POINT_PLUGIN,
    )
    monkeypatch.syspath_prepend(str(target))
    yield target
    sys.modules.pop("acme_broken_ep", None)


def load(
    env: dict[str, str] | None = None, strict: bool = False
) -> tuple[AscendPluginManager, str]:
    stderr = io.StringIO()
    pm = AscendPluginManager(strict=strict, stderr=stderr).load(env=env or {})
    return pm, stderr.getvalue()


def names(pm: AscendPluginManager) -> list[str]:
    return [name for name, plugin in pm.list_name_plugin() if plugin is not None]


def test_builtins_load_first_and_alone_without_plugins() -> None:
    pm, err = load({"ASCEND_DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert names(pm) == ["core", "local", "kubernetes", "kubernetes-compute"]
    assert err == ""


def test_entry_point_plugin_of_installed_distribution_is_loaded(entry_point_dist: Path) -> None:
    pm, err = load()
    assert "acme" in names(pm)
    info = next(i for i in pm.plugin_infos() if i.name == "acme")
    assert (info.distribution, info.version, info.source) == ("acme-ascend", "1.2.3", "entry point")
    assert info.status == "active"
    assert "ascend_registry_url" in info.hooks
    assert err == ""


def test_autoload_off_skips_entry_points(entry_point_dist: Path) -> None:
    pm, _ = load({"ASCEND_DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert "acme" not in names(pm)


def test_ascend_plugins_loads_entry_point_by_name_even_with_autoload_off(
    entry_point_dist: Path,
) -> None:
    pm, _ = load({"ASCEND_DISABLE_PLUGIN_AUTOLOAD": "1", "ASCEND_PLUGINS": "acme"})
    assert "acme" in names(pm)
    info = next(i for i in pm.plugin_infos() if i.name == "acme")
    assert info.distribution == "acme-ascend"
    assert info.source == "ASCEND_PLUGINS"


def test_discovery_order_builtins_then_entry_points_then_ascend_plugins(
    entry_point_dist: Path,
) -> None:
    pm, _ = load({"ASCEND_PLUGINS": "tests.plugins.acme_registry"})
    loaded = names(pm)
    assert loaded[:4] == ["core", "local", "kubernetes", "kubernetes-compute"]
    # entry points (this repository's own `azure` and the test distribution's `acme`), in the
    # order importlib.metadata lists them, then ASCEND_PLUGINS
    assert set(loaded[4:-1]) == {"acme", "azure"}
    assert loaded[-1] == "tests.plugins.acme_registry"
    # pluggy calls the last registered first: ASCEND_PLUGINS, then entry points, then built-ins.
    answering = pm.implementers("ascend_registry_url")
    assert answering[0] == "tests.plugins.acme_registry"
    assert answering[-1] == "core"
    assert set(answering[1:-1]) == {"acme", "azure"}


def test_ascend_plugins_accepts_module_paths_and_ignores_blanks() -> None:
    pm, err = load(
        {
            "ASCEND_DISABLE_PLUGIN_AUTOLOAD": "1",
            "ASCEND_PLUGINS": " tests.plugins.acme_registry , ,tests.plugins.hello_cli",
        }
    )
    assert names(pm)[-2:] == ["tests.plugins.acme_registry", "tests.plugins.hello_cli"]
    assert err == ""


def test_disabled_plugins_blocks_by_entry_point_name(entry_point_dist: Path) -> None:
    pm, _ = load({"ASCEND_DISABLED_PLUGINS": "acme"})
    assert "acme" not in names(pm)
    info = next(i for i in pm.plugin_infos() if i.name == "acme")
    assert info.status == "blocked"


def test_disabled_plugins_blocks_by_distribution_name(entry_point_dist: Path) -> None:
    pm, _ = load({"ASCEND_DISABLED_PLUGINS": "acme-ascend"})
    assert "acme" not in names(pm)


def test_disabled_plugins_blocks_builtin_but_not_core() -> None:
    pm, _ = load(
        {
            "ASCEND_DISABLE_PLUGIN_AUTOLOAD": "1",
            "ASCEND_DISABLED_PLUGINS": "kubernetes,local,core,kubernetes-compute",
        }
    )
    assert names(pm) == ["core"]


def test_disabled_plugins_wins_over_ascend_plugins() -> None:
    pm, _ = load(
        {
            "ASCEND_DISABLE_PLUGIN_AUTOLOAD": "1",
            "ASCEND_PLUGINS": "tests.plugins.acme_registry",
            "ASCEND_DISABLED_PLUGINS": "tests.plugins.acme_registry",
        }
    )
    assert "tests.plugins.acme_registry" not in names(pm)


def test_broken_entry_point_is_reported_once_and_the_rest_works(
    broken_dist: Path, entry_point_dist: Path
) -> None:
    pm, err = load()
    assert "acme" in names(pm)
    assert "broken" not in names(pm)
    lines = [line for line in err.splitlines() if line]
    assert len(lines) == 1
    assert "'broken'" in lines[0]
    assert "acme-broken 0.9" in lines[0]
    assert "RuntimeError: acme plugin cannot start: licence file missing" in lines[0]
    assert "ASCEND_DISABLED_PLUGINS=broken" in lines[0]
    failed = next(i for i in pm.plugin_infos() if i.name == "broken")
    assert failed.status.startswith("failed: RuntimeError")


def test_broken_module_in_ascend_plugins_is_reported_with_its_error() -> None:
    pm, err = load(
        {"ASCEND_DISABLE_PLUGIN_AUTOLOAD": "1", "ASCEND_PLUGINS": "tests.plugins.broken_import"}
    )
    assert "tests.plugins.broken_import" not in names(pm)
    assert "ModuleNotFoundError" in err
    assert "ascend_dependency_that_is_not_installed" in err


def test_a_failure_is_reported_once_even_when_loaded_again(broken_dist: Path) -> None:
    stderr = io.StringIO()
    pm = AscendPluginManager(stderr=stderr)
    pm.load(env={"ASCEND_PLUGINS": "broken"})
    assert stderr.getvalue().count("'broken'") == 1


def test_strict_mode_makes_a_broken_plugin_fatal(broken_dist: Path) -> None:
    with pytest.raises(PluginError) as caught:
        load(strict=True)
    assert caught.value.plugin == "broken"
    assert "acme-broken 0.9" in str(caught.value)
    assert isinstance(caught.value.__cause__, RuntimeError)


def test_misspelled_hook_is_an_error_naming_the_plugin_and_the_hook() -> None:
    pm, err = load(
        {"ASCEND_DISABLE_PLUGIN_AUTOLOAD": "1", "ASCEND_PLUGINS": "tests.plugins.misspelled"}
    )
    assert "tests.plugins.misspelled" in err
    assert "ascend_storag" in err
    assert "did you mean 'ascend_storage'" in err
    assert "tests.plugins.misspelled" not in names(pm)


def test_misspelled_hook_is_fatal_when_strict() -> None:
    with pytest.raises(PluginError, match="ascend_storag"):
        load(
            {"ASCEND_DISABLE_PLUGIN_AUTOLOAD": "1", "ASCEND_PLUGINS": "tests.plugins.misspelled"},
            strict=True,
        )


def test_registering_the_same_plugin_twice_is_a_no_op() -> None:
    import tests.plugins.acme_registry as plugin

    pm, _ = load({"ASCEND_DISABLE_PLUGIN_AUTOLOAD": "1"})
    first = pm.register(plugin, "acme-registry")
    second = pm.register(plugin, "acme-registry-again")
    assert first == second == "acme-registry"
    assert pm.implementers("ascend_registry_url").count("acme-registry") == 1


def test_exception_in_a_hook_reaches_the_user_with_the_plugin_name(
    ascend_pm, register_plugin
) -> None:
    import tests.plugins.raising as plugin
    from ascend.config import AscendConfig

    register_plugin(plugin, "acme-raiser")
    config = AscendConfig.load(
        pm=ascend_pm, overrides={"cloud_provider": "kubernetes", "storage_url": "memory://x"}
    )
    with pytest.raises(PluginHookError) as caught:
        ascend_pm.call_first("ascend_storage", config=config)
    assert caught.value.plugin == "acme-raiser"
    assert caught.value.hook == "ascend_storage"
    assert "acme-raiser" in str(caught.value)
    assert "bucket name missing in acme settings" in str(caught.value)
    assert isinstance(caught.value.__cause__, ValueError)


def test_deliberate_ascend_errors_keep_their_type_and_gain_the_plugin_name(
    ascend_pm, register_plugin
) -> None:
    from ascend import ConfigError, hookimpl
    from ascend.config import AscendConfig

    class Picky:
        @hookimpl(tryfirst=True)
        def ascend_storage(self, config):
            raise ConfigError("acme.bucket is required", fix="set acme.bucket")

    register_plugin(Picky(), "picky")
    config = AscendConfig.load(
        pm=ascend_pm, overrides={"cloud_provider": "kubernetes", "storage_url": "memory://x"}
    )
    with pytest.raises(ConfigError) as caught:
        ascend_pm.call_first("ascend_storage", config=config)
    assert any("picky" in note for note in caught.value.__notes__)


def test_answering_plugin_is_attributed(ascend_pm, register_plugin) -> None:
    import tests.plugins.acme_registry as plugin
    from ascend.config import AscendConfig

    register_plugin(plugin, "acme-registry")
    config = AscendConfig.load(pm=ascend_pm, overrides={"acme.registry_host": "reg.acme:5000"})
    assert ascend_pm.call_first("ascend_registry_url", config=config) == (
        "reg.acme:5000",
        "acme-registry",
    )
    deferring = AscendConfig.load(pm=ascend_pm, overrides={"registry_url": "fallback:5000"})
    assert ascend_pm.call_first("ascend_registry_url", config=deferring) == (
        "fallback:5000",
        "core",
    )


def test_addhooks_lets_a_plugin_add_specs_for_others(ascend_pm) -> None:
    import pluggy

    from ascend import hookimpl, hookspec

    class Specs:
        @hookspec(firstresult=True)
        def acme_token(self, audience):
            """Return a token for ``audience``."""

    class Host:
        @hookimpl
        def ascend_addhooks(self, pluginmanager):
            pluginmanager.add_hookspecs(Specs)

    class Answerer:
        @hookimpl
        def acme_token(self, audience):
            return f"token-for-{audience}"

    ascend_pm.register(Answerer(), "answerer")
    with pytest.raises(pluggy.PluginValidationError):
        ascend_pm.check_pending()
    ascend_pm.register(Host(), "host")
    ascend_pm.check_pending()
    assert ascend_pm.call_first("acme_token", audience="x") == ("token-for-x", "answerer")
