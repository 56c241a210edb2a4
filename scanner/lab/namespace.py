"""Running the lab without root: a private user and network namespace of our own.

The lab binds the services' real ports (23, 69, 161, ...), which only root may bind. A normal
user can still own a network namespace inside a user namespace (`unshare --user
--map-root-user --net`, unprivileged user namespaces are on by default in current Linux
distributions): there they are root, with a loopback of their own that nothing else sees.
The demo and the lab re-run themselves there; their files still belong to the user who ran
them. Nothing outside reaches that loopback, so `ghostport lab -- scan ...` runs its scan
inside the same namespace.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import socket
import struct
import sys
from collections.abc import Sequence

from scanner.errors import MissingToolError

INSIDE_FLAG = "--inside-private-namespace"
_SIOCGIFFLAGS, _SIOCSIFFLAGS, _IFF_UP = 0x8913, 0x8914, 0x1


def needs_private_namespace() -> bool:
    """True for a normal user on Linux: the lab's privileged ports need a namespace."""
    return sys.platform.startswith("linux") and os.geteuid() != 0


def private_namespace_command(argv: Sequence[str]) -> list[str]:
    """The command line that runs the same ghostport command inside a new user + network
    namespace (the CLI execs it). The marker flag goes before a `--`: what follows one (the
    scan of `ghostport lab -- scan ...`) is not the lab's."""
    argv = list(argv)
    at = argv.index("--") if "--" in argv else len(argv)
    unshare = shutil.which("unshare")
    if unshare is None:
        raise MissingToolError(
            "the lab binds privileged ports: run as root, or install util-linux (unshare) "
            "so ghostport can give it a private network namespace"
        )
    return [
        unshare,
        "--user",
        "--map-root-user",
        "--net",
        sys.executable,
        "-m",
        "scanner",
        *argv[:at],
        INSIDE_FLAG,
        *argv[at:],
    ]


def bring_loopback_up() -> None:
    """A new network namespace starts with `lo` down; bring it up (we are its root)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH14s", b"lo", 0, b"")
        flags = struct.unpack("16sH14s", fcntl.ioctl(sock, _SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, _SIOCSIFFLAGS, struct.pack("16sH14s", b"lo", flags | _IFF_UP, b""))
