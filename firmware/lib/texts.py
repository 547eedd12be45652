"""The stock firmware's sentences, read from flash when one is said instead of kept in the heap.
`thingsdk firmware build` writes them to texts.bin beside this module and compiles each use as
text(n) (thingsdk/firmware_texts.py); the string read is garbage once used."""

import sys

_path = None


def _find():
    for folder in sys.path:
        path = folder + "/texts.bin" if folder else "texts.bin"
        try:
            open(path, "rb").close()
        except OSError:
            continue
        return path
    raise OSError("texts.bin is in no folder of sys.path: copy the whole build to the board")


def text(n):
    """Text n of texts.bin: n+1 little-endian uint32 offsets from the file's start, then the
    texts in UTF-8, text n from offset n to offset n+1."""
    global _path
    if _path is None:
        _path = _find()
    with open(_path, "rb") as f:
        f.seek(4 * n)
        ends = f.read(8)
        start = int.from_bytes(ends[:4], "little")
        f.seek(start)
        return str(f.read(int.from_bytes(ends[4:], "little") - start), "utf-8")
