"""Ascend's Azure plugin: Blob storage, Azure identity, ACR, AKS node pools, ``ascend azure``.

Installed with ``pip install ascend[azure]`` and registered through the ``ascend`` entry-point
group (``azure = "ascend_azure.plugin"``). It is also the worked example for plugin authors:

- ``plugin`` holds only hook implementations and imports no SDK, so loading it costs nothing;
- each concern lives in its own module (``storage``, ``credentials``, ``registry``,
  ``node_types``, ``pools``, ``workload_identity``, ``cli``) and imports its SDK when first used;
- every failure is an :class:`ascend.AscendError` subclass that names the setting and the fix.
"""

PROVIDER = "azure"
