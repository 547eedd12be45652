"""A MicroPython board driven through its raw REPL, over any pyserial URL: a serial port
(`/dev/ttyACM0`), a networked or virtual board (`socket://host:port`, `rfc2217://...`).

Code runs on the board by exec; files move as base64 in chunks of executed code, so nothing but
the REPL is needed on the board. The raw REPL protocol is MicroPython's (see its pyboard.py):
raw-paste with flow control when the board offers it, else plain raw mode in small paced chunks.
"""

import ast
import binascii
import codecs
import re
import struct
import time
from pathlib import Path

import serial

BANNER = b"raw REPL; CTRL-B to exit\r\n"
CHUNK = 2048  # file bytes per executed write: its base64 text is the code sent


class BoardError(Exception):
    """The board did not do what was asked; `traceback` holds the board's own text, if any."""

    def __init__(self, message, traceback=""):
        super().__init__(message)
        self.traceback = traceback


def escape(data):
    """Bytes as readable log text: printable ASCII kept, control bytes escaped, lines kept."""
    out = []
    for b in data:
        if b == 0x0A:
            out.append("\\n\n")
        elif 32 <= b < 127 and b != 0x5C:
            out.append(chr(b))
        else:
            out.append({0x0D: "\\r", 0x09: "\\t", 0x5C: "\\\\"}.get(b, "\\x%02x" % b))
    return "".join(out)


