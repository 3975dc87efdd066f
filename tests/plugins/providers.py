"""Provider plugins as classes, so a test can create several distinct ones."""

from ascend import FsspecStorage, Provider, hookimpl


class ProviderPlugin:
    """Declares provider ``name`` and answers ascend_storage only when it is selected."""

    def __init__(self, name, unavailable=None, fix=None, storage_url=None):
        self.name = name
        self._unavailable = unavailable
        self._fix = fix
        self._storage_url = storage_url or f"memory://provider-{name}"

    @hookimpl
    def ascend_providers(self):
        return [
            Provider(
                self.name,
                summary=f"{self.name} cloud",
                unavailable=self._unavailable,
                fix=self._fix,
            )
        ]

    @hookimpl
    def ascend_storage(self, config):
        if config.cloud_provider != self.name:
            return None
        return FsspecStorage(self._storage_url)

    @hookimpl
    def ascend_registry_url(self, config):
        if config.cloud_provider != self.name:
            return None
        return f"{self.name}.registry.example"
