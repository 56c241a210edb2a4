"""Servers started inside a test's network namespace: `KIND:HOST:PORT[:TEXT]` per argument.

KIND is tcp (accept, send TEXT, close), tcp-reply (read the request, then send TEXT and
close), udp (answer TEXT), udp-echo (answer with the datagram) or udp-silent (never answer).
Prints `ready` once every socket is bound, then serves until it is terminated.
"""

from __future__ import annotations

import selectors
import socket
import sys


def main(specs: list[str]) -> None:
    selector = selectors.DefaultSelector()
    for spec in specs:
        kind, host, port, *text = spec.split(":", 3)
        family = socket.AF_INET6 if host.startswith("[") else socket.AF_INET
        host = host.strip("[]")
        sock_type = socket.SOCK_STREAM if kind.startswith("tcp") else socket.SOCK_DGRAM
        sock = socket.socket(family, sock_type)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, int(port)))
        if sock_type == socket.SOCK_STREAM:
            sock.listen(128)
        selector.register(sock, selectors.EVENT_READ, (kind, (text[0] if text else "").encode()))
    print("ready", flush=True)
    while True:
        for key, _ in selector.select():
            kind, payload = key.data
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            try:
                if kind.startswith("tcp"):
                    conn, _ = sock.accept()
                    with conn:
                        if kind == "tcp-reply":
                            conn.settimeout(2)
                            conn.recv(65535)
                        if payload:
                            conn.sendall(payload)
                else:
                    data, peer = sock.recvfrom(65535)
                    if kind == "udp":
                        sock.sendto(payload, peer)
                    elif kind == "udp-echo":
                        sock.sendto(data, peer)
            except OSError:
                continue


if __name__ == "__main__":
    main(sys.argv[1:])
