"""The audit log keeps every record through power cuts, and never cuts off what it cannot read."""

import os
import subprocess
import sys
import textwrap

import pytest

from thingsdk import codec
from thingsdk.audit import AuditLog


def test_records_come_back_in_order(tmp_path):
    log = AuditLog(tmp_path / "audit.log")
    assert log.records() == [] and log.state() == "intact"
    for i in range(5):
        log.append({"n": i, "action": "wait", "text": "Filter has ~%d days left." % (30 - i)})
    assert [r["n"] for r in AuditLog(tmp_path / "audit.log").records()] == list(range(5))
    assert os.stat(tmp_path / "audit.log").st_mode & 0o777 == 0o600


@pytest.mark.parametrize("cut", [1, 4, 8, 9, 20])
def test_a_torn_last_frame_is_skipped_then_cut_off(tmp_path, cut):
    path = tmp_path / "audit.log"
    log = AuditLog(path)
    log.append({"n": 0})
    log.append({"n": 1, "pad": "x" * 30})
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(size - cut)
    assert log.state() == "torn" and log.records() == [{"n": 0}]
    log.append({"n": 2})
    assert log.records() == [{"n": 0}, {"n": 2}] and log.state() == "intact"


def test_a_damaged_record_is_skipped_and_the_log_goes_on(tmp_path):
    path = tmp_path / "audit.log"
    log = AuditLog(path)
    for i in range(5):
        log.append({"n": i})
    data = bytearray(path.read_bytes())
    second = 8 + len(codec.dumps({"n": 0}))
    data[second + 9] ^= 0xFF  # the body of record 1
    path.write_bytes(bytes(data))
    assert log.records() == [{"n": 0}, {"n": 2}, {"n": 3}, {"n": 4}]
    assert log.damaged() == 1 and log.state() == "intact"
    log.append({"n": 5})  # the device keeps deciding: the damaged bytes stay, the new one follows
    assert path.read_bytes().startswith(bytes(data))
    assert log.records() == [{"n": 0}, {"n": 2}, {"n": 3}, {"n": 4}, {"n": 5}]


def test_a_damaged_length_is_read_past_not_taken_for_a_torn_tail(tmp_path):
    path = tmp_path / "audit.log"
    log = AuditLog(path)
    for i in range(4):
        log.append({"n": i})
    data = bytearray(path.read_bytes())
    second = 8 + len(codec.dumps({"n": 0}))
    data[second:second + 4] = (10 ** 6).to_bytes(4, "big")  # claims more than the file holds
    path.write_bytes(bytes(data))
    assert log.records() == [{"n": 0}, {"n": 2}, {"n": 3}] and log.damaged() == 1
    log.append({"n": 4})  # not cut off as if torn: the records after the damage stay
    assert log.records() == [{"n": 0}, {"n": 2}, {"n": 3}, {"n": 4}]


def test_killed_writer_loses_nothing_it_acknowledged(tmp_path):
    """A child appends and prints each record after append returns; SIGKILL it mid-stream."""
    path = tmp_path / "audit.log"
    script = textwrap.dedent("""
        import sys
        from thingsdk.audit import AuditLog
        log = AuditLog(sys.argv[1])
        n = len(log.records())
        while True:
            log.append({"n": n, "pad": "y" * (n % 50)})
            print(n, flush=True)
            n += 1
    """)
    acknowledged = -1
    for _ in range(3):
        proc = subprocess.Popen([sys.executable, "-c", script, str(path)], stdout=subprocess.PIPE,
                                text=True)
        for _ in range(20):
            acknowledged = int(proc.stdout.readline())
        proc.kill()
        proc.wait()
        proc.stdout.close()
        numbers = [r["n"] for r in AuditLog(path).records()]
        assert numbers[: acknowledged + 1] == list(range(acknowledged + 1))
        assert numbers == list(range(len(numbers)))
