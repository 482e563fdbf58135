"""The simulated bench answers without Nagle's delay (caproto leaves it on)."""

from __future__ import annotations

import socket

from benchioc.sim import caproto_fixes


class _Writer:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def get_extra_info(self, name: str):
        return self.sock if name == "socket" else None


def test_accepted_sockets_of_the_sim_server_get_tcp_nodelay() -> None:
    # The wrapped __init__ on its own: apply() patches caproto for the whole process.
    init = caproto_fixes._with_nodelay(lambda self, reader, writer: None)
    with socket.create_server(("127.0.0.1", 0)) as server, \
            socket.create_connection(server.getsockname()):
        accepted, _ = server.accept()
        with accepted:
            accepted.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0)
            init(object(), None, _Writer(accepted))
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
