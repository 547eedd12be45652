"""Run code on the official MicroPython WebAssembly port through tests/mpy/run.mjs."""

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNNER = ROOT / "tests" / "mpy" / "run.mjs"


def mounts(vectors=None):
    """The folders every MicroPython run gets: the package, the firmware's library (copied into
    /lib beside the package), the portable scenarios, the vectors."""
    pairs = [(ROOT / "thingsdk", "/lib/thingsdk"), (ROOT / "firmware" / "lib", "/lib"),
             (ROOT / "tests" / "portable", "/lib/portable")]
    if vectors:
        pairs.append((Path(vectors), "/vectors"))
    return pairs


def run(script, args=(), extra_mounts=(), vectors=None, heap=2 * 1024 * 1024, timeout=600):
    """Run a script file on MicroPython; return the completed process (text output)."""
    cmd = ["node", str(RUNNER), "--heap", str(heap)]
    for host, target in [*mounts(vectors), *extra_mounts]:
        cmd += ["--mount", f"{host}:{target}"]
    cmd += [str(script), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def run_portable(modules, vectors, scratch, port="wasm", heap=None):
    """Run portable scenario modules with tests/mpy/portable_runner.py on a port: "wasm" (the
    WebAssembly port) or the path of a unix port binary (tests/unix_port.py)."""
    script = ROOT / "tests" / "mpy" / "portable_runner.py"
    if port == "wasm":
        args = ["--path", "/lib/portable", "--vectors", "/vectors", "--scratch", "/", *modules]
        return run(script, args, vectors=vectors, **({"heap": heap} if heap else {}))
    import unix_port

    args = ["--path", ROOT / "tests" / "portable", "--vectors", vectors, "--scratch", scratch,
            *modules]
    return unix_port.run(port, script, args, heap=heap or "2m",
                         path=[ROOT, ROOT / "firmware" / "lib"])
