"""A plugin whose import fails, as one with a missing dependency does."""

import ascend_dependency_that_is_not_installed  # noqa: F401
