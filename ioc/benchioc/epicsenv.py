"""Loopback-only EPICS networking for every process the project starts.

The test bench machines forbid CA/PVA traffic to any address but 127.0.0.1, so the
simulated bench, the IOC, the tests and the benchmarks all build their environment here.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable, Mapping

LOOPBACK = "127.0.0.1"

_LOOPBACK_FIXED = {
    "EPICS_CA_AUTO_ADDR_LIST": "NO",
    "EPICS_CAS_INTF_ADDR_LIST": LOOPBACK,
    "EPICS_CAS_AUTO_BEACON_ADDR_LIST": "NO",
    "EPICS_CAS_BEACON_ADDR_LIST": LOOPBACK,
    "EPICS_PVA_AUTO_ADDR_LIST": "NO",
    "EPICS_PVA_ADDR_LIST": LOOPBACK,
    "EPICS_PVAS_INTF_ADDR_LIST": LOOPBACK,
    "EPICS_PVAS_AUTO_BEACON_ADDR_LIST": "NO",
    "EPICS_PVAS_BEACON_ADDR_LIST": LOOPBACK,
    # caproto batches server replies for up to 10 ms by default; a simulated motor
    # must answer as fast as the hardware would, so the batching is switched off.
    "CAPROTO_SERVER_HIGH_LOAD_TIMEOUT_SEC": "0",
}


def ca_addr_list(ports: Iterable[int]) -> str:
    """EPICS_CA_ADDR_LIST naming each CA server port on loopback."""
    return " ".join(f"{LOOPBACK}:{port}" for port in ports)


def loopback_env(
    ca_ports: Iterable[int] = (),
    server_port: int | None = None,
    pva_server_port: int | None = None,
    pva_udp_port: int | None = None,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """An environment for an EPICS process that never leaves 127.0.0.1.

    ca_ports: the CA server ports the process must find as a client.
    server_port: the CA port this process serves on, if it is a server.
    pva_server_port / pva_udp_port: the PVA TCP port it serves on and the UDP port it
    answers searches on (a client searches that port: 127.0.0.1:<pva_udp_port>).
    """
    env = dict(os.environ if base is None else base)
    env.update(_LOOPBACK_FIXED)
    ports = list(ca_ports)
    env["EPICS_CA_ADDR_LIST"] = ca_addr_list(ports) if ports else LOOPBACK
    if server_port is not None:
        env["EPICS_CA_SERVER_PORT"] = str(server_port)
        env["EPICS_CAS_SERVER_PORT"] = str(server_port)
    if pva_server_port is not None:
        env["EPICS_PVAS_SERVER_PORT"] = str(pva_server_port)
        env["EPICS_PVA_SERVER_PORT"] = str(pva_server_port)
    if pva_udp_port is not None:
        env["EPICS_PVAS_BROADCAST_PORT"] = str(pva_udp_port)
        env["EPICS_PVA_BROADCAST_PORT"] = str(pva_udp_port)
        env["EPICS_PVA_ADDR_LIST"] = f"{LOOPBACK}:{pva_udp_port}"
    return env


def apply_loopback_env(**kwargs) -> None:
    """Set the loopback environment on this process (before libca is loaded)."""
    os.environ.update(loopback_env(**kwargs))


def free_port() -> int:
    """A TCP port that is free on loopback now (and its UDP twin, checked too)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((LOOPBACK, 0))
            port = tcp.getsockname()[1]
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                udp.bind((LOOPBACK, port))
        except OSError:
            continue
        return port
