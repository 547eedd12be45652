"""MicroPython's unix port built as a board is: 32-bit pointers, 31-bit small ints and
single-precision floats, with a GC heap of a fixed size (`-X heapsize`) that collects whenever an
allocation needs it. It stands in for an ESP32 or a Pico W where the WebAssembly port cannot
(doubles, no heap limit, garbage collected only between steps).

    python tests/unix_port.py            build the stock port (cached), print its path

The source is MicroPython v1.28.0: `MICROPYTHON_SRC` names a MicroPython tree or a release
tarball; without it, the tarball kept beside this project (../shared/micropython/) is used. It is
unpacked and built once into build/micropython/ (ignored by git); a build is redone only when its
binary is missing or, for a frozen build, when a frozen file changed (make decides). Building
needs gcc with 32-bit support (Debian: gcc-multilib); .ci/setup installs it.

Two builds: `stock()` freezes only asyncio (as ESP32 and RP2 firmware do), so the SDK is loaded
from .py or .mpy files as on a board flashed with stock MicroPython; `firmware()` freezes what a
`thingsdk firmware build --frozen` manifest names, as a device maker's firmware image would.
"""

import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "build" / "micropython"
VERSION = "1.28.0"
TARBALL = ROOT.parent / "shared" / "micropython" / ("micropython-%s.tar.gz" % VERSION)
# What the stock build freezes: a board's port manifest without the micropython-lib packages.
PORT_MANIFEST = 'include("$(MPY_DIR)/extmod/asyncio")\n'
MAKE_FLAGS = [
    "VARIANT=standard", "MICROPY_PY_FFI=0", "MICROPY_PY_BTREE=0", "MICROPY_PY_SSL=0",
    "MICROPY_SSL_MBEDTLS=0",
    "CFLAGS_EXTRA=-m32 -DMICROPY_FLOAT_IMPL=MICROPY_FLOAT_IMPL_FLOAT", "LDFLAGS_EXTRA=-m32",
]


class Unavailable(RuntimeError):
    """The port cannot be built here; the message says why and what to do."""


def source():
    """The MicroPython tree to build from, unpacked into the cache on first use."""
    given = os.environ.get("MICROPYTHON_SRC")
    origin = Path(given) if given else TARBALL
    if origin.is_dir():
        if not (origin / "ports" / "unix" / "Makefile").is_file():
            raise Unavailable("MICROPYTHON_SRC=%s is not a MicroPython source tree (no "
                              "ports/unix/Makefile)" % origin)
        return origin
    if not origin.is_file():
        raise Unavailable(
            "MicroPython source not found at %s: set MICROPYTHON_SRC to a MicroPython %s tree "
            "or release tarball to run the board-fidelity (32-bit, float32) tests" % (origin, VERSION))
    tree = CACHE / ("micropython-%s" % VERSION)
    if not (tree / "ports" / "unix" / "Makefile").is_file():
        CACHE.mkdir(parents=True, exist_ok=True)
        partial = CACHE / "unpacking"
        shutil.rmtree(partial, ignore_errors=True)
        with tarfile.open(origin) as tar:
            tar.extractall(partial, filter="data")
        (top,) = partial.iterdir()
        shutil.rmtree(tree, ignore_errors=True)
        top.rename(tree)
        shutil.rmtree(partial)
    return tree


