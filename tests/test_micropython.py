"""The portable scenarios, run again on real MicroPython (the WebAssembly port)."""

import re
from pathlib import Path

import pytest

import micropython_port as mp
from check import vectors_dir

PORTABLE = Path(__file__).parent / "portable"
MODULES = sorted(p.stem for p in PORTABLE.glob("test_*.py"))


@pytest.mark.parametrize("module", MODULES)
def test_portable_scenarios_pass_on_micropython(module):
    source = (PORTABLE / f"{module}.py").read_text()
    expected = len(re.findall(r"^def test_", source, re.M))
    proc = mp.run(mp.ROOT / "tests" / "mpy" / "portable_runner.py", [module], vectors=vectors_dir())
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert f"micropython: {expected} passed, 0 failed" in proc.stdout, proc.stdout + proc.stderr
