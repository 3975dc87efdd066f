"""A tiny HTTP server on 127.0.0.1 for tests that play a remote service (a token endpoint, a
registry's challenge): one place for the start-in-a-thread, stop-and-close dance."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@contextlib.contextmanager
def serving(handler: type[BaseHTTPRequestHandler], **attributes: Any) -> Iterator[int]:
    """Serve ``handler`` on an ephemeral port (yielded) until the block ends.

    ``attributes`` are set on the server, where handlers find them as ``self.server.<name>``.
    """
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    for name, value in attributes.items():
        setattr(server, name, value)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
