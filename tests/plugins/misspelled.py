"""A plugin with a misspelled hook name."""

from ascend import hookimpl


@hookimpl
def ascend_storag(config):
    return None
