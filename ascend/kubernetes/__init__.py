"""Built-in Kubernetes compute: one ``batch/v1`` Job per call, watched until it ends.

Every provider runs jobs on Kubernetes; this package is the part they share. ``kubernetes``
(the client) is imported only when a job is submitted or watched, never at ``import ascend``.
"""
