"""The world of a whole order (tests/portable/order_vendor.World: the vendor and the owner's
mandate) run on the host, in CPython, for a script on MicroPython's unix port that asks it over
two pipes, as a board hears its vendor over the network: the board's heap then holds the board's
work alone, and not the vendor's keys, replay guard, signing and answers too.

The board writes a request, `op (1 byte) | now (8 bytes, big-endian) | length (4) | data`, and
reads the answer, `count (1 byte)` then `length (4) | bytes` per item:
- `w`: the vendor's public key, the owner's public key, the mandate the owner signed;
- `a`: the vendor's sealed answers to the uplink `data` at `now`;
- `d`: the vendor's news due at `now` (shipment, delivery);
- `g`: one item, the message types the vendor accepted, a byte each.
tests/mpy/order_heap.py is such a script when given the two pipes' descriptors.
"""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
for folder in (HERE / "portable", HERE.parent / "firmware" / "lib", HERE.parent):
    if str(folder) not in sys.path:
        sys.path.append(str(folder))

from order_vendor import World  # noqa: E402
from thingsdk.core import ed25519  # noqa: E402

DEVICE_SEED = bytes([1]) * 32  # as order_flow.Flow's device


def _read(stream, n):
    data = stream.read(n)
    return data if len(data) == n else None


def serve(world, requests, answers):
    """Answer the board's requests until it stops asking (it ended, or failed)."""
    while True:
        head = _read(requests, 13)
        if head is None:
            return
        op, now, size = head[:1], int.from_bytes(head[1:9], "big"), int.from_bytes(head[9:], "big")
        data = _read(requests, size) if size else b""
        if data is None:
            return
        if op == b"w":
            items = [world.vendor_key, world.owner_key, world.mandate]
        elif op == b"a":
            items = world.answer(data, now)
        elif op == b"d":
            items = world.due(now)
        elif op == b"g":
            items = [bytes(world.got)]
        else:
            raise ValueError("the board asked %r, which this world does not answer" % op)
        try:
            answers.write(bytes([len(items)]) + b"".join(
                len(item).to_bytes(4, "big") + item for item in items))
            answers.flush()
        except BrokenPipeError:
            return


def run(prog, script, args=(), heap="2m", path=(), timeout=600, cwd=None):
    """tests/unix_port.run, with the world served on the host: `script` gets the descriptors of
    the pipe it reads answers from and of the one it writes requests to after `args`."""
    import unix_port

    world = World(ed25519.Signer(DEVICE_SEED).public_key)
    to_board, from_board = os.pipe(), os.pipe()
    env = dict(os.environ, MICROPYPATH=":".join([".frozen", *map(str, path)]))
    cmd = [str(prog), "-X", "heapsize=%s" % heap, str(script), *map(str, args),
           str(to_board[0]), str(from_board[1])]
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                                cwd=cwd or unix_port.ROOT, pass_fds=(to_board[0], from_board[1]))
        os.close(to_board[0])
        os.close(from_board[1])
        with os.fdopen(from_board[0], "rb") as requests, os.fdopen(to_board[1], "wb") as answers:
            try:
                serve(world, requests, answers)
                proc.wait(timeout=timeout)
            finally:
                if proc.poll() is None:  # the world failed, or the board took too long
                    proc.kill()
                    proc.wait()
        out.seek(0)
        text = out.read().decode(errors="replace")
    return subprocess.CompletedProcess(cmd, proc.returncode, text, "")
