"""AscendConfig: discovery, precedence, origins, conversion, validation and provider resolution."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path
from typing import Any

import pytest

from ascend.config import AscendConfig, Origin
from ascend.errors import ConfigError, NoBackendError, PluginError, ProviderError
from ascend.plugins.markers import hookimpl
from ascend.plugins.types import Provider, Setting


class SettingsPlugin:
    def __init__(self, *settings: Setting) -> None:
        self._settings = settings

    @hookimpl
    def ascend_settings(self) -> list[Setting]:
        return list(self._settings)


class ProviderPlugin:
    def __init__(self, *providers: Provider) -> None:
        self._providers = providers

    @hookimpl
    def ascend_providers(self) -> list[Provider]:
        return list(self._providers)


def _check_host(value: str) -> None:
    if ":" in value and not value.rsplit(":", 1)[1].isdigit():
        raise ValueError("the port must be a number")


ACME_SETTINGS = (
    Setting(
        "acme.registry_host",
        str,
        help="in-house registry, host[:port]",
        validate=_check_host,
        fix="write host[:port], for example registry.acme.test:5000",
    ),
    Setting("acme.debug", bool, default=False, fix="write true or false"),
    Setting("acme.retries", int, default=3, fix="write a whole number such as 5"),
    Setting("acme.timeout", float, default=1.5, help="seconds to wait for the ACME API"),
    Setting("acme.zones", list, default=[], fix="write a list of zone names"),
    Setting("acme.tier", str, default="standard", choices=("standard", "premium")),
)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def load(pm: Any, **kwargs: Any) -> AscendConfig:
    return AscendConfig.load(pm=pm, **kwargs)


@pytest.fixture
def acme(register_plugin: Any) -> None:
    register_plugin(SettingsPlugin(*ACME_SETTINGS), name="acme")


@pytest.fixture
def user_file(ascend_env: Path) -> Path:
    return Path(os.environ["ASCEND_CONFIG_DIR"]) / "config.yaml"


@pytest.fixture
def project_file(ascend_env: Path) -> Path:
    return ascend_env / ".ascend.yaml"


# -- discovery ----------------------------------------------------------------------------------


def test_project_file_in_cwd_is_read(ascend_pm, project_file):
    write(project_file, "registry_url: registry.example.com\n")
    config = load(ascend_pm)
    assert config.registry_url == "registry.example.com"
    assert config.files == [project_file]


def test_project_file_in_parent_directory_is_found(ascend_pm, tmp_path):
    project = write(tmp_path / "repo" / ".ascend.yaml", "registry_url: parent.example.com\n")
    deep = tmp_path / "repo" / "src" / "pkg"
    deep.mkdir(parents=True)
    config = load(ascend_pm, cwd=deep)
    assert config.registry_url == "parent.example.com"
    assert config.origin("registry_url") == Origin("file", str(project))


def test_nearest_project_file_wins(ascend_pm, tmp_path):
    write(tmp_path / "repo" / ".ascend.yaml", "registry_url: outer.example.com\n")
    inner = write(tmp_path / "repo" / "sub" / ".ascend.yaml", "registry_url: inner.example.com\n")
    deep = tmp_path / "repo" / "sub" / "pkg"
    deep.mkdir()
    config = load(ascend_pm, cwd=deep)
    assert config.registry_url == "inner.example.com"
    assert config.files == [inner]


def test_user_file_in_config_dir_is_read(ascend_pm, user_file):
    write(user_file, "storage_url: s3://user-bucket/ascend\n")
    config = load(ascend_pm)
    assert config.storage_url == "s3://user-bucket/ascend"
    assert config.origin("storage_url") == Origin("file", str(user_file))
    assert config.files == [user_file]


def test_project_file_overrides_user_file_key_by_key(ascend_pm, user_file, project_file):
    write(user_file, "storage_url: s3://user-bucket/ascend\nregistry_url: user.example.com\n")
    write(project_file, "registry_url: project.example.com\n")
    config = load(ascend_pm)
    assert config.registry_url == "project.example.com"
    assert config.origin("registry_url") == Origin("file", str(project_file))
    assert config.storage_url == "s3://user-bucket/ascend"
    assert config.origin("storage_url") == Origin("file", str(user_file))
    assert config.files == [user_file, project_file]


def test_no_files_gives_declared_defaults(ascend_pm):
    config = load(ascend_pm)
    assert config.files == []
    assert config.as_dict() == {
        key: setting.default for key, (setting, _) in ascend_pm.settings().items()
    }
    assert config.as_dict()["storage_options"] == {}
    assert config.as_dict()["cloud_provider"] is None
    assert config.origin("storage_options") == Origin("default")
    assert config.warnings == []
    assert config.problems == []


# -- precedence and origins -------------------------------------------------------------------


@pytest.mark.parametrize("top", ["default", "user", "project", "env", "code"])
def test_highest_layer_wins_and_is_the_origin(top, ascend_pm, user_file, project_file, monkeypatch):
    layers = ["default", "user", "project", "env", "code"]
    used = layers[: layers.index(top) + 1]
    overrides = None
    if "user" in used:
        write(user_file, "registry_url: user.example.com\n")
    if "project" in used:
        write(project_file, "registry_url: project.example.com\n")
    if "env" in used:
        monkeypatch.setenv("ASCEND_REGISTRY_URL", "env.example.com")
    if "code" in used:
        overrides = {"registry_url": "code.example.com"}
    expected = {
        "default": (None, Origin("default"), "default"),
        "user": ("user.example.com", Origin("file", str(user_file)), f"file: {user_file}"),
        "project": (
            "project.example.com",
            Origin("file", str(project_file)),
            f"file: {project_file}",
        ),
        "env": (
            "env.example.com",
            Origin("env", "ASCEND_REGISTRY_URL"),
            "env: ASCEND_REGISTRY_URL",
        ),
        "code": ("code.example.com", Origin("code"), "code"),
    }[top]

    config = load(ascend_pm, overrides=overrides)

    assert (
        config.registry_url,
        config.origin("registry_url"),
        str(config.origin("registry_url")),
    ) == expected


def test_env_mapping_argument_replaces_process_environment(ascend_pm, monkeypatch):
    monkeypatch.setenv("ASCEND_REGISTRY_URL", "process.example.com")
    config = load(ascend_pm, env={"ASCEND_REGISTRY_URL": "given.example.com"})
    assert config.registry_url == "given.example.com"
    assert config.origin("registry_url") == Origin("env", "ASCEND_REGISTRY_URL")


# -- environment conversion -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("true", True),
        ("false", False),
        ("1", True),
        ("0", False),
        ("yes", True),
        ("no", False),
        ("TRUE", True),
        ("off", False),
    ],
)
def test_env_bool_conversion(text, expected, acme, ascend_pm, monkeypatch):
    monkeypatch.setenv("ASCEND_ACME_DEBUG", text)
    config = load(ascend_pm)
    assert config.get("acme.debug") is expected
    assert config.origin("acme.debug") == Origin("env", "ASCEND_ACME_DEBUG")


@pytest.mark.parametrize(
    ("var", "text", "key", "expected"),
    [
        ("ASCEND_ACME_RETRIES", " 42 ", "acme.retries", 42),
        ("ASCEND_ACME_TIMEOUT", "2.5", "acme.timeout", 2.5),
        ("ASCEND_ACME_ZONES", "eu-1, eu-2,,us-1 ", "acme.zones", ["eu-1", "eu-2", "us-1"]),
        (
            "ASCEND_STORAGE_OPTIONS",
            '{"endpoint_url": "http://127.0.0.1:9000", "anon": true}',
            "storage_options",
            {"endpoint_url": "http://127.0.0.1:9000", "anon": True},
        ),
    ],
)
def test_env_value_converted_to_declared_type(
    var, text, key, expected, acme, ascend_pm, monkeypatch
):
    monkeypatch.setenv(var, text)
    config = load(ascend_pm)
    assert config.get(key) == expected
    assert type(config.get(key)) is type(expected)


@pytest.mark.parametrize(
    ("var", "text", "key", "reason", "fix"),
    [
        (
            "ASCEND_ACME_RETRIES",
            "many",
            "acme.retries",
            "expected a whole number",
            "write a whole number such as 5",
        ),
        ("ASCEND_ACME_DEBUG", "maybe", "acme.debug", "expected a boolean", "write true or false"),
        (
            "ASCEND_ACME_TIMEOUT",
            "soon",
            "acme.timeout",
            "expected a number",
            "acme.timeout is seconds to wait for the ACME API",
        ),
        (
            "ASCEND_STORAGE_OPTIONS",
            "anon=true",
            "storage_options",
            "expected a JSON object",
            "storage_options is options passed to the fsspec filesystem",
        ),
        (
            "ASCEND_STORAGE_OPTIONS",
            "[1, 2]",
            "storage_options",
            "expected a JSON object",
            "storage_options is options passed to the fsspec filesystem",
        ),
    ],
)
def test_bad_env_value_names_var_key_value_and_fix(
    var, text, key, reason, fix, acme, ascend_pm, monkeypatch
):
    monkeypatch.setenv(var, text)
    with pytest.raises(ConfigError) as caught:
        load(ascend_pm)
    message = str(caught.value)
    assert f"{var}: {key} = {text!r}: {reason}" in message
    assert f"(fix: {fix}" in message
    [problem] = caught.value.problems
    assert (problem.key, problem.value, problem.source) == (key, text, var)


# -- file values of the wrong type -------------------------------------------------------------


def test_wrong_type_in_file_names_path_key_and_value(acme, ascend_pm, project_file):
    write(project_file, "acme:\n  retries: many\n")
    with pytest.raises(ConfigError) as caught:
        load(ascend_pm)
    assert (
        f"{project_file}: acme.retries = 'many': expected int, got str "
        "(fix: write a whole number such as 5)"
    ) in str(caught.value)


def test_every_bad_file_value_is_reported_at_once(acme, ascend_pm, project_file):
    write(project_file, "acme:\n  retries: 2.5\n  zones: [1, 2]\n  debug: sometimes\n")
    with pytest.raises(ConfigError) as caught:
        load(ascend_pm)
    found = {(p.key, p.message) for p in caught.value.problems}
    assert found == {
        ("acme.retries", "expected int, got float"),
        ("acme.zones", "expected a list of strings"),
        ("acme.debug", "expected bool, got str"),
    }


def test_non_strict_keeps_problems_and_leaves_default(acme, ascend_pm, project_file):
    write(project_file, "acme:\n  retries: many\n  tier: premium\n")
    config = load(ascend_pm, strict=False)
    [problem] = config.problems
    assert (problem.key, problem.value, problem.source) == (
        "acme.retries",
        "many",
        str(project_file),
    )
    assert config.get("acme.retries") == 3
    assert config.origin("acme.retries") == Origin("default")
    assert config.get("acme.tier") == "premium"


def test_bad_project_value_keeps_the_user_file_value(acme, ascend_pm, user_file, project_file):
    write(user_file, "acme:\n  retries: 7\n")
    write(project_file, "acme:\n  retries: lots\n")
    config = load(ascend_pm, strict=False)
    assert config.get("acme.retries") == 7
    assert config.origin("acme.retries") == Origin("file", str(user_file))
    assert [p.source for p in config.problems] == [str(project_file)]


def test_number_in_file_for_str_setting_becomes_text(acme, ascend_pm, project_file):
    write(project_file, "acme:\n  registry_host: 5000\n")
    assert load(ascend_pm).get("acme.registry_host") == "5000"


def test_int_in_file_for_float_setting_becomes_float(acme, ascend_pm, project_file):
    write(project_file, "acme:\n  timeout: 4\n")
    value = load(ascend_pm).get("acme.timeout")
    assert value == 4.0
    assert isinstance(value, float)


# -- validators and choices ---------------------------------------------------------------------


def test_plugin_validator_reason_and_fix_in_problem(acme, ascend_pm, project_file):
    write(project_file, "acme:\n  registry_host: registry.acme.test:http\n")
    config = load(ascend_pm, strict=False)
    [problem] = config.problems
    assert problem.message == "the port must be a number"
    assert problem.fix == "write host[:port], for example registry.acme.test:5000"
    assert str(problem) == (
        f"{project_file}: acme.registry_host = 'registry.acme.test:http': the port must be a "
        "number (fix: write host[:port], for example registry.acme.test:5000)"
    )
    assert config.get("acme.registry_host") is None


def test_validator_accepts_valid_value(acme, ascend_pm, project_file):
    write(project_file, "acme:\n  registry_host: registry.acme.test:5000\n")
    config = load(ascend_pm)
    assert config.get("acme.registry_host") == "registry.acme.test:5000"


def test_core_storage_url_validator_rejects_relative_path(ascend_pm, monkeypatch):
    monkeypatch.setenv("ASCEND_STORAGE_URL", "bucket/ascend")
    with pytest.raises(ConfigError) as caught:
        load(ascend_pm)
    message = str(caught.value)
    assert "ASCEND_STORAGE_URL: storage_url = 'bucket/ascend': expected an fsspec URL" in message
    assert "fix: write a URL such as s3://bucket/ascend" in message


def test_choices_reject_other_values(acme, ascend_pm, project_file):
    write(project_file, "acme:\n  tier: gold\n")
    config = load(ascend_pm, strict=False)
    [problem] = config.problems
    assert problem.key == "acme.tier"
    assert problem.message == "must be one of 'standard', 'premium'"
    assert config.get("acme.tier") == "standard"


def test_choices_accept_listed_value_from_env(acme, ascend_pm, monkeypatch):
    monkeypatch.setenv("ASCEND_ACME_TIER", "premium")
    assert load(ascend_pm).get("acme.tier") == "premium"


# -- nested sections ----------------------------------------------------------------------------


def test_nested_section_maps_to_dotted_key(acme, ascend_pm, project_file):
    write(project_file, "acme:\n  registry_host: registry.acme.test\n  retries: 9\n")
    config = load(ascend_pm)
    assert config.get("acme.registry_host") == "registry.acme.test"
    assert config.get("acme.retries") == 9
    assert config.origin("acme.registry_host") == Origin("file", str(project_file))
    assert config.settings["acme.registry_host"][0].env_var == "ASCEND_ACME_REGISTRY_HOST"
    assert config.settings["acme.registry_host"][1] == "acme"


def test_dotted_key_env_var_overrides_nested_section(acme, ascend_pm, project_file, monkeypatch):
    write(project_file, "acme:\n  registry_host: from-file.acme.test\n")
    monkeypatch.setenv("ASCEND_ACME_REGISTRY_HOST", "from-env.acme.test")
    config = load(ascend_pm)
    assert config.get("acme.registry_host") == "from-env.acme.test"
    assert config.origin("acme.registry_host") == Origin("env", "ASCEND_ACME_REGISTRY_HOST")


def test_dict_setting_is_not_flattened(ascend_pm, project_file):
    write(
        project_file,
        """\
        storage_options:
          endpoint_url: http://127.0.0.1:9000
          client_kwargs:
            region_name: us-east-1
        """,
    )
    config = load(ascend_pm)
    assert config.get("storage_options") == {
        "endpoint_url": "http://127.0.0.1:9000",
        "client_kwargs": {"region_name": "us-east-1"},
    }
    assert config.warnings == []
    assert "storage_options.endpoint_url" not in config.as_dict()


def test_mapping_for_str_setting_is_a_type_error(ascend_pm, project_file):
    write(project_file, "storage_url:\n  bucket: data\n")
    with pytest.raises(ConfigError) as caught:
        load(ascend_pm)
    assert "storage_url = {'bucket': 'data'}: expected str, got dict" in str(caught.value)


# -- unknown keys -------------------------------------------------------------------------------


def test_unknown_file_key_warns_with_did_you_mean(ascend_pm, project_file):
    write(project_file, "storage_ulr: s3://bucket/ascend\n")
    config = load(ascend_pm)
    assert config.warnings == [
        f"{project_file}: unknown key 'storage_ulr'; did you mean 'storage_url'?; it is ignored"
    ]
    assert config.storage_url is None
    assert config.problems == []


def test_unknown_section_warns_that_no_plugin_declares_it(ascend_pm, project_file):
    write(project_file, "azure:\n  storage_account: acct\n")
    config = load(ascend_pm)
    assert config.warnings == [
        f"{project_file}: unknown key 'azure.storage_account' (no installed plugin declares the "
        "section 'azure'); it is ignored"
    ]


def test_misspelled_key_in_declared_section_does_not_deny_the_section(
    acme, ascend_pm, project_file
):
    write(project_file, "acme:\n  registry_hots: registry.acme.test\n")
    [warning] = load(ascend_pm).warnings
    assert "did you mean 'acme.registry_host'?" in warning
    assert "no installed plugin declares the section 'acme'" not in warning


def test_unknown_env_var_warns_with_did_you_mean(ascend_pm, monkeypatch):
    monkeypatch.setenv("ASCEND_STORAGE_ULR", "s3://bucket/ascend")
    config = load(ascend_pm)
    assert config.warnings == [
        "environment: unknown variable ASCEND_STORAGE_ULR; did you mean ASCEND_STORAGE_URL?; "
        "it is ignored"
    ]
    assert config.storage_url is None


def test_control_and_test_env_vars_are_not_unknown(ascend_pm, monkeypatch):
    monkeypatch.setenv("ASCEND_REQUIRE_SERVICES", "1")
    monkeypatch.setenv("ASCEND_TEST_SCRATCH", "x")
    assert load(ascend_pm).warnings == []


def test_unknown_override_key_is_an_error(ascend_pm):
    with pytest.raises(ConfigError) as caught:
        load(ascend_pm, overrides={"storage_ulr": "s3://bucket/ascend"})
    assert (
        caught.value.message
        == "unknown configuration key 'storage_ulr'; did you mean 'storage_url'?"
    )
    assert caught.value.fix == "'ascend config show' lists every key"


# -- YAML shape -----------------------------------------------------------------------------------


def test_yaml_syntax_error_names_path_line_and_column(ascend_pm, project_file):
    write(project_file, "cloud_provider: kubernetes\nstorage_url: : s3://bucket\n")
    with pytest.raises(ConfigError) as caught:
        load(ascend_pm, strict=False)
    assert caught.value.message.startswith(f"{project_file}:2:14: not valid YAML:")
    assert "fix the syntax" in (caught.value.fix or "")


def test_yaml_syntax_error_in_user_file_names_user_file(ascend_pm, user_file):
    write(user_file, "registry_url: registry.example.com\n\tstorage_url: s3://b\n")
    with pytest.raises(ConfigError) as caught:
        load(ascend_pm)
    assert caught.value.message.startswith(f"{user_file}:2:1: not valid YAML:")


def test_top_level_list_must_be_a_mapping(ascend_pm, project_file):
    write(project_file, "- cloud_provider: kubernetes\n")
    with pytest.raises(ConfigError) as caught:
        load(ascend_pm)
    assert caught.value.message == (
        f"{project_file}: the top level must be a mapping of keys to values, not list"
    )


@pytest.mark.parametrize("text", ["", "# nothing configured yet\n"])
def test_empty_file_is_fine(text, ascend_pm, project_file):
    write(project_file, text)
    config = load(ascend_pm)
    assert config.files == [project_file]
    assert config.warnings == []
    assert config.problems == []
    assert config.storage_url is None


# -- settings declared by several plugins -------------------------------------------------------


def test_same_key_from_two_plugins_names_both(ascend_pm, register_plugin):
    register_plugin(SettingsPlugin(Setting("acme.registry_host")), name="acme")
    register_plugin(SettingsPlugin(Setting("acme.registry_host")), name="rival")
    with pytest.raises(PluginError) as caught:
        ascend_pm.settings()
    message = caught.value.message
    assert message.startswith("setting 'acme.registry_host' of ")
    assert "'acme.registry_host' of 'acme'" in message
    assert "'acme.registry_host' of 'rival'" in message
    assert caught.value.plugin in {"acme", "rival"}
    with pytest.raises(PluginError):
        load(ascend_pm)


def test_keys_sharing_an_env_var_clash(ascend_pm, register_plugin):
    register_plugin(SettingsPlugin(Setting("acme.registry_host")), name="acme")
    register_plugin(SettingsPlugin(Setting("acme_registry.host")), name="other")
    with pytest.raises(PluginError) as caught:
        ascend_pm.settings()
    message = caught.value.message
    assert "'acme_registry.host' of 'other'" in message
    assert "'acme.registry_host' of 'acme'" in message


# -- provider resolution ------------------------------------------------------------------------


def test_kubernetes_selected_in_file(ascend_pm, project_file):
    write(project_file, "cloud_provider: kubernetes\n")
    config = load(ascend_pm)
    assert config.cloud_provider == "kubernetes"
    assert config.origin("cloud_provider") == Origin("file", str(project_file))
    assert config.provider_error is None


def test_unknown_provider_lists_installed_ones(ascend_pm, project_file):
    write(project_file, "cloud_provider: azrue\n")
    config = load(ascend_pm)
    error = config.provider_error
    assert isinstance(error, ProviderError)
    assert (
        error.message
        == "cloud_provider 'azrue' is not installed (installed providers: kubernetes, local)"
    )


def test_unknown_provider_suggests_near_installed_one(ascend_pm, register_plugin, monkeypatch):
    register_plugin(ProviderPlugin(Provider("azure")), name="azure")
    monkeypatch.setenv("ASCEND_CLOUD_PROVIDER", "azrue")
    error = load(ascend_pm).provider_error
    assert isinstance(error, ProviderError)
    assert error.message == (
        "cloud_provider 'azrue' is not installed (installed providers: azure, kubernetes, local); "
        "did you mean 'azure'?"
    )


def test_only_builtin_providers_and_none_selected_is_no_backend(ascend_pm):
    config = load(ascend_pm)
    assert isinstance(config.provider_error, NoBackendError)
    assert config.cloud_provider is None


def test_builtin_provider_from_a_plugin_is_never_auto_selected(ascend_pm, register_plugin):
    register_plugin(ProviderPlugin(Provider("acme", builtin=True)), name="acme")
    config = load(ascend_pm)
    assert isinstance(config.provider_error, NoBackendError)
    assert config.cloud_provider is None


def test_single_plugin_provider_is_auto_selected(ascend_pm, register_plugin):
    register_plugin(ProviderPlugin(Provider("acme")), name="acme")
    config = load(ascend_pm)
    assert config.cloud_provider == "acme"
    assert config.origin("cloud_provider") == Origin(
        "auto", "the only provider installed, from plugin 'acme'"
    )
    assert config.provider_error is None


def test_two_plugin_providers_and_none_selected_lists_both(ascend_pm, register_plugin):
    register_plugin(ProviderPlugin(Provider("acme")), name="acme-plugin")
    register_plugin(ProviderPlugin(Provider("beta")), name="beta-plugin")
    config = load(ascend_pm)
    error = config.provider_error
    assert isinstance(error, ProviderError)
    assert error.message == (
        "Several cloud providers are installed and none is selected: "
        "acme (plugin 'acme-plugin', -), beta (plugin 'beta-plugin', -)"
    )
    assert "ASCEND_CLOUD_PROVIDER=NAME" in (error.fix or "")
    assert config.cloud_provider is None


def test_explicit_selection_settles_several_providers(ascend_pm, register_plugin, monkeypatch):
    register_plugin(ProviderPlugin(Provider("acme")), name="acme-plugin")
    register_plugin(ProviderPlugin(Provider("beta")), name="beta-plugin")
    monkeypatch.setenv("ASCEND_CLOUD_PROVIDER", "beta")
    config = load(ascend_pm)
    assert config.cloud_provider == "beta"
    assert config.origin("cloud_provider") == Origin("env", "ASCEND_CLOUD_PROVIDER")
    assert config.provider_error is None


def test_unavailable_provider_selected_gives_its_fix(ascend_pm, register_plugin, project_file):
    unusable = Provider("acme", unavailable="the acme SDK is not installed", fix="pip install x")
    register_plugin(ProviderPlugin(unusable), name="acme")
    write(project_file, "cloud_provider: acme\n")
    error = load(ascend_pm).provider_error
    assert isinstance(error, ProviderError)
    assert error.message == (
        "cloud_provider 'acme' is installed but cannot run: the acme SDK is not installed"
    )
    assert error.fix == "pip install x"
    assert "fix: pip install x" in str(error)


def test_unavailable_provider_is_not_auto_selected(ascend_pm, register_plugin):
    unusable = Provider("acme", unavailable="the acme SDK is not installed", fix="pip install x")
    register_plugin(ProviderPlugin(unusable), name="acme")
    config = load(ascend_pm)
    assert isinstance(config.provider_error, NoBackendError)
    assert config.cloud_provider is None


def test_empty_provider_env_var_still_auto_selects(ascend_pm, register_plugin, monkeypatch):
    register_plugin(ProviderPlugin(Provider("acme")), name="acme")
    monkeypatch.setenv("ASCEND_CLOUD_PROVIDER", "")
    config = load(ascend_pm)
    assert config.cloud_provider == "acme"


def test_a_secret_written_in_a_file_warns_to_use_the_environment(
    ascend_pm, project_file, register_plugin
):
    from ascend import Setting, hookimpl

    class Secrets:
        @hookimpl
        def ascend_settings(self):
            return [Setting("vault.token", str, secret=True, help="a token")]

    register_plugin(Secrets(), "vault")
    write(project_file, "vault:\n  token: hunter2\n")
    config = load(ascend_pm)
    assert config.get("vault.token") == "hunter2"
    assert config.warnings == [
        f"{project_file}: vault.token is a secret; files get committed and shared, so set it "
        "as ASCEND_VAULT_TOKEN instead"
    ]
