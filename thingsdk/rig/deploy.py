"""`thingsdk firmware deploy`: copy a folder made by `thingsdk firmware build` to a board's flash
root, keeping its layout; files whose size and SHA-256 on the board already match are skipped.
"""

import hashlib
from pathlib import Path

from thingsdk.rig.repl import BoardError

# Run on the board: {path: (size, sha256 hex)} of those of PATHS that exist, read in chunks.
HASHES = """import os, hashlib, binascii
def _rig_hashes(paths):
    found = {}
    for path in paths:
        try:
            if os.stat(path)[0] & 0x4000:
                continue
            h, n = hashlib.sha256(), 0
            with open(path, 'rb') as f:
                while True:
                    b = f.read(1024)
                    if not b:
                        break
                    h.update(b)
                    n += len(b)
            found[path] = (n, binascii.hexlify(h.digest()).decode())
        except OSError:
            pass
    return found
"""


def local_files(folder):
    """[(path on the board, local file)] of every file in a build folder, sorted; a --frozen
    build's firmware/ folder is for the firmware image, not for the board's filesystem."""
    folder = Path(folder)
    if not folder.is_dir() or not ((folder / "lib").is_dir() or (folder / "identity").is_dir()):
        raise ValueError("%s is not a folder made by `thingsdk firmware build` (no lib/ or "
                         "identity/)" % folder)
    return [("/" + p.relative_to(folder).as_posix(), p)
            for p in sorted(folder.rglob("*"))
            if p.is_file() and p.relative_to(folder).parts[0] != "firmware"]


def board_hashes(board, paths):
    """{path: (size, sha256 hex)} of the files among `paths` that the board has."""
    board.exec(HASHES)
    try:
        return board.eval("_rig_hashes(%r)" % list(paths), timeout=max(board.timeout, 60))
    finally:
        board.exec("del _rig_hashes")


def deploy(board, folder, say=print):
    """Copy the build `folder` to `board`, soft-reset it and say what it has free; returns the
    paths copied."""
    files = local_files(folder)
    have = board_hashes(board, [path for path, _ in files])
    copied, same = [], 0
    for path, local in files:
        data = local.read_bytes()
        if have.get(path) == (len(data), hashlib.sha256(data).hexdigest()):
            same += 1
            continue
        try:
            board.put(data, path)
        except BoardError as exc:
            raise BoardError("copying %s failed: %s" % (path, exc), exc.traceback) from exc
        copied.append(path)
        say("copied       %s (%d B)" % (path, len(data)))
    say("files        %d copied, %d already on the board" % (len(copied), same))
    board.soft_reset()
    free = board.free()
    say("flash        %d B free of %d B" % (free["flash_free"], free["flash_total"]))
    say("ram          %d B free, %d B in use after a soft reset"
        % (free["ram_free"], free["ram_alloc"]))
    return copied
