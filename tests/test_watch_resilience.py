"""A wait that survives the network (issue 10, point 2).

The client reaches the Kubernetes emulator through a real TCP proxy written here: a thread
forwarding 127.0.0.1 sockets that can cut every connection (a reset, as when a proxy or load
balancer restarts) and refuse new ones for a while. Dropped and refused connections make the
wait reconnect and list again; only ``kubernetes.lost_contact_timeout`` seconds without the
cluster end it, with ClusterUnreachableError, and the job's record is left as it was.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ascend import ClusterUnreachableError, ComputeError, JobError, JobFailedError, ascend
from ascend.testing.kube import KubeEmulator
from ascend.testing.kube import kubeconfig as kubeconfig_file
from ascend.testing.kube.users import set_up_namespace

USER = "alice"
NAMESPACE = f"ascend-users-{USER}"

pytestmark = pytest.mark.timeout(120)


def configure(
    monkeypatch: pytest.MonkeyPatch, kube: KubeEmulator, storage_url: str, **extra: str
) -> None:
    """The kubernetes provider on ``kube`` with user alice (namespace made); ``extra`` adds
    ASCEND_* variables."""
    monkeypatch.setenv("ASCEND_CLOUD_PROVIDER", "kubernetes")
    monkeypatch.setenv("ASCEND_STORAGE_URL", storage_url)
    monkeypatch.setenv("ASCEND_KUBERNETES_KUBECONFIG", str(kube.kubeconfig))
    monkeypatch.setenv("ASCEND_IMAGES_RUNTIME", "ascend-runtime:dev")  # preloaded on the node
    monkeypatch.setenv("ASCEND_USERNAME", USER)
    for name, value in extra.items():
        monkeypatch.setenv(name, value)
    set_up_namespace(kube, NAMESPACE)


@ascend(timeout=60, stream_logs=False)
def nap(seconds: float) -> str:
    time.sleep(seconds)
    return "rested"


class TcpProxy:
    """Forwards connections on 127.0.0.1:``port`` to 127.0.0.1:``upstream``.

    :meth:`cut` resets every open connection; :meth:`down` also closes the listening socket,
    so that new connections are refused, until :meth:`up` listens on the same port again;
    :meth:`stall` accepts new connections and never answers on them (a hung server).
    """

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.accepted = 0  # connections forwarded
        self.resets = 0  # connections cut
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._cut: set[socket.socket] = set()  # reset by cut(): closed without a FIN
        self._held: list[socket.socket] = []  # accepted while stalled, never answered
        self.stalled = False
        self._closed = threading.Event()
        self._listener: socket.socket | None = self._listen(0)
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept, name="test-proxy", daemon=True)
        self._thread.start()

    @staticmethod
    def _listen(port: int) -> socket.socket:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(128)
        listener.settimeout(0.05)  # the accept loop notices down() and close() quickly
        return listener

    def _accept(self) -> None:
        while not self._closed.is_set():
            with self._lock:
                listener = self._listener
            if listener is None:
                time.sleep(0.05)
                continue
            try:
                client, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            if self.stalled:
                with self._lock:
                    self._held.append(client)
                continue
            try:
                server = socket.create_connection(("127.0.0.1", self.upstream), timeout=5)
            except OSError:
                _reset(client)
                continue
            client.settimeout(None)
            server.settimeout(None)
            with self._lock:
                self._sockets.update((client, server))
                self.accepted += 1
            running = [2]
            for source, target in ((client, server), (server, client)):
                threading.Thread(
                    target=self._pump,
                    args=(source, target, running),
                    name="test-proxy-pump",
                    daemon=True,
                ).start()

    def _pump(self, source: socket.socket, target: socket.socket, running: list[int]) -> None:
        """Copy one direction; the first of a pair to end wakes the other, the last closes."""
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                target.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                cut = source in self._cut or target in self._cut
                running[0] -= 1
                last = running[0] == 0
                if last:
                    self._sockets.difference_update((source, target))
                    self._cut.difference_update((source, target))
            for sock in (source, target):
                try:  # wakes the other direction's pump; after cut() it sends nothing
                    sock.shutdown(socket.SHUT_RD if cut else socket.SHUT_RDWR)
                except OSError:
                    pass
            if last:  # never while the other pump may still be blocked reading
                source.close()  # after cut(): SO_LINGER 0 makes these resets
                target.close()

    def cut(self) -> None:
        """Reset every forwarded connection (both sides), as a restarting proxy does."""
        with self._lock:
            sockets, self._sockets = list(self._sockets), set()
            self._cut.update(sockets)
            self.resets += len(sockets) // 2
        for sock in sockets:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                # wakes the pump blocked reading it (a close from here would not), sending
                # nothing; the pumps then close it, and the linger setting makes that a reset
                sock.shutdown(socket.SHUT_RD)
            except OSError:
                pass

    def down(self) -> None:
        """Cut every connection and refuse new ones until :meth:`up`."""
        with self._lock:
            listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        self.cut()

    def stall(self) -> None:
        """Cut every connection; accept new ones but never forward a byte."""
        self.stalled = True
        self.cut()

    def up(self) -> None:
        self.stalled = False
        with self._lock:
            held, self._held = self._held, []
            if self._listener is None:
                self._listener = self._listen(self.port)
        for sock in held:
            _reset(sock)

    def close(self) -> None:
        self._closed.set()
        self.down()
        self._thread.join(5)


def _reset(sock: socket.socket) -> None:
    """Close with a TCP reset (SO_LINGER 0), not a clean FIN."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def proxied(
    make_kube_emulator: Any, ascend_pm: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Callable[..., tuple[KubeEmulator, TcpProxy]]]:
    """``proxied(port=0, **env)``: an emulator (on ``port``), a proxy in front of it, and the
    kubernetes provider configured to reach the emulator only through the proxy."""
    proxies: list[TcpProxy] = []

    def make(port: int = 0, **env: str) -> tuple[KubeEmulator, TcpProxy]:
        kube = make_kube_emulator(port=port)
        configure(monkeypatch, kube, f"file://{tmp_path}/store", **env)
        proxy = TcpProxy(kube.port)
        proxies.append(proxy)
        path = kubeconfig_file.write(
            tmp_path / "proxied-kubeconfig", f"http://127.0.0.1:{proxy.port}"
        )
        monkeypatch.setenv("ASCEND_KUBERNETES_KUBECONFIG", str(path))
        return kube, proxy

    yield make
    for proxy in proxies:
        proxy.close()


def wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "timed out waiting for the test's condition"
        time.sleep(0.05)


def in_background(call: Callable[[], Any]) -> Callable[[], tuple[str, Any]]:
    """Run ``call`` in a thread; returns a function that joins it and gives its outcome."""
    outcome: list[tuple[str, Any]] = []

    def run() -> None:
        try:
            outcome.append(("value", call()))
        except BaseException as error:  # handed to the test
            outcome.append(("error", error))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    def join(timeout: float = 60.0) -> tuple[str, Any]:
        thread.join(timeout)
        assert outcome, "the call did not return"
        return outcome[0]

    return join


def test_a_watch_cut_mid_run_still_returns_the_result(proxied: Any) -> None:
    _, proxy = proxied()
    handle = nap.submit(3)
    outcome = in_background(lambda: handle.result(timeout=60))
    wait_for(lambda: handle.metadata()["status"] == "running" and proxy.accepted >= 2)
    proxy.cut()  # every connection reset while the job runs: both watches among them
    assert proxy.resets >= 2
    time.sleep(0.3)
    proxy.down()  # and the cluster refuses connections for a second
    time.sleep(1.0)
    proxy.up()
    assert outcome() == ("value", "rested")
    assert handle.metadata()["status"] == "succeeded"


def test_an_unreachable_cluster_raises_after_lost_contact_timeout_and_records_nothing(
    proxied: Any,
) -> None:
    kube, proxy = proxied(ASCEND_KUBERNETES_LOST_CONTACT_TIMEOUT="3")
    handle = nap.submit(8)
    outcome = in_background(lambda: handle.result(timeout=60))
    wait_for(lambda: handle.metadata()["status"] == "running")
    down_at = time.monotonic()
    proxy.down()
    kind, error = outcome(30)
    raised_after = time.monotonic() - down_at
    assert kind == "error" and isinstance(error, ClusterUnreachableError), error
    assert isinstance(error, ComputeError) and not isinstance(error, JobError)
    assert 3 <= raised_after < 8, raised_after
    assert error.job_id == handle.job_id
    assert "may still be running" in str(error)
    assert f"ascend.attach({handle.job_id!r}).result()" in str(error)
    assert f"ascend jobs status {handle.job_id}" in str(error)
    # the client saw no end: the record still says what the runner wrote
    assert handle.metadata()["status"] == "running"
    assert kube.running_pids(), "the job itself kept running"
    proxy.up()  # contact again: the same handle waits again and gets the result
    assert handle.result(timeout=60) == "rested"
    assert handle.metadata()["status"] == "succeeded"


def test_a_server_that_accepts_and_never_answers_is_given_up_on_time(proxied: Any) -> None:
    """The waiter keeps the time itself: watchers stuck in requests to a hung server (which
    time out only after tens of seconds) do not delay ClusterUnreachableError."""
    _, proxy = proxied(ASCEND_KUBERNETES_LOST_CONTACT_TIMEOUT="3")
    handle = nap.submit(8)
    outcome = in_background(lambda: handle.result(timeout=60))
    wait_for(lambda: handle.metadata()["status"] == "running")
    stalled_at = time.monotonic()
    proxy.stall()
    kind, error = outcome(30)
    raised_after = time.monotonic() - stalled_at
    assert kind == "error" and isinstance(error, ClusterUnreachableError), error
    assert 3 <= raised_after < 8, raised_after
    assert handle.metadata()["status"] == "running"
    proxy.up()
    assert handle.result(timeout=60) == "rested"


