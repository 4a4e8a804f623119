"""The loopback address every server meow starts binds, and free ports on it."""

from __future__ import annotations

import socket

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """An unused loopback port from the kernel's ephemeral range (outside Ray's 10002-19999)."""
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]
