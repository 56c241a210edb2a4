"""Listeners for the local-audit tests: `local_services.py NAME KIND HOST PORT`.

Takes NAME as its process name (prctl PR_SET_NAME, what ps and psutil show). KIND: snmp (UDP
SNMP agent), http (TCP web app), banner (TCP, says hello), plain (TCP, silent). Prints
`ready` once bound.
"""

from __future__ import annotations

import asyncio
import ctypes
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scanner.lab.emulators import bind_udp, serve_udp, snmp_agent

PR_SET_NAME = 15


async def main(kind: str, host: str, port: int) -> None:
    if kind == "snmp":
        server = await bind_udp(host, port)
        print("ready", flush=True)
        await serve_udp(server, host, snmp_agent("local-test", time.monotonic()))
        return

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if kind == "http":
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.0 200 OK\r\nServer: inventory-app/2.3\r\n\r\nok")
        elif kind == "banner":
            writer.write(b"AMIS-NG ready\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, host, port)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    ctypes.CDLL(None).prctl(PR_SET_NAME, sys.argv[1].encode(), 0, 0, 0)
    asyncio.run(main(sys.argv[2], sys.argv[3], int(sys.argv[4])))
