"""The portable scenarios, run again on real MicroPython: the WebAssembly port, and the unix port
built as a board is (32-bit, single-precision floats; tests/unix_port.py)."""

import re
from pathlib import Path

import pytest

import micropython_port as mp
from check import vectors_dir

PORTABLE = Path(__file__).parent / "portable"
MODULES = sorted(p.stem for p in PORTABLE.glob("test_*.py"))


@pytest.mark.parametrize("module", MODULES)
@pytest.mark.parametrize("port", ["wasm", "unix32"])
def test_portable_scenarios_pass_on_micropython(module, port, request, tmp_path):
    source = (PORTABLE / f"{module}.py").read_text()
    expected = len(re.findall(r"^def test_", source, re.M))
    binary = "wasm" if port == "wasm" else request.getfixturevalue("unix32")
    proc = mp.run_portable([module], vectors_dir(), tmp_path, binary)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert f"micropython: {expected} passed, 0 failed" in proc.stdout, proc.stdout + proc.stderr
def test_signatures_cross_between_cpython_and_micropython(tmp_path):
    import os

    from thingsdk import codec
    from thingsdk.core import cose
    from thingsdk.crypto import Ed25519Signer, Ed25519Verifier

    host = Ed25519Signer.generate()
    board_seed = os.urandom(32)
    (tmp_path / "cpython.cose").write_bytes(
        cose.sign1(codec.dumps({"note": "from CPython"}), host, codec))
    (tmp_path / "cpython.pub").write_bytes(host.public_key)
    (tmp_path / "board.seed").write_bytes(board_seed)
    proc = mp.run(mp.ROOT / "tests" / "mpy" / "cross_sign.py", extra_mounts=[(tmp_path, "/xfer")])
    assert proc.returncode == 0, proc.stderr
    lines = dict(line.split(" ", 1) for line in proc.stdout.splitlines())
    assert lines["VERIFIED"] == "from CPython"
    assert lines["TAMPERED"] == "REFUSED bad-signature"
    board = Ed25519Verifier(Ed25519Signer.from_seed(board_seed).public_key)
    got = cose.verify_sign1(bytes.fromhex(lines["SIGNED"]), {board.kid: board}, codec)
    assert codec.loads(got.payload) == {"note": "from the board", "n": 2**40}
