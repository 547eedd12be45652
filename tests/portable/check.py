"""What portable test scenarios use instead of pytest, so they run on CPython and MicroPython alike."""

import sys

ON_MICROPYTHON = sys.implementation.name == "micropython"


def raises(exc_type, fn, *args, **kwargs):
    """Call fn and return the exception of exc_type it raised; fail if it raised nothing."""
    try:
        fn(*args, **kwargs)
    except exc_type as exc:
        return exc
    raise AssertionError("%s did not raise %s" % (getattr(fn, "__name__", fn), exc_type.__name__))


def vectors_dir():
    """The shared third-party test vectors: mounted at /vectors on MicroPython."""
    if ON_MICROPYTHON:
        return "/vectors"
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
