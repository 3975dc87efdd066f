"""The smallest Ascend program: run a function remotely and print what comes back.

    ASCEND_CLOUD_PROVIDER=local python examples/hello.py

On the local provider the call runs in a separate process, through the same path a cluster
uses: the call is packaged into storage, a runner executes it, the result comes back.
"""

import platform

from ascend import ascend


@ascend(cpu="1", memory="1Gi", timeout=120)
def describe(numbers: list[int]) -> dict[str, object]:
    print(f"summing {len(numbers)} numbers on {platform.node()}")
    return {"total": sum(numbers), "python": platform.python_version()}


if __name__ == "__main__":
    result = describe(list(range(1, 101)))
    print(f"result: {result}")
