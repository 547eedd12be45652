"""The `thingsdk` command: keygen and inspect, as a user runs them."""

import os
import stat
import subprocess
import sys

import pytest

from samples import TS, example_bodies
from thingsdk import codec
from thingsdk.cli import main
from thingsdk.core import envelope, messages
from thingsdk.crypto import Ed25519Signer, load_signer

VENDOR_KID = bytes.fromhex("a04be1f2c3d49587")


@pytest.fixture
def keys(tmp_path, capsys):
    assert main(["keygen", "--out", str(tmp_path / "keys"), "--name", "fridge"]) == 0
    out = capsys.readouterr().out
    return tmp_path / "keys", out


def test_keygen_writes_a_private_key_only_its_owner_can_read(keys):
    folder, out = keys
    mode = stat.S_IMODE(os.stat(folder / "fridge.key").st_mode)
    assert mode == 0o600
    signer = load_signer(folder / "fridge.key")
    assert "key id       " + signer.kid.hex() in out
    assert "public hex   " + signer.public_key.hex() in out
    assert (folder / "fridge.pub").read_text().startswith("-----BEGIN PUBLIC KEY-----")


def test_keygen_refuses_to_overwrite(keys, capsys):
    folder, _ = keys
    assert main(["keygen", "--out", str(folder), "--name", "fridge"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--force" in err


def sealed_order(signer, ts=TS):
    return envelope.seal(messages.ORDER, example_bodies()[messages.ORDER], signer, VENDOR_KID, 17,
                         ts, b"\x11" * 16, codec, ttl=600)


def test_inspect_checks_signature_and_shows_the_header(keys, tmp_path, capsys):
    folder, _ = keys
    signer = load_signer(folder / "fridge.key")
    msg = tmp_path / "order.cose"
    msg.write_bytes(sealed_order(signer))
    assert main(["inspect", str(msg), "--key", str(folder / "fridge.pub"), "--now", str(TS + 1)]) == 0
    out = capsys.readouterr().out
    assert "signature  valid: signed by key " + signer.kid.hex() in out
    assert "message      order (type 4), protocol version 1" in out
    assert "seq        17" in out and "to         " + VENDOR_KID.hex() in out
    assert "18([" in out and "'WF-300'" in out.replace('"', "'")


def test_inspect_flags_tampering_wrong_keys_and_expiry(keys, capsys):
    folder, _ = keys
    signer = load_signer(folder / "fridge.key")
    data = bytearray(sealed_order(signer))
    data[-1] ^= 1
    assert main(["inspect", bytes(data).hex(), "--key", signer.public_key.hex(),
                 "--now", str(TS)]) == 1
    assert "INVALID (bad-signature)" in capsys.readouterr().out
    other = Ed25519Signer.generate().public_key.hex()
    assert main(["inspect", sealed_order(signer).hex(), "--key", other, "--now", str(TS)]) == 1
    assert "INVALID (unknown-key)" in capsys.readouterr().out
    assert main(["inspect", sealed_order(signer).hex(), "--now", str(TS + 3600)]) == 1
    out = capsys.readouterr().out
    assert "not checked" in out and "EXPIRED 3000 s ago" in out


def test_inspect_errors_are_one_line(capsys, tmp_path):
    assert main(["inspect", "zz-not-hex"]) == 2
    assert main(["inspect", "ff00"]) == 2
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\xd2\x84\x40")
    assert main(["inspect", str(junk)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3 and all(line.startswith("thingsdk inspect: error: ") for line in err)


def test_installed_command_runs():
    proc = subprocess.run([sys.executable, "-m", "thingsdk.cli", "--help"], capture_output=True,
                          text=True, check=True)
    assert "keygen" in proc.stdout and "inspect" in proc.stdout


def test_a_private_key_others_may_read_is_refused_unless_allowed(tmp_path, monkeypatch, capsys):
    assert main(["keygen", "--out", str(tmp_path), "--name", "owner"]) == 0
    key = tmp_path / "owner.key"
    assert load_signer(key).kid  # as written: mode 0600
    key.chmod(0o644)
    with pytest.raises(ValueError) as caught:
        load_signer(key)
    assert str(caught.value) == ("%s: a private key that others may read (mode 0644): chmod 600 "
                                 "it, or set THINGSDK_ALLOW_SHARED_KEYS=1 to use it anyway" % key)
    monkeypatch.setenv("THINGSDK_ALLOW_SHARED_KEYS", "1")
    assert load_signer(key).kid


@pytest.mark.parametrize("content", [b"not a key at all\n", b"-----BEGIN PRIVATE KEY-----\n!!\n"])
def test_a_garbage_key_file_is_named(tmp_path, content):
    key = tmp_path / "device.key"
    key.write_bytes(content)
    key.chmod(0o600)
    with pytest.raises(ValueError) as caught:
        load_signer(key)
    assert str(caught.value).startswith("%s: not a usable private key (" % key)
