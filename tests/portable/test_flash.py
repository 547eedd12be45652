"""The firmware's flash state store (firmware/lib/flash.py): the StateFolder contract, crash safety."""

import binascii
import os
import struct

import flash
from check import raises, scratch
from thingsdk.core import cbor


def _sealed(body):
    """body as the store writes it: with its trailer (length, CRC-32)."""
    return body + struct.pack(">II", len(body), binascii.crc32(body) & 0xFFFFFFFF)


def _fresh():
    """A new, empty folder for one test."""
    return scratch("flash-test-") + "/state"


def _rmtree(path):
    for name in os.listdir(path):
        child = path + "/" + name
        if os.stat(child)[0] & 0x4000:
            _rmtree(child)
        else:
            os.remove(child)
    os.rmdir(path)


def _scenario(fn):
    root = _fresh()
    try:
        fn(root)
    finally:
        _rmtree(root.rsplit("/", 1)[0])


def _bytes(path):
    with open(path, "rb") as f:
        return f.read()


def _write(path, data):
    with open(path, "wb") as f:
        f.write(data)


class _FatOs:
    """The os module as a FAT volume behaves: no rename onto an existing file."""

    def __init__(self, real):
        self.real = real

    def __getattr__(self, name):
        return getattr(self.real, name)

    def rename(self, src, dst):
        try:
            self.real.stat(dst)
        except OSError:
            return self.real.rename(src, dst)
        raise OSError(17)


class _FailingOs(_FatOs):
    """An os whose next `fails` renames fail, as a flash write error would."""

    def __init__(self, real, fails):
        super().__init__(real)
        self.fails = fails

    def rename(self, src, dst):
        if self.fails:
            self.fails -= 1
            raise OSError(5)
        return self.real.rename(src, dst)


def _with_os(fake, fn):
    real = flash.os
    flash.os = fake
    try:
        fn()
    finally:
        flash.os = real


def test_state_round_trips_in_the_state_folder_layout():
    def run(root):
        state = flash.FlashState(root)
        assert sorted(os.listdir(root)) == ["from-owner", "needs", "outbox"]
        assert state.load("ledger") is None and state.load("ledger", {}) == {}
        state.save("ledger", {"spent": 1250, "orders": [1, 2]})
        assert state.load("ledger") == {"spent": 1250, "orders": [1, 2]}
        assert state.mandate() is None
        state.save_mandate(b"\xd2token")
        assert state.mandate() == b"\xd2token"
        state.save_record({"need": b"\x02\xff", "state": "placed"})
        state.save_record({"need": b"\x01", "state": "asked"})
        state.save_record({"need": b"\x01", "state": "approved"})
        assert state.records() == [{"need": b"\x01", "state": "approved"},
                                   {"need": b"\x02\xff", "state": "placed"}]
        assert sorted(os.listdir(root + "/needs")) == ["01.cbor", "02ff.cbor"]
        state.drop_record(b"\x01")
        state.drop_record(b"\x01")  # already gone: nothing to do
        assert state.records() == [{"need": b"\x02\xff", "state": "placed"}]
        state.keep_sealed(b"\xaa", 100, b"sealed-a")
        state.keep_sealed(b"\xbb", 200, b"sealed-b")
        assert state.sealed(b"\xaa", 100) == b"sealed-a" and state.sealed(b"\xaa", 101) is None
        assert sorted(os.listdir(root + "/outbox")) == ["aa-100.cose", "bb-200.cose"]
        state.prune_sealed(100)
        assert state.sealed(b"\xaa", 100) is None and state.sealed(b"\xbb", 200) == b"sealed-b"
        _write(root + "/from-owner/2-approval", b"second")
        _write(root + "/from-owner/1-mandate", b"first")
        _write(root + "/from-owner/.partial", b"ignored")
        drops = state.owner_drops()
        assert drops == [(root + "/from-owner/1-mandate", b"first"),
                         (root + "/from-owner/2-approval", b"second")]
        state.done_with(drops[0][0])
        assert [d[1] for d in state.owner_drops()] == [b"second"]
        assert state.corrupt == 0

        again = flash.FlashState(root)  # after a reboot
        assert again.load("ledger") == {"spent": 1250, "orders": [1, 2]}
        assert again.mandate() == b"\xd2token"
        assert again.records() == [{"need": b"\x02\xff", "state": "placed"}]
        assert again.sealed(b"\xbb", 200) == b"sealed-b"
    _scenario(run)


