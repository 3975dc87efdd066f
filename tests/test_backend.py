"""get_backend(): provider selection, trylast defaults, and partial plugins layering."""

from __future__ import annotations

import pytest

import tests.plugins.acme_registry as acme_registry
from ascend import (
    BackendNotAvailableError,
    CloudBackend,
    ConfigError,
    FsspecStorage,
    NoBackendError,
    OCIRegistry,
    ProviderError,
    get_backend,
)
from ascend.config import AscendConfig
from tests.plugins.providers import ProviderPlugin


def test_no_provider_installed_or_selected_raises_no_backend(ascend_pm) -> None:
    with pytest.raises(NoBackendError) as caught:
        get_backend()
    assert str(caught.value).startswith(
        "No cloud backend installed. Install one with: pip install ascend[azure]"
    )
    assert isinstance(caught.value, ImportError)


def test_the_only_installed_provider_is_selected(ascend_pm, register_plugin) -> None:
    register_plugin(ProviderPlugin("acme"), "acme-cloud")
    backend = get_backend()
    assert isinstance(backend, CloudBackend)
    assert backend.name == "acme"
    assert backend.storage.storage_uri("x") == "memory://provider-acme/x"
    assert backend.answered_by["ascend_storage"] == "acme-cloud"
    assert backend.config.origin("cloud_provider").kind == "auto"


def test_two_installed_providers_and_none_selected_is_an_error_listing_both(
    ascend_pm, register_plugin
) -> None:
    register_plugin(ProviderPlugin("acme"), "acme-cloud")
    register_plugin(ProviderPlugin("zeta"), "zeta-cloud")
    with pytest.raises(ProviderError) as caught:
        get_backend()
    text = str(caught.value)
    assert "acme (plugin 'acme-cloud'" in text
    assert "zeta (plugin 'zeta-cloud'" in text
    assert "ASCEND_CLOUD_PROVIDER" in text


def test_selected_provider_answers_and_the_other_defers(
    ascend_pm, register_plugin, monkeypatch
) -> None:
    register_plugin(ProviderPlugin("acme"), "acme-cloud")
    register_plugin(ProviderPlugin("zeta"), "zeta-cloud")
    monkeypatch.setenv("ASCEND_CLOUD_PROVIDER", "acme")
    backend = get_backend()
    assert backend.name == "acme"
    assert backend.answered_by == {}
    assert backend.storage.storage_uri() == "memory://provider-acme"
    assert backend.registry.registry_url() == "acme.registry.example"
    assert backend.answered_by["ascend_storage"] == "acme-cloud"


def test_provider_selected_in_the_config_file(ascend_pm, register_plugin, ascend_env) -> None:
    register_plugin(ProviderPlugin("acme"), "acme-cloud")
    register_plugin(ProviderPlugin("zeta"), "zeta-cloud")
    (ascend_env / ".ascend.yaml").write_text("cloud_provider: zeta\n")
    assert get_backend().name == "zeta"


def test_builtin_providers_are_never_selected_automatically(ascend_pm) -> None:
    assert "kubernetes" in ascend_pm.providers()
    with pytest.raises(NoBackendError):
        get_backend()


def test_unknown_provider_names_the_installed_ones(ascend_pm, monkeypatch) -> None:
    monkeypatch.setenv("ASCEND_CLOUD_PROVIDER", "kubernets")
    with pytest.raises(ProviderError) as caught:
        get_backend()
    assert "'kubernets' is not installed" in str(caught.value)
    assert "did you mean 'kubernetes'" in str(caught.value)


def test_unavailable_provider_gives_its_fix(ascend_pm, register_plugin, monkeypatch) -> None:
    register_plugin(
        ProviderPlugin(
            "azure", unavailable="adlfs is not installed", fix="pip install ascend[azure]"
        ),
        "azure",
    )
    with pytest.raises(NoBackendError):
        get_backend()  # installed but unusable: not a candidate for automatic selection
    monkeypatch.setenv("ASCEND_CLOUD_PROVIDER", "azure")
    with pytest.raises(ProviderError) as caught:
        get_backend()
    assert "adlfs is not installed" in str(caught.value)
    assert "pip install ascend[azure]" in str(caught.value)


def test_kubernetes_provider_uses_storage_url_and_registry_url(ascend_pm, monkeypatch) -> None:
    monkeypatch.setenv("ASCEND_CLOUD_PROVIDER", "kubernetes")
    monkeypatch.setenv("ASCEND_STORAGE_URL", "memory://k8s-jobs/ascend")
    monkeypatch.setenv("ASCEND_REGISTRY_URL", "registry.example:5000")
    backend = get_backend()
    assert isinstance(backend.storage, FsspecStorage)
    assert backend.storage.storage_uri("j") == "memory://k8s-jobs/ascend/j"
    assert isinstance(backend.registry, OCIRegistry)
    assert backend.registry.registry_url() == "registry.example:5000"
    assert backend.answered_by == {
        "ascend_storage": "core",
        "ascend_registry_url": "core",
        "ascend_registry": "core",
    }


def test_kubernetes_provider_without_storage_url_says_how_to_fix(ascend_pm, monkeypatch) -> None:
    monkeypatch.setenv("ASCEND_CLOUD_PROVIDER", "kubernetes")
    with pytest.raises(ConfigError) as caught:
        get_backend()
    assert "storage_url" in str(caught.value)
    assert "ASCEND_STORAGE_URL" in str(caught.value)


