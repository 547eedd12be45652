"""Crash-safe writes and the sequence checkpoint, including a child process killed mid-run."""

import binascii
import os
import random
import signal
import stat
import subprocess
import sys
import time

import pytest

from thingsdk import storage
from thingsdk.storage import CheckpointError, SequenceStore, atomic_write, read_bytes


def test_atomic_write_creates_with_mode_and_replaces(tmp_path):
    path = tmp_path / "secret.key"
    atomic_write(path, b"one")
    assert path.read_bytes() == b"one"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    atomic_write(path, b"two", mode=0o640)
    assert path.read_bytes() == b"two"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    assert os.listdir(tmp_path) == ["secret.key"]  # no temporary file left behind


def test_mode_is_set_before_any_data_is_written(tmp_path, monkeypatch):
    seen = []
    real_fchmod = os.fchmod

    def fchmod_spy(fd, mode):
        seen.append((os.fstat(fd).st_size, mode))
        real_fchmod(fd, mode)

    monkeypatch.setattr(os, "fchmod", fchmod_spy)
    atomic_write(tmp_path / "k", b"secret", mode=0o640)
    assert seen == [(0, 0o640)]  # applied while the file was still empty


@pytest.mark.parametrize("failure", ["write", "replace"])
def test_failed_write_keeps_old_content(tmp_path, monkeypatch, failure):
    path = tmp_path / "state"
    atomic_write(path, b"old")

    def broken(*args):
        raise OSError(28, "No space left on device")

    if failure == "replace":
        monkeypatch.setattr(os, "replace", broken)
    else:
        monkeypatch.setattr(os, "fsync", broken)  # the data never reached the disk
    with pytest.raises(OSError, match="No space"):
        atomic_write(path, b"new content that is longer")
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["state"]


def test_read_bytes(tmp_path):
    assert read_bytes(tmp_path / "missing") is None
    assert read_bytes(tmp_path / "missing", b"") == b""
    (tmp_path / "x").write_bytes(b"\x00\x01")
    assert read_bytes(tmp_path / "x") == b"\x00\x01"


def test_sequence_store_persists_ahead(tmp_path):
    path = tmp_path / "seq"
    store = SequenceStore(path, block=4)
    assert [store.take() for _ in range(5)] == [0, 1, 2, 3, 4]
    assert path.read_bytes().split()[0] == b"8"
    assert SequenceStore(path, block=4).take() == 8  # 5..7 were reserved, maybe used: skipped


@pytest.mark.parametrize("content", [
    b"", b"12", b"12 00000000\n", b"012 %08x\n" % binascii.crc32(b"012"), b"-1 00000000\n",
    b"\xff\xfe", b"99999999999999999 00000000\n",
])
def test_corrupt_checkpoint_raises(tmp_path, content):
    path = tmp_path / "seq"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="sequence checkpoint"):
        SequenceStore(path)


def test_checkpoint_beyond_the_limit_and_unreadable_file_raise(tmp_path):
    path = tmp_path / "seq"
    path.write_bytes(storage._encode_checkpoint(2**53 + 1))
    with pytest.raises(CheckpointError, match="beyond"):
        SequenceStore(path)
    with pytest.raises(CheckpointError):
        SequenceStore(tmp_path)  # a folder, not a file


def test_failed_checkpoint_write_issues_nothing_unreserved(tmp_path, monkeypatch):
    path = tmp_path / "seq"
    store = SequenceStore(path, block=2)
    assert [store.take(), store.take()] == [0, 1]

    def broken(*args):
        raise OSError(5, "I/O error")

    with monkeypatch.context() as m:
        m.setattr(os, "replace", broken)
        with pytest.raises(OSError):
            store.take()
        with pytest.raises(OSError):
            store.take()  # still cannot reserve, so still nothing issued
    assert store.take() == 2  # never used: its reservation failed
    assert SequenceStore(path, block=2).take() == 4


CHILD = """
import sys
from thingsdk.storage import SequenceStore
store = SequenceStore(sys.argv[1], block=int(sys.argv[2]))
while True:
    print(store.take(), flush=True)  # printed = used
"""


def test_sequence_numbers_survive_sigkill(tmp_path):
    path = tmp_path / "seq"
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    used = []
    for _ in range(5):
        block = rng.choice([1, 3, 16])
        with subprocess.Popen([sys.executable, "-c", CHILD, str(path), str(block)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) as child:
            first = child.stdout.readline()  # it has started issuing
            time.sleep(rng.uniform(0, 0.2))
            child.send_signal(signal.SIGKILL)
            rest, err = child.stdout.read(), child.stderr.read()  # buffered: not communicate()
        assert child.returncode == -signal.SIGKILL, err
        run = [int(line) for line in (first + rest).splitlines()]
        assert run == list(range(run[0], run[0] + len(run))), f"seed {seed}"
        assert not used or run[0] > max(used), f"seed {seed}: reused a sequence number"
        used += run
    assert SequenceStore(path).take() > max(used)
