"""Ports on 127.0.0.1 for the servers the tests start."""

import socket

_handed_out: set[int] = set()


def free_port() -> int:
    """A port free now, and never one this process handed out before: the kernel may offer a just-released port
    again, and two servers started one after the other (a provider, then the service it redirects to) must not be
    given the same one."""
    while True:
        port = closed_port()
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def closed_port() -> int:
    """A port nothing listens on (closed again when the probing socket goes)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
