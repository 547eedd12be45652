"""What portable test scenarios use instead of pytest, so they run on CPython and MicroPython alike."""

import sys

ON_MICROPYTHON = sys.implementation.name == "micropython"
# Where things are on MicroPython, set by the harness (tests/mpy/portable_runner.py): "vectors",
# the shared test vectors, and "scratch", a folder scenarios may make folders in.
ROOTS = {}


def raises(exc_type, fn, *args, **kwargs):
    """Call fn and return the exception of exc_type it raised; fail if it raised nothing."""
    try:
        fn(*args, **kwargs)
    except exc_type as exc:
        return exc
    raise AssertionError("%s did not raise %s" % (getattr(fn, "__name__", fn), exc_type.__name__))


def vectors_dir():
    """The shared third-party test vectors: where the harness says on MicroPython."""
    if ON_MICROPYTHON:
        return ROOTS["vectors"]
    from pathlib import Path
    import os

    here = Path(__file__).resolve()
    candidates = [os.environ.get("THINGSDK_VECTORS", "")] + [
        str(parent / "shared" / "vectors") for parent in here.parents
    ]
    for c in candidates:
        if c and Path(c).is_dir():
            return c
    raise FileNotFoundError("shared test vectors not found: set THINGSDK_VECTORS")


def load_json(relative):
    import json

    with open(vectors_dir() + "/" + relative) as f:
        return json.load(f)


def unhex(text):
    import binascii

    return binascii.unhexlify(text)


_made = [0]


def scratch(prefix):
    """A new, empty folder for one scenario: under the harness's scratch root on MicroPython."""
    if ON_MICROPYTHON:
        import os

        _made[0] += 1
        path = "%s/%s%d" % (ROOTS["scratch"].rstrip("/"), prefix, _made[0])
        os.mkdir(path)
        return path
    import tempfile

    return tempfile.mkdtemp(prefix=prefix)