def test_missing_parts_raise_typed_errors_with_a_fix(ascend_pm, monkeypatch) -> None:
    monkeypatch.setenv("ASCEND_CLOUD_PROVIDER", "kubernetes")
    monkeypatch.setenv("ASCEND_STORAGE_URL", "memory://parts")
    backend = get_backend()
    with pytest.raises(BackendNotAvailableError) as caught:
        backend.registry
    assert "registry_url" in str(caught.value)
    from ascend.kubernetes.compute import KubernetesCompute

    assert isinstance(backend.compute, KubernetesCompute)  # the built-in, trylast
    assert backend.answered_by["ascend_compute"] == "kubernetes-compute"


def test_partial_registry_plugin_replaces_the_registry_and_nothing_else(
    ascend_pm, register_plugin, monkeypatch
) -> None:
    register_plugin(ProviderPlugin("acme"), "acme-cloud")
    register_plugin(acme_registry, "inhouse-registry")
    monkeypatch.setenv("ASCEND_ACME_REGISTRY_HOST", "registry.inhouse:443")
    backend = get_backend()
    assert backend.registry.registry_url() == "registry.inhouse:443"
    assert backend.answered_by["ascend_registry_url"] == "inhouse-registry"
    assert backend.storage.storage_uri() == "memory://provider-acme"
    assert backend.answered_by["ascend_storage"] == "acme-cloud"


def test_partial_plugin_defers_when_not_configured(ascend_pm, register_plugin) -> None:
    register_plugin(ProviderPlugin("acme"), "acme-cloud")
    register_plugin(acme_registry, "inhouse-registry")
    backend = get_backend()
    assert backend.registry.registry_url() == "acme.registry.example"
    assert backend.answered_by["ascend_registry_url"] == "acme-cloud"


def test_plugin_returning_the_wrong_type_is_named(ascend_pm, register_plugin, monkeypatch) -> None:
    from ascend import PluginError, hookimpl

    class Sloppy:
        @hookimpl(tryfirst=True)
        def ascend_storage(self, config):
            return "s3://not-a-storage-object"

    register_plugin(Sloppy(), "sloppy")
    monkeypatch.setenv("ASCEND_CLOUD_PROVIDER", "kubernetes")
    monkeypatch.setenv("ASCEND_STORAGE_URL", "memory://x")
    with pytest.raises(PluginError) as caught:
        get_backend().storage
    assert "sloppy" in str(caught.value)
    assert "CloudStorage" in str(caught.value)


def test_backends_are_cached_per_configuration(ascend_pm, monkeypatch) -> None:
    monkeypatch.setenv("ASCEND_CLOUD_PROVIDER", "kubernetes")
    monkeypatch.setenv("ASCEND_STORAGE_URL", "memory://one")
    first = get_backend()
    assert get_backend() is first
    monkeypatch.setenv("ASCEND_STORAGE_URL", "memory://two")
    second = get_backend()
    assert second is not first
    assert second.storage.storage_uri() == "memory://two"


def test_configure_hook_sees_each_new_configuration(
    ascend_pm, register_plugin, monkeypatch
) -> None:
    from ascend import hookimpl

    seen: list[str | None] = []

    class Watcher:
        @hookimpl
        def ascend_configure(self, config):
            seen.append(config.storage_url)

    monkeypatch.setenv("ASCEND_CLOUD_PROVIDER", "kubernetes")
    monkeypatch.setenv("ASCEND_STORAGE_URL", "memory://first")
    get_backend()
    register_plugin(Watcher(), "watcher")  # registered late: historic replay
    assert seen == ["memory://first"]
    monkeypatch.setenv("ASCEND_STORAGE_URL", "memory://second")
    get_backend()
    get_backend()
    assert seen == ["memory://first", "memory://second"]


def test_explicit_config_object_is_used(ascend_pm) -> None:
    config = AscendConfig.load(
        pm=ascend_pm, overrides={"cloud_provider": "kubernetes", "storage_url": "memory://given"}
    )
    assert get_backend(config).storage.storage_uri() == "memory://given"


def test_threads_asking_for_a_part_at_once_build_it_once(
    ascend_pm, register_plugin, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading
    import time

    from ascend import get_backend, hookimpl
    from ascend.compute import ComputeBackend

    built = []

    class Compute(ComputeBackend):
        def submit(self, request):
            raise NotImplementedError

        def wait(self, handle, timeout=None):
            raise NotImplementedError

        def cancel(self, handle):
            raise NotImplementedError

        def logs(self, handle):
            return ""

    class OneCompute:
        @hookimpl(tryfirst=True)
        def ascend_compute(self, config):
            built.append(threading.get_ident())
            time.sleep(0.2)
            return Compute()

    register_plugin(OneCompute(), "one-compute")
    monkeypatch.setenv("ASCEND_CLOUD_PROVIDER", "kubernetes")
    monkeypatch.setenv("ASCEND_STORAGE_URL", "memory://parts")
    backend = get_backend()
    seen = []
    threads = [threading.Thread(target=lambda: seen.append(backend.compute)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(built) == 1
    assert len({id(compute) for compute in seen}) == 1