def _make(name, manifest_text, log):
    tree = source()
    if not shutil.which("make") or not shutil.which("gcc"):
        raise Unavailable("building the MicroPython unix port needs make and gcc")
    work = CACHE / name
    work.mkdir(parents=True, exist_ok=True)
    manifest = work / "manifest.py"
    if not manifest.is_file() or manifest.read_text() != manifest_text:
        manifest.write_text(manifest_text)
    lib = work / "no-micropython-lib"  # the port's build wants MPY_LIB_DIR to hold a README.md
    lib.mkdir(exist_ok=True)
    (lib / "README.md").write_text("micropython-lib is not used by these builds\n")
    prog = work / "build" / "micropython"
    cross = tree / "mpy-cross" / "build" / "mpy-cross"
    if not cross.is_file():  # first, alone: make passes its command-line settings down
        with open(work / "make.log", "w") as out:
            subprocess.run(["make", "-C", str(tree / "mpy-cross"), "-j%d" % (os.cpu_count() or 1)],
                           stdout=out, stderr=subprocess.STDOUT)
    cmd = ["make", "-C", str(tree / "ports" / "unix"), "-j%d" % (os.cpu_count() or 1),
           "BUILD=%s" % (work / "build"), "PROG=micropython", "FROZEN_MANIFEST=%s" % manifest,
           "MPY_LIB_DIR=%s" % lib, *MAKE_FLAGS]
    with open(work / "make.log", "a") as out:
        done = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT)
    if done.returncode or not prog.is_file():
        tail = (work / "make.log").read_text().strip().splitlines()[-15:]
        hint = ""
        if any("gnu/stubs-32.h" in line or "cannot find -lgcc" in line for line in tail):
            hint = "\n(32-bit support is missing: apt-get install gcc-multilib)"
        raise Unavailable("building the MicroPython unix port (%s) failed; see %s:\n%s%s"
                          % (name, work / "make.log", "\n".join(tail), hint))
    if log:
        print("MicroPython unix port (%s): %s" % (name, prog), file=sys.stderr)
    return prog


def stock(log=False):
    """The stock 32-bit float32 port (asyncio frozen, nothing else); built on first use."""
    prog = CACHE / "stock" / "build" / "micropython"
    if prog.is_file():
        return prog
    return _make("stock", PORT_MANIFEST, log)


def firmware(board="esp32", link="mqtt", extra=(), log=False):
    """The port with the SDK frozen in as `thingsdk firmware build --frozen` makes a board's
    firmware: the manifest it writes, for `board` and `link`, including the stock port's own
    manifest instead of the board's; `extra` names more modules to freeze, as (base folder,
    file). Rebuilt when a frozen source changes."""
    from thingsdk import boards
    from thingsdk.firmware_build import LINKS, write_manifest

    port_manifest = CACHE / "port-manifest.py"
    port_manifest.parent.mkdir(parents=True, exist_ok=True)
    port_manifest.write_text(PORT_MANIFEST)
    folder = CACHE / "firmware"  # the manifest names the sources beside it
    manifest = write_manifest(folder, boards.board(board), LINKS[link], port_manifest)
    text = manifest.read_text()
    for base, name in extra:
        text += 'module("%s", base_path="%s")\n' % (name, base)
    return _make("firmware", text, log)


def run(prog, script, args=(), heap="2m", path=(), timeout=600, cwd=None):
    """Run `script` on the port `prog` with `-X heapsize=heap`; modules are found in `path`
    (after the frozen ones). Returns the completed process (text output)."""
    env = dict(os.environ, MICROPYPATH=":".join([".frozen", *map(str, path)]))
    cmd = [str(prog), "-X", "heapsize=%s" % heap, str(script), *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                          cwd=cwd or ROOT)


def smallest_heap(prog, script, args=(), path=(), lo=16, hi=512, done="order complete",
                  run_with=run):
    """The smallest `-X heapsize`, in KB (1 KB steps, bisected between lo and hi), at which
    `script` prints `done` (run by `run_with`, which takes `run`'s arguments); None if it does
    not at `hi`."""
    def fits(kb):
        out = run_with(prog, script, args, heap="%dk" % kb, path=path)
        return out.returncode == 0 and done in out.stdout

    if not fits(hi):
        return None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if fits(mid):
            hi = mid
        else:
            lo = mid
    return hi


def for_tests(build, *args, **kwargs):
    """`build(*args, **kwargs)` for a test fixture: without the MicroPython source the test is
    skipped with the reason, except in CI, where the source is always there and its absence is
    a failure."""
    import pytest

    try:
        return build(*args, **kwargs)
    except Unavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(str(exc))
        pytest.skip(str(exc))


if __name__ == "__main__":
    try:
        print(stock(log=True))
    except Unavailable as exc:
        print("thingsdk: %s" % exc, file=sys.stderr)
        sys.exit(0 if os.environ.get("CI") is None else 1)