def test_a_write_cut_by_a_power_loss_leaves_the_old_or_the_new_content():
    def run(root):
        state = flash.FlashState(root)
        state.save("facts", {"v": 1})
        good = _bytes(root + "/facts.cbor")
        state.save("facts", {"v": 2})
        new = _bytes(root + "/facts.cbor")
        # Cut while writing the .tmp: the old file stands; the torn .tmp is never taken.
        _write(root + "/facts.cbor", good)
        _write(root + "/facts.cbor.tmp", new[:-3])
        assert state.load("facts") == {"v": 1}
        os.remove(root + "/facts.cbor")
        assert state.load("facts", "none") == "none"
        assert "facts.cbor.tmp" not in os.listdir(root) and state.corrupt == 0
        # Cut between removing the old file and renaming (FAT): the complete .tmp is taken.
        _write(root + "/facts.cbor.tmp", new)
        assert state.load("facts") == {"v": 2}
        assert "facts.cbor" in os.listdir(root) and "facts.cbor.tmp" not in os.listdir(root)
        # The same for records, sealed messages and the mandate.
        state.save_record({"need": b"\x07", "n": 1})
        os.rename(root + "/needs/07.cbor", root + "/needs/07.cbor.tmp")
        assert state.records() == [{"need": b"\x07", "n": 1}]
        state.keep_sealed(b"\x01", 50, b"msg")
        os.rename(root + "/outbox/01-50.cose", root + "/outbox/01-50.cose.tmp")
        assert state.sealed(b"\x01", 50) == b"msg"
        state.save_mandate(b"m")
        os.rename(root + "/mandate.cwt", root + "/mandate.cwt.tmp")
        assert state.mandate() == b"m"
        # A dropped record does not come back from a stale .tmp, nor an expired message.
        _write(root + "/needs/07.cbor.tmp", _bytes(root + "/needs/07.cbor"))
        state.drop_record(b"\x07")
        assert state.records() == []
        _write(root + "/outbox/01-50.cose.tmp", b"x")
        state.prune_sealed(60)
        assert os.listdir(root + "/outbox") == []
    _scenario(run)


def test_writes_work_where_rename_will_not_replace_a_file():
    def run(root):
        state = flash.FlashState(root, block=2)

        def writes():
            for v in range(3):
                state.save("facts", {"v": v})
                state.save_record({"need": b"\x01", "v": v})
            assert [state.sequence.take() for _ in range(5)] == [0, 1, 2, 3, 4]
            for n in range(40):
                state.audit.append({"n": n})
        _with_os(_FatOs(os), writes)
        assert state.load("facts") == {"v": 2}
        assert state.records() == [{"need": b"\x01", "v": 2}]
        assert flash.FlashState(root, block=2).sequence.take() == 6
        assert [r["n"] for r in state.audit.records()][-1] == 39
    _scenario(run)


def test_corrupt_data_reads_as_missing_and_is_counted():
    def run(root):
        state = flash.FlashState(root)
        state.save("ledger", {"spent": 5})
        state.save_record({"need": b"\x01"})
        state.save_record({"need": b"\x02"})
        state.keep_sealed(b"\x03", 9, b"sealed")
        for path in (root + "/ledger.cbor", root + "/needs/01.cbor", root + "/outbox/03-9.cose"):
            data = bytearray(_bytes(path))
            data[1] ^= 0x40
            _write(path, bytes(data))
        assert state.load("ledger", "default") == "default"
        assert state.records() == [{"need": b"\x02"}]
        assert state.sealed(b"\x03", 9) is None
        assert state.corrupt == 3
        # A CRC-valid file that is not CBOR is corrupt too.
        _write(root + "/ledger.cbor", _sealed(b"\xff"))
        assert state.load("ledger") is None and state.corrupt == 4
    _scenario(run)


