#!/usr/bin/env python3
"""uds-bridge.py PORT SOCKET: plain TCP on 127.0.0.1:PORT to a unix socket.

The test harness's stand-in for the FRP tunnel through which HaRP reaches a
Docker host: HaRP sends Docker calls to 127.0.0.1:<docker-engine-port>, and
this makes an engine that only has a unix socket (for HaRP's purposes) one
such port. One unix connection per TCP connection, bytes copied both ways.

Adapted from the uds-bridge.example.py that came with the vendored HaRP
(tests/third_party/README.md): a half-close is passed on as a half-close
(write_eof) instead of closing the whole connection, so a client that shuts
down its sending side still gets the whole answer; the socket is closed only
when both directions are done. Standard library only: runs with Debian's python3.
"""
import asyncio
import signal
import sys


async def pipe(reader, writer, abort):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except OSError:
        # A reset on either side ends both directions: nothing would
        # otherwise close a kept-alive connection to the engine.
        abort()


async def handle(client_reader, client_writer):
    try:
        unix_reader, unix_writer = await asyncio.open_unix_connection(SOCKET)
    except OSError as e:
        print(f"uds-bridge: cannot connect to {SOCKET}: {e}", file=sys.stderr, flush=True)
        client_writer.close()
        return
    def close_both():
        for w in (unix_writer, client_writer):
            try:
                w.close()
            except OSError:
                pass

    try:
        await asyncio.gather(
            pipe(client_reader, unix_writer, close_both),
            pipe(unix_reader, client_writer, close_both),
        )
    finally:
        close_both()


async def main(port):
    server = await asyncio.start_server(handle, "127.0.0.1", port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"uds-bridge: 127.0.0.1:{port} -> {SOCKET}", file=sys.stderr, flush=True)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: uds-bridge.py PORT SOCKET")
    SOCKET = sys.argv[2]
    asyncio.run(main(int(sys.argv[1])))
