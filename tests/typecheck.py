"""Type-check the firmware against each board's MicroPython stubs, with pyright.

    python tests/typecheck.py --install     install the stubs (one folder per board under typings/)
    python tests/typecheck.py [BOARD ...]   check; prints each problem, exits 1 if there is one

The board's /lib is laid out in a temporary folder as `thingsdk firmware build` lays it out
(`firmware/lib/*.py`, `thingsdk/__init__.py`, `thingsdk/core/*.py`), so only what a board has can
be imported, and no Python interpreter is given to pyright, so nothing outside the stubs resolves.

The same lib is also checked against CPython's typeshed: a problem that CPython reports too on the
same spot (the untyped core's dict-heavy code gives pyright's inference plenty) is not the board's,
and is left out. What remains is what MicroPython lacks or does differently: a module the board
does not have, a name missing from `machine`, `time`, `asyncio`..., a call its API does not take.
A missing import is never left out. Code under `if MICROPYTHON:` is checked as the board runs it.
"""

import glob
import json
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TYPINGS = ROOT / "typings"
PYRIGHT = ROOT / "node_modules" / "pyright" / "index.js"
STUBS = {  # board (as in `thingsdk firmware build --board`) -> its stub package on PyPI
    "esp32": "micropython-esp32-stubs==1.29.*",
    "pico_w": "micropython-rp2-rpi-pico-w-stubs==1.29.*",
}
CONFIG = {
    "include": ["../lib"],
    "extraPaths": ["../lib"],
    "typeCheckingMode": "basic",
    # Both runs read the code as CPython 3.11 does: syntax MicroPython lacks (positional-only
    # parameters, say) is for mpy-cross to reject, in the firmware build.
    "pythonVersion": "3.11",
    "reportMissingModuleSource": "none",  # the stubs have no source, by design
    "defineConstant": {"MICROPYTHON": True},
}


def installed(board):
    """True if `board`'s stubs are in typings/<board>."""
    name, version = STUBS[board].split("==")  # the version is a glob too: 1.29.*
    dist = "%s-%s.dist-info" % (name.replace("-", "_"), version)
    return bool(glob.glob(str(TYPINGS / board / dist)))


def install(boards):
    """pip-install each board's stubs into its own folder (shared files would clash), once."""
    for board in boards:
        if not installed(board):
            shutil.rmtree(TYPINGS / board, ignore_errors=True)
            subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                            "--disable-pip-version-check", "--target", str(TYPINGS / board),
                            STUBS[board]], check=True)


def missing():
    """What the check needs and is not there, as one sentence, or None."""
    if not shutil.which("node") or not PYRIGHT.exists():
        return "pyright is not installed (npm ci)"
    absent = [b for b in STUBS if not installed(b)]
    if absent:
        return "no MicroPython stubs for %s (python tests/typecheck.py --install)" % (
            ", ".join(absent))
    return None


def _layout(lib, extra):
    """Lay out a board's /lib in `lib` as `thingsdk firmware build` does (the firmware library,
    the core, every link), and `extra` files ({name: source}). Returns {file laid out: its name
    to report}."""
    from thingsdk.firmware_build import sources as board_sources

    names = {}
    for src, name in board_sources():
        dst = lib / (name.replace("lib/", "", 1) + ".py")
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, dst)
        names[str(dst)] = src.relative_to(ROOT).as_posix()
    for name, text in (extra or {}).items():
        (lib / name).write_text(text)
        names[str(lib / name)] = name
    return names


def _start(folder, typeshed):
    """Start pyright on ../lib from `folder`, against `typeshed` (a stubs folder) or CPython's."""
    config = dict(CONFIG)
    if typeshed:
        config.update(typeshedPath=str(typeshed), stubPath=str(typeshed))
    folder.mkdir()
    (folder / "pyrightconfig.json").write_text(json.dumps(config))
    # An interpreter that does not exist: no site-packages nor CPython stdlib to fall back on.
    return subprocess.Popen(["node", str(PYRIGHT), "--outputjson", "-p", str(folder),
                             "--pythonpath", str(folder / "no-python")],
                            cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _errors(proc, names):
    """The errors a pyright run reported: [(file, line, column, rule, message)]."""
    out, err = proc.communicate()
    if proc.returncode not in (0, 1):
        raise RuntimeError("pyright failed (%d): %s" % (proc.returncode, (err or out).strip()))
    found = []
    for d in json.loads(out)["generalDiagnostics"]:
        if d["severity"] == "error":
            start = d["range"]["start"]
            found.append((names.get(d["file"], d["file"]), start["line"] + 1,
                          start["character"] + 1, d.get("rule", ""), d["message"].split("\n")[0]))
    return found


def check(boards, extra=None):
    """{board: [problem, ...]}; a problem reads "file:line:col: message (rule)". `extra`
    ({file name: source}) adds files to the board's lib."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp).resolve()
        names = _layout(tmp / "lib", extra)
        runs = {b: _start(tmp / b, TYPINGS / b) for b in boards}
        baseline = _errors(_start(tmp / "cpython", None), names)
        found = {b: _errors(p, names) for b, p in runs.items()}
    problems = {}
    for board, errors in found.items():
        excused = Counter(e[:4] for e in baseline)
        problems[board] = []
        for e in errors:
            if e[3] != "reportMissingImports" and excused[e[:4]] > 0:
                excused[e[:4]] -= 1
            else:
                problems[board].append("%s:%d:%d: %s (%s)" % (e[0], e[1], e[2], e[4], e[3]))
    return problems


def main(argv):
    """Install the stubs (--install) or check the boards named (all by default)."""
    if argv[:1] == ["--install"]:
        install(argv[1:] or list(STUBS))
        return 0
    boards = argv or list(STUBS)
    unknown = [b for b in boards if b not in STUBS]
    if unknown:
        print("unknown board %s (known: %s)" % (", ".join(unknown), ", ".join(STUBS)))
        return 2
    if missing():
        print(missing())
        return 2
    failed = 0
    for board, problems in check(boards).items():
        print("%s: %d problem(s)" % (board, len(problems)))
        for p in problems:
            print("  " + p)
        failed += bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
