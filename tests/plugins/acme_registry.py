"""A partial plugin: an in-house registry that answers only ascend_registry_url."""

from ascend import Setting, hookimpl


@hookimpl
def ascend_settings():
    return [Setting("acme.registry_host", str, help="in-house registry, host[:port]")]


@hookimpl(tryfirst=True)
def ascend_registry_url(config):
    return config.get("acme.registry_host")
