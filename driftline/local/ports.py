"""Addresses and ports of the local platform: which host counts as this machine only, and whether a
port is free before a platform tries to listen on it (so ``up`` fails with a clear message, not a trace)."""

from __future__ import annotations

import ipaddress
import socket

__all__ = ["is_loopback", "pick_port", "port_free", "port_problem"]


def is_loopback(host: str) -> bool:
    """True when ``host`` is reachable from this machine only (the emulator has no authentication)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def port_problem(host: str, port: int) -> str | None:
    """Why ``port`` on ``host`` cannot be listened on (the OS's reason), or None when it can. Port 0 (any
    free port) is always possible."""
    if port == 0:
        return None
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            return e.strerror or str(e)
    return None


def port_free(host: str, port: int) -> bool:
    return port_problem(host, port) is None


def pick_port(host: str, preferred: int) -> int:
    """``preferred`` when it is free (so the usual AWS_ENDPOINT_URL works), else any free port."""
    if preferred and port_free(host, preferred):
        return preferred
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])
