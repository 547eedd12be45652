"""The virtual board's glue: asyncio streams over the host's TCP, and boot files.

This port's asyncio runs on the JavaScript event loop and has no streams, so `open_connection` is
installed into it here, backed by Node sockets; awaiting data awaits a JavaScript promise, so it
never blocks. TLS is not emulated: `ssl` is accepted and ignored (the link is plain TCP).
"""

import asyncio
import errno
import sys

import js
import _vboard_js as _js


def _oserror(exc):
    """A JavaScript rejection (its message is an errno name) as the OSError a board raises."""
    name = exc.args[2] if len(exc.args) > 2 else str(exc)
    return OSError(getattr(errno, name, errno.EIO), name)


async def _wait(promise):
    try:
        return await promise
    except Exception as exc:  # JsException
        raise _oserror(exc)


def _take(conn, n):
    data = conn.take(n)
    if isinstance(data, str):  # the link broke: the name of its errno
        raise OSError(getattr(errno, data, errno.EIO), data)
    return bytes(data)


class Stream:
    """Reader and writer of one TCP connection (MicroPython's asyncio has one class for both)."""

    def __init__(self, conn, peer):
        self._conn, self._peer, self._out = conn, peer, []

    def get_extra_info(self, name):
        return self._peer if name == "peername" else None

    async def read(self, n=-1):
        """Up to n bytes (all until EOF if n < 0); b"" at EOF; OSError if the link broke."""
        await _wait(self._conn.ready(n < 0))
        return _take(self._conn, n)

    async def readexactly(self, n):
        data = b""
        while len(data) < n:
            chunk = await self.read(n - len(data))
            if not chunk:
                raise EOFError
            data += chunk
        return data

    async def readline(self):
        line = b""
        while not line.endswith(b"\n"):
            chunk = await self.read(1)
            if not chunk:
                break
            line += chunk
        return line

    def write(self, buf):
        self._out.append(bytes(buf))

    async def drain(self):
        if self._out:
            data, self._out = b"".join(self._out), []
            await _wait(self._conn.write(js.Uint8Array.new(data)))

    def close(self):
        self._conn.close()

    async def wait_closed(self):
        await _wait(self._conn.closed())


async def open_connection(host, port, ssl=None, server_hostname=None):
    """(reader, writer) for a TCP connection to host:port; OSError when refused or the fake network
    is down."""
    conn = await _wait(_js.connect(host, port))
    stream = Stream(conn, (host, port))
    return stream, stream


def run_file(path):
    """Run a file from the flash in __main__, as a board runs boot.py and main.py: an error is
    printed, sys.exit() is a soft reset."""
    try:
        with open(path) as f:
            source = f.read()
    except OSError:
        return
    import __main__

    try:
        exec(source, __main__.__dict__)
    except SystemExit:
        _js.reset(False)
    except BaseException as exc:
        sys.print_exception(exc)


asyncio.open_connection = open_connection
