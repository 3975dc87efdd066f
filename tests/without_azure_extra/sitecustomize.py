"""Put this directory first on PYTHONPATH to run Python as if ``pip install ascend`` had been run
without the ``azure`` extra: adlfs and the Azure SDKs cannot be found (or imported)."""

import sys

BLOCKED = ("adlfs", "azure")


class _WithoutAzureExtra:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, _WithoutAzureExtra())
