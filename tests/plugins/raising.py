"""A plugin whose storage hook raises an unexpected error."""

from ascend import hookimpl


@hookimpl(tryfirst=True)
def ascend_storage(config):
    raise ValueError("bucket name missing in acme settings")