def test_sequence_numbers_are_reserved_in_blocks_and_never_reused():
    def run(root):
        state = flash.FlashState(root, block=4)
        seen = []
        checkpoints = []
        for _ in range(9):
            seen.append(state.sequence.take())
            checkpoint = cbor.loads(flash._unseal(_bytes(root + "/seq")))
            if checkpoint not in checkpoints:
                checkpoints.append(checkpoint)
        assert seen == list(range(9))
        assert checkpoints == [4, 8, 12]  # one write per block of 4
        assert flash.FlashState(root, block=4).sequence.take() == 12  # after a reboot: seq 16
        # A checkpoint that cannot be written issues no number; the next take reloads from flash
        # (here the complete .tmp of 20: both renames failed, the old file was removed between).
        state = flash.FlashState(root, block=4)
        _with_os(_FailingOs(os, 2), lambda: raises(OSError, state.sequence.take))
        assert os.listdir(root).count("seq") == 0
        assert state.sequence.take() == 20
        # A power cut between removing seq and renaming its .tmp (FAT) keeps the checkpoint.
        os.rename(root + "/seq", root + "/seq.tmp")
        assert flash.FlashState(root, block=4).sequence.take() == 24
    _scenario(run)


def test_a_corrupt_sequence_checkpoint_stops_the_device():
    def run(root):
        state = flash.FlashState(root)
        state.sequence.take()
        good = _bytes(root + "/seq")
        for bad in (good[:-1], b"", good[:-4] + b"\x00\x00\x00\x00",
                    _sealed(cbor.dumps(-1)), _sealed(cbor.dumps("64"))):
            _write(root + "/seq", bad)
            exc = raises(flash.CheckpointError, flash.FlashState, root)
            assert "seq" in str(exc)
    _scenario(run)


def test_audit_log_is_framed_and_cuts_a_torn_tail():
    def run(root):
        state = flash.FlashState(root)
        assert state.audit.records() == []
        state.audit.append({"at": 1, "buy": "filter"})
        state.audit.append({"at": 2, "mandate": 3})
        data = _bytes(root + "/audit.log")
        body = cbor.dumps({"at": 1, "buy": "filter"})
        assert data.startswith(struct.pack(">II", len(body), _crc(body)) + body)
        # A power cut in the middle of an append: the torn record is not read, then cut off.
        torn = struct.pack(">II", 20, 0) + b"partial"
        _write(root + "/audit.log", data + torn)
        assert state.audit.records() == [{"at": 1, "buy": "filter"}, {"at": 2, "mandate": 3}]
        rebooted = flash.FlashState(root)
        rebooted.audit.append({"at": 3})
        assert rebooted.audit.records() == [{"at": 1, "buy": "filter"}, {"at": 2, "mandate": 3},
                                            {"at": 3}]
        assert _bytes(root + "/audit.log").startswith(data)
        assert len(_bytes(root + "/audit.log")) == len(data) + 8 + len(cbor.dumps({"at": 3}))
        # A complete record that fails its CRC is damage: skipped and counted, appends go on.
        bad = bytearray(_bytes(root + "/audit.log"))
        bad[10] ^= 1
        _write(root + "/audit.log", bytes(bad))
        assert state.audit.records() == [{"at": 2, "mandate": 3}, {"at": 3}]
        assert state.audit.damaged == 1
        state.audit.append({"at": 4})
        assert state.audit.records() == [{"at": 2, "mandate": 3}, {"at": 3}, {"at": 4}]
        assert _bytes(root + "/audit.log").startswith(bytes(bad))
        raises(ValueError, state.audit.append, {"big": b"x" * 9000})
    _scenario(run)


def test_audit_log_keeps_the_newest_records_within_its_bound():
    def run(root):
        state = flash.FlashState(root, audit_limit=1024)
        for n in range(300):
            state.audit.append({"n": n, "pad": b"-" * 20})
            if n == 150:
                state = flash.FlashState(root, audit_limit=1024)  # a reboot on the way
        kept = [r["n"] for r in state.audit.records()]
        assert kept == list(range(300 - len(kept), 300))
        sizes = [os.stat(root + "/" + name)[6] for name in ("audit.log", "audit.old")]
        assert 1024 // 2 < sum(sizes) <= 1024 and min(sizes) > 0
    _scenario(run)


def _crc(data):
    import binascii

    return binascii.crc32(data) & 0xFFFFFFFF
