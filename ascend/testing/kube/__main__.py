"""``python -m ascend.testing.kube serve``: run the emulator until SIGTERM or SIGINT.

``python -m ascend.testing.kube node``: join a real cluster as a process kubelet (a Node, its
Lease, its pods run as local processes, its logs over mutual TLS) until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

from ascend.testing.kube.emulator import KubeEmulator
from ascend.testing.kube.images import DEV_RUNTIME_IMAGE


def _label(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    return key, value


def _node_shape(command: argparse.ArgumentParser) -> None:
    """The node's options, alike for the emulator's node and a process kubelet."""
    command.add_argument("--cpu", default="4", help="node CPU (default 4)")
    command.add_argument("--memory", default="8Gi", help="node memory (default 8Gi)")
    command.add_argument("--gpu", type=int, default=0, help="node nvidia.com/gpu count (default 0)")
    command.add_argument("--node-label", action="append", type=_label, default=[], metavar="K=V")
    command.add_argument("--taint", action="append", default=[], metavar="K=V:EFFECT")
    command.add_argument(
        "--preload",
        action="append",
        metavar="IMAGE",
        help=f"an image the node has without pulling (repeat; default: {DEV_RUNTIME_IMAGE} only)",
    )


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="python -m ascend.testing.kube", description=__doc__)
    commands = main.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the Kubernetes API emulator")
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    serve.add_argument("--port", type=int, default=0, help="port (default 0: an ephemeral one)")
    serve.add_argument("--kubeconfig", help="write a kubeconfig for the emulator here")
    serve.add_argument("--namespace", help="the kubeconfig context's namespace")
    _node_shape(serve)
    serve.add_argument(
        "--watch-history", type=int, default=1000, help="changes a watch can resume from"
    )
    node = commands.add_parser(
        "node", help="join a real API server as a process kubelet (see node_agent.py)"
    )
    node.add_argument("--server", required=True, help="the API server, https://127.0.0.1:6443")
    node.add_argument(
        "--pki",
        required=True,
        help="directory with ca.crt, node.crt and node.key (CN=system:node:NAME)",
    )
    node.add_argument("--name", required=True, help="the node's name (as in its certificate)")
    node.add_argument("--port", type=int, default=0, help="log endpoint port (default: any)")
    _node_shape(node)
    return main


def _until_signal() -> threading.Event:
    done = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    return done


def node_main(args: argparse.Namespace) -> int:
    from ascend.testing.kube.node_agent import NodeAgent, environment_from_pki, wait_ready
    from ascend.testing.kube.remote import KubeClient

    tls = environment_from_pki(args.pki)
    try:
        agent = NodeAgent(
            KubeClient(args.server, *tls),
            args.name,
            tls=tls,
            cpu=args.cpu,
            memory=args.memory,
            gpu=args.gpu,
            labels=dict(args.node_label),
            taints=args.taint,
            preloaded_images=args.preload or (DEV_RUNTIME_IMAGE,),
            port=args.port,
        )
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    done = _until_signal()
    agent.start()
    try:
        wait_ready(agent.client, args.name)
        print(f"node {args.name} ready; logs on https://127.0.0.1:{agent.port}", flush=True)
        while not done.wait(0.5):
            pass
    finally:
        agent.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "node":
        return node_main(args)
    try:
        emulator = KubeEmulator(
            cpu=args.cpu,
            memory=args.memory,
            gpu=args.gpu,
            node_labels=dict(args.node_label),
            taints=args.taint,
            host=args.host,
            port=args.port,
            watch_history=args.watch_history,
            preloaded_images=args.preload or (DEV_RUNTIME_IMAGE,),
        )
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    done = _until_signal()
    emulator.start()
    try:
        if args.kubeconfig:
            emulator.write_kubeconfig(args.kubeconfig, args.namespace)
        print(emulator.url, flush=True)
        if args.kubeconfig:
            print(f"kubeconfig: {emulator.kubeconfig}", flush=True)
        while not done.wait(0.5):
            pass
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
