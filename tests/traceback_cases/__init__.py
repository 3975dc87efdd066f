"""Code whose remote tracebacks ``tests/test_tracebacks.py`` checks.

``pipeline.py`` is the user's code: imported, it is a local module (pickled by value); its text
is also run as a script, a ``__main__`` script and a notebook cell, so every origin raises from
the same lines. ``failures.py`` holds the exceptions that cannot travel as themselves.
"""