def test_a_cluster_that_comes_back_within_lost_contact_timeout_is_waited_for(
    proxied: Any,
) -> None:
    kube, proxy = proxied(ASCEND_KUBERNETES_LOST_CONTACT_TIMEOUT="30")
    handle = nap.submit(1)
    outcome = in_background(lambda: handle.result(timeout=60))
    wait_for(lambda: bool(kube.running_pids()))
    proxy.down()  # longer than the job: its end happens while the client is blind
    wait_for(lambda: handle.metadata()["status"] == "succeeded")
    time.sleep(2)
    proxy.up()
    assert outcome() == ("value", "rested")


def test_an_emulator_restart_under_a_waiting_call_is_survived(proxied: Any) -> None:
    """The job ends while the client cannot see it; the emulator then restarts on the same
    port with an empty store. The wait lists again, finds no Job, and the result that the
    runner saved comes back (the old watch version means nothing to the new server)."""
    port = free_port()
    kube, proxy = proxied(port=port)
    handle = nap.submit(1)
    outcome = in_background(lambda: handle.result(timeout=60))
    wait_for(lambda: bool(kube.running_pids()))
    proxy.down()
    wait_for(lambda: handle.metadata()["status"] == "succeeded")
    kube.stop()
    restarted = KubeEmulator(port=port).start()
    try:
        restarted.create_namespace(NAMESPACE)
        proxy.up()
        assert outcome() == ("value", "rested")
    finally:
        restarted.stop()


def test_an_emulator_restart_that_loses_the_job_ends_the_wait_with_the_truth(
    make_kube_emulator: Any, ascend_pm: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Stopping the emulator kills the job's pod; the new one on the same port knows no such
    Job. The wait must neither hang nor fail with "lost contact": it says the job no longer
    exists, and the record says failed instead of running forever."""
    port = free_port()
    kube = make_kube_emulator(port=port)
    configure(monkeypatch, kube, f"file://{tmp_path}/store")
    handle = nap.submit(30)
    outcome = in_background(lambda: handle.result(timeout=60))
    wait_for(lambda: bool(kube.running_pids()))
    kube.stop()
    restarted = make_kube_emulator(port=port)
    restarted.create_namespace(NAMESPACE)
    kind, error = outcome(30)
    assert kind == "error" and isinstance(error, JobFailedError), error
    assert "no longer exists" in str(error)
    assert handle.metadata()["status"] == "failed"


# -- requests other than the watch ----------------------------------------------------------


def jobs_in(kube: KubeEmulator) -> list[str]:
    from kubernetes import client as kube_client

    listing = kube_client.BatchV1Api(kube.api_client()).list_namespaced_job(NAMESPACE)
    return [job.metadata.name for job in listing.items]


def test_a_submit_while_the_cluster_is_briefly_away_creates_one_job(proxied: Any) -> None:
    kube, proxy = proxied()
    proxy.down()
    threading.Timer(0.5, proxy.up).start()  # back before the third send
    handle = nap.submit(0)
    assert jobs_in(kube) == [f"ascend-{handle.job_id}"]
    assert handle.result(timeout=60) == "rested"


def test_a_submit_to_an_unreachable_cluster_is_a_typed_error_naming_the_server(
    proxied: Any,
) -> None:
    kube, proxy = proxied()
    proxy.down()
    start = time.monotonic()
    with pytest.raises(ClusterUnreachableError) as caught:
        nap.submit(0)
    assert time.monotonic() - start < 20
    message = str(caught.value)
    assert f"could not reach the Kubernetes API server at http://127.0.0.1:{proxy.port}" in message
    assert "to read the signing key" in message  # the first request a call makes
    assert "kubectl cluster-info" in message
    assert "urllib3" not in type(caught.value).__module__
    proxy.up()
    assert jobs_in(kube) == []


def test_a_cancel_that_cannot_reach_the_cluster_leaves_no_cancelled_record(
    proxied: Any,
) -> None:
    _, proxy = proxied()
    handle = nap.submit(5)
    wait_for(lambda: handle.metadata()["status"] == "running")
    proxy.down()
    with pytest.raises(ClusterUnreachableError, match="to read the job"):
        handle.cancel()
    proxy.up()
    assert handle.metadata()["status"] == "running"  # nothing was stopped, nothing recorded
    assert handle.result(timeout=60) == "rested"


def test_a_refused_cancel_takes_back_its_verdict(proxied: Any, tmp_path: Path) -> None:
    kube, _ = proxied()
    handle = nap.submit(3)
    wait_for(lambda: handle.metadata()["status"] == "running")
    kube.forbid("delete", "jobs")
    with pytest.raises(ComputeError, match="refused to delete the job"):
        handle.cancel()
    assert handle.metadata()["status"] == "running"
    assert not list(tmp_path.rglob(f"{handle.job_id}/verdict.json"))
    kube.allow("delete", "jobs")
    assert handle.result(timeout=60) == "rested"
