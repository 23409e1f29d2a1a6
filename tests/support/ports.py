"""Ports on 127.0.0.1 for the servers the tests start."""

import os
import socket

_handed_out: set[int] = set()


def _share() -> tuple[int, int]:
    """(this worker's index, the number of workers) under pytest-xdist; (0, 1) in a single process."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    return (int(worker.removeprefix("gw")), count) if worker.startswith("gw") and count > 1 else (0, 1)


def free_port() -> int:
    """A port free now, and never one this process handed out before: the kernel may offer a just-released port
    again, and two servers started one after the other (a provider, then the service it redirects to) must not be
    given the same one. Parallel test workers take ports from disjoint shares, so a port one worker chose is never
    the one another starts a server on before the first has bound it (shares by port // 2: Linux gives bind() odd
    ports only)."""
    index, count = _share()
    while True:
        port = closed_port()
        if (port // 2) % count == index and port not in _handed_out:
            _handed_out.add(port)
            return port


def closed_port() -> int:
    """A port nothing listens on (closed again when the probing socket goes)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
