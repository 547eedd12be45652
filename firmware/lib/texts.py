"""The stock firmware's sentences, read from flash when one is said instead of kept in the heap.
`thingsdk firmware build` writes them to texts.bin beside this module and compiles each use as
text(n) (thingsdk/firmware_texts.py); the string read is garbage once used. A large table of
bytes that code reads by position (the message schemas) goes there too, as a Flash(n)."""

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


def _span(n):
    """(start, end) of text n of texts.bin: n+1 little-endian uint32 offsets from the file's
    start, then the texts, text n from offset n to offset n+1."""
    global _path
    if _path is None:
        _path = _find()
    with open(_path, "rb") as f:
        f.seek(4 * n)
        ends = f.read(8)
    return int.from_bytes(ends[:4], "little"), int.from_bytes(ends[4:], "little")


def _read(start, end):
    with open(_path, "rb") as f:
        f.seek(start)
        return f.read(end - start)


def text(n):
    """Text n of texts.bin, in UTF-8."""
    return str(_read(*_span(n)), "utf-8")


class Flash:
    """Text n of texts.bin as bytes left on flash: `len`, `find(sub)`, an index (an int) and a
    slice read it through a window (128 bytes; `find` reads 128 at a time, as a message is
    checked, where a board's heap is most broken up), so that the heap never holds it whole."""

    def __init__(self, n):
        self._start, self._end = _span(n)
        self._at, self._window = 0, b""

    def __len__(self):
        return self._end - self._start

    def _bytes(self, at, n):
        return _read(self._start + at, min(self._start + at + n, self._end))

    def __getitem__(self, i):
        if isinstance(i, slice):  # the steps of slices are not used
            start, stop = i.start or 0, len(self) if i.stop is None else min(i.stop, len(self))
            at = self._at
            if at <= start and stop <= at + len(self._window):
                return self._window[start - at:stop - at]
            return self._bytes(start, stop - start)
        if not 0 <= i < len(self):
            raise IndexError("index out of range")
        if not self._at <= i < self._at + len(self._window):
            self._at, self._window = i, self._bytes(i, 128)
        return self._window[i - self._at]

    def find(self, sub):
        """The offset of the first `sub`, or -1."""
        keep = len(sub) - 1  # a match may straddle two reads
        at, chunk = 0, b""  # chunk: the bytes from offset `at` on, read so far
        with open(_path, "rb") as f:
            f.seek(self._start)
            while True:
                more = f.read(min(128, len(self) - at - len(chunk)))
                if not more:
                    return -1
                chunk += more
                found = chunk.find(sub)
                if found >= 0:  # what follows it is likely read next
                    self._at, self._window = at, chunk
                    return at + found
                cut = max(0, len(chunk) - keep)
                at, chunk = at + cut, chunk[cut:]
