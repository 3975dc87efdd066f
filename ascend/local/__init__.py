"""The built-in ``local`` provider: job storage in a local directory, one process per call.

It runs the same path as a cluster does (package -> storage -> runner -> result), so what
works here works on Kubernetes, and it needs no cloud at all.
"""
