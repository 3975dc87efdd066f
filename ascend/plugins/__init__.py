"""The plugin host: the hook contract (``hookspecs``), discovery (``manager``), records (``types``)."""
