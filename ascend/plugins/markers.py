"""The pluggy markers for the ``ascend`` project (re-exported as ``ascend.hookimpl``/``hookspec``)."""

import pluggy

PROJECT_NAME = "ascend"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