class Board:
    """One board on a pyserial URL. `log`: a text file object that gets every byte sent (`>>`)
    and received (`<<`) with a timestamp; `power`: a callable that power-cycles the board."""

    def __init__(self, url, baudrate=115200, timeout=10, log=None, power=None):
        self.url, self.baudrate, self.timeout = url, baudrate, timeout
        self.log, self.power = log, power
        self._serial = None
        self._raw = False
        self._paste = True  # until the board says it has no raw-paste
        self._seen = ""  # output for expect(): received outside of exec
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._rest = b""  # bytes read past the last marker
        self._open(time.monotonic())

    # -- connection --------------------------------------------------------------------------

    def _note(self, marker, text):
        if self.log is not None:
            now = time.time()
            stamp = time.strftime("%H:%M:%S", time.localtime(now)) + ".%03d" % (now % 1 * 1000)
            lines = text.rstrip("\n").split("\n")
            self.log.write("%s %s %s\n" % (stamp, marker, ("\n" + " " * 16).join(lines)))
            self.log.flush()

    def _open(self, deadline):
        """Open the port, retrying until `deadline` (a USB-CDC port comes back after a reset)."""
        while True:
            try:
                self._serial = serial.serial_for_url(self.url, baudrate=self.baudrate, timeout=0.1)
                break
            except (serial.SerialException, OSError) as exc:
                if time.monotonic() >= deadline:
                    raise BoardError("cannot open %s: %s" % (self.url, exc)) from exc
                time.sleep(0.2)
        self._raw, self._paste = False, True
        self._note("--", "connected to %s" % self.url)

    def _reconnect(self, why):
        self._note("--", "port lost (%s): reconnecting" % why)
        try:
            self._serial.close()
        except (serial.SerialException, OSError):
            pass
        self._open(time.monotonic() + self.timeout)

    def close(self):
        """Leave the raw REPL (Ctrl-B: the board is back at its friendly REPL) and close."""
        if self._serial is not None:
            if self._raw:
                self._note(">>", escape(b"\r\x02"))
                try:
                    self._serial.write(b"\r\x02")
                except (serial.SerialException, OSError):
                    pass  # the port is gone: nothing to leave
            self._serial.close()
            self._serial = None
            self._note("--", "closed")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _write(self, data):
        self._note(">>", escape(data))
        try:
            self._serial.write(data)
            self._serial.flush()
        except (serial.SerialException, OSError) as exc:
            self._reconnect(exc)
            self._serial.write(data)

    def _read(self, wait):
        """Bytes received within `wait` seconds (at least one, or none on time-out)."""
        try:
            self._serial.timeout = max(wait, 0)
            data = self._serial.read(1)
            if data:
                self._serial.timeout = 0
                data += self._serial.read(65536)
        except (serial.SerialException, OSError) as exc:
            self._reconnect(exc)
            return b""
        if data:
            self._note("<<", escape(data))
        return data

    def _read_until(self, marker, timeout, keep=b""):
        """Read until `marker`; returns what came before it. Bytes after it stay in `_rest`."""
        buf, deadline = bytearray(keep), time.monotonic() + timeout
        while True:
            at = buf.find(marker)
            if at >= 0:
                self._rest = bytes(buf[at + len(marker):])
                return bytes(buf[:at])
            left = deadline - time.monotonic()
            if left <= 0:
                raise BoardError("timed out after %g s waiting for %r; got %r"
                                 % (timeout, marker, bytes(buf[-200:])))
            buf += self._read(min(left, 0.5))

    def _drain(self, wait=0.05):
        """Read and return whatever the board has sent, and sends within `wait` seconds."""
        got = bytearray()
        while True:
            data = self._read(wait)
            if not data:
                return bytes(got)
            got += data

    # -- the raw REPL --------------------------------------------------------------------------

    def enter_raw(self, timeout=None):
        """Interrupt whatever runs (Ctrl-C twice) and enter the raw REPL."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            self._write(b"\r\x03")
            time.sleep(0.05)
            self._write(b"\x03")
            self._see(self._drain())
            self._write(b"\r\x01")
            try:
                self._read_until(BANNER + b">", min(2.0, max(deadline - time.monotonic(), 0.1)))
            except BoardError:
                if time.monotonic() >= deadline:
                    raise BoardError("%s: no raw REPL banner after Ctrl-C, Ctrl-A" % self.url)
                continue
            self._raw = True
            return

    def _send(self, code):
        """At the raw prompt: send `code` and start it; raw-paste when the board offers it."""
        if self._paste:
            self._write(b"\x05A\x01")
            answer = self._rest
            while len(answer) < 2:
                more = self._read(self.timeout)
                if not more:
                    raise BoardError("%s: no answer to a raw-paste request" % self.url)
                answer += more
            self._rest = answer[2:]
            if answer[:2] == b"R\x01":
                return self._paste_write(code)
            if answer[:2] != b"R\x00":
                raise BoardError("unexpected answer to a raw-paste request: %r" % answer)
            self._paste = False
        for at in range(0, len(code), 256):
            if at:
                time.sleep(0.01)  # a board reads its UART as it goes: no more than it can take
            self._write(code[at:at + 256])
        self._write(b"\x04")
        rest = self._rest
        self._read_until(b"OK", self.timeout, keep=rest)

    def _paste_write(self, code):
        data = self._rest
        while len(data) < 2:
            data += self._read(self.timeout)
        window, pending = struct.unpack("<H", data[:2])[0], bytearray(data[2:])
        room, at = window, 0
        while at < len(code):
            while room == 0 or pending:
                if not pending:
                    pending += self._read(self.timeout)
                    if not pending:
                        raise BoardError("%s: no flow control during raw paste" % self.url)
                flag = pending.pop(0)
                if flag == 0x01:
                    room += window
                elif flag == 0x04:  # the board aborted: acknowledge
                    self._write(b"\x04")
                    raise BoardError("the board aborted the raw paste")
                else:
                    raise BoardError("unexpected byte during raw paste: %r" % bytes([flag]))
            piece = code[at:at + room]
            self._write(piece)
            room, at = room - len(piece), at + len(piece)
        self._write(b"\x04")
        self._read_until(b"\x04", self.timeout, keep=bytes(pending))

    def exec_raw(self, code, timeout=None):
        """Run `code`; returns (stdout, traceback) as text, line endings `\\n`."""
        if not self._raw:
            self.enter_raw()
        self._drain(0)
        self._seen = ""
        self._rest = b""
        self._send(code.encode() if isinstance(code, str) else code)
        timeout = timeout or self.timeout
        try:
            out = self._read_until(b"\x04", timeout, keep=self._rest)
            err = self._read_until(b"\x04", timeout, keep=self._rest)
            self._read_until(b">", timeout, keep=self._rest)
        except BoardError:
            self._write(b"\x03")  # interrupt the code; the next exec re-enters the raw REPL
            self._raw = False
            raise BoardError("%s: code still running after %g s (interrupted)"
                             % (self.url, timeout))
        self._see(self._rest)
        return self._text(out), self._text(err)

    def exec(self, code, timeout=None):
        """Run `code`; returns its stdout. BoardError with the board's traceback if it raised."""
        out, err = self.exec_raw(code, timeout)
        if err:
            raise BoardError(err.strip().splitlines()[-1], err)
        return out

    def eval(self, expr, timeout=None):
        """The value of `expr` on the board: a literal (numbers, strings, bytes, containers)."""
        return ast.literal_eval(self.exec("print(repr(%s))" % expr, timeout).strip())

    @staticmethod
    def _text(data):
        return data.replace(b"\r\n", b"\n").decode("utf-8", "replace")

    def soft_reset(self):
        """Soft reset (Ctrl-D at the raw prompt): RAM is cleared, files stay; back in raw REPL."""
        if not self._raw:
            self.enter_raw()
        self._see(self._drain())
        self._write(b"\x04")
        # "soft reboot\r\n" (ESP32: "MPY: soft reboot\r\n"), boot.py's output, the raw banner
        self._read_until(b"soft reboot\r\n", self.timeout)
        self._see(self._read_until(BANNER, self.timeout, keep=self._rest))
        self._read_until(b">", self.timeout, keep=self._rest)
        self._see(self._rest)

    def hard_reset(self):
        """Power-cycle the board through the `power` hook, else `machine.reset()` on it. The board
        then boots on its own (boot.py, main.py: see expect()); the next exec interrupts it."""
        if self.power is not None:
            self._note("--", "hard reset: power hook")
            self.power()
        else:
            if not self._raw:
                self.enter_raw()
            self._see(self._drain())
            self._note("--", "hard reset: machine.reset()")
            # plain raw mode, no answer awaited: the board resets before it could give one
            self._write(b"import machine\nmachine.reset()\n\x04")
        self._raw = False

    # -- output while the board runs on its own ----------------------------------------------

    def _see(self, data):
        self._seen += self._decoder.decode(data)

    def expect(self, regex, timeout=None):
        """Wait for `regex` (text or compiled) in the board's output since the last expect or
        exec; the match and what came before it are consumed."""
        pattern = re.compile(regex) if isinstance(regex, str) else regex
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            found = pattern.search(self._seen)
            if found:
                self._seen = self._seen[found.end():]
                return found
            left = deadline - time.monotonic()
            if left <= 0:
                raise BoardError("timed out after %g s waiting for %r; output since: %r"
                                 % (timeout or self.timeout, pattern.pattern, self._seen[-300:]))
            self._see(self._read(min(left, 0.5)))

    # -- files ---------------------------------------------------------------------------------

    def mkdir(self, path):
        """Create the folder `path` and its parents (no error if it exists)."""
        self.exec(MKDIRS + "_rig_mkdirs(%r)\ndel _rig_mkdirs" % path.rstrip("/"))

    def put(self, source, remote):
        """Write `source` (bytes, or a local file's path) to the board's `remote` path, creating
        its folders: into a temporary file first, renamed when complete, so a cut upload never
        leaves half a file under the real name."""
        data = source if isinstance(source, (bytes, bytearray)) else Path(source).read_bytes()
        parent, part = remote.rsplit("/", 1)[0], remote + ".part"
        pieces = [data[at:at + CHUNK] for at in range(0, len(data), CHUNK)] or [b""]
        code = MKDIRS + "_rig_mkdirs(%r)\ndel _rig_mkdirs\n" % parent if parent else ""
        code += "import os, binascii\n_rig_f = open(%r, 'wb')\n" % part
        try:
            for n, piece in enumerate(pieces):
                code += "_rig_f.write(binascii.a2b_base64(%r))\n" % binascii.b2a_base64(
                    piece, newline=False)
                if n == len(pieces) - 1:
                    code += "_rig_f.close()\ndel _rig_f\nos.rename(%r, %r)\n" % (part, remote)
                self.exec(code)
                code = ""
        except BoardError:
            self.exec_raw("_rig_f.close()\ndel _rig_f")  # best effort: the .part file stays
            raise

    def get(self, remote):
        """The bytes of the board's file `remote`."""
        out = self.exec("import binascii\nwith open(%r, 'rb') as _rig_f:\n"
                        " while True:\n"
                        "  _rig_b = _rig_f.read(%d)\n"
                        "  if not _rig_b: break\n"
                        "  print(binascii.b2a_base64(_rig_b).decode().strip())\n"
                        "del _rig_f, _rig_b" % (remote, CHUNK))
        return b"".join(binascii.a2b_base64(line) for line in out.split())

    def ls(self, path="/"):
        """{name: size in bytes, or None for a folder} of the folder `path` on the board."""
        base = path.rstrip("/")
        self.exec("import os")
        return self.eval("{n: (None if os.stat(%r + '/' + n)[0] & 0x4000 else "
                         "os.stat(%r + '/' + n)[6]) for n in os.listdir(%r)}"
                         % (base, base, path))

    def rm(self, path):
        """Remove the file or folder (with what it holds) `path` on the board."""
        self.exec(RMTREE + "_rig_rm(%r)\ndel _rig_rm" % path.rstrip("/"))

    def free(self):
        """Flash and RAM: {"flash_free", "flash_total", "ram_free", "ram_alloc"} in bytes."""
        self.exec("import os, gc\ngc.collect()")
        fs = self.eval("os.statvfs('/')")
        ram_free, ram_alloc = self.eval("(gc.mem_free(), gc.mem_alloc())")
        return {"flash_free": fs[0] * fs[3], "flash_total": fs[0] * fs[2],
                "ram_free": ram_free, "ram_alloc": ram_alloc}


MKDIRS = """import os
def _rig_mkdirs(path):
    at = ''
    for part in path.split('/'):
        if part:
            at += '/' + part
            try:
                os.mkdir(at)
            except OSError:
                if not os.stat(at)[0] & 0x4000:
                    raise
"""

RMTREE = """import os
def _rig_rm(path):
    if os.stat(path)[0] & 0x4000:
        for name in os.listdir(path):
            _rig_rm(path + '/' + name)
        os.rmdir(path)
    else:
        os.remove(path)
"""
