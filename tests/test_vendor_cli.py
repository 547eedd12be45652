"""`thingsdk vendor register|revoke|serve` as a user runs them: output, errors, exit codes."""

import subprocess
import sys

import pytest

from test_vendor import EXAMPLE
from thingsdk.cli import main
from thingsdk.crypto import Ed25519Signer, save_keypair
from thingsdk.seller.store import Store


@pytest.fixture
def keys(tmp_path):
    device, owner = Ed25519Signer.generate(), Ed25519Signer.generate()
    save_keypair(device, tmp_path / "device.key", tmp_path / "device.pub")
    return device, owner


def test_help_is_everywhere(capsys):
    for argv in (["vendor", "--help"], ["vendor", "serve", "--help"],
                 ["vendor", "register", "--help"], ["vendor", "revoke", "--help"]):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 0
        assert "usage: thingsdk vendor" in capsys.readouterr().out


def test_register_then_revoke(keys, tmp_path, capsys):
    device, owner = keys
    db = str(tmp_path / "vendor.db")
    assert main(["vendor", "register", "--db", db, "--device-pub", str(tmp_path / "device.pub"),
                 "--owner-pub", owner.public_key.hex()]) == 0
    assert "registered   device %s" % device.kid.hex() in capsys.readouterr().out
    assert main(["vendor", "revoke", "--db", db, "--device", device.kid.hex()]) == 0
    assert "revoked      device %s" % device.kid.hex() in capsys.readouterr().out
    stored = Store(db).device(device.kid)
    assert stored.revoked and stored.owner_key == owner.public_key


def test_errors_are_one_line_and_a_non_zero_exit(keys, tmp_path, capsys):
    device, _ = keys
    db = str(tmp_path / "vendor.db")
    assert main(["vendor", "revoke", "--db", db, "--device", device.kid.hex()]) == 2
    assert capsys.readouterr().err == "thingsdk vendor: error: no device %s in %s\n" % (
        device.kid.hex(), db)
    assert main(["vendor", "register", "--db", db, "--device-pub", "00" * 31,
                 "--owner-pub", "00" * 32]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    broken = tmp_path / "shop.toml"
    broken.write_text(EXAMPLE.read_text().replace("stock = 500", "stock = -1"))
    assert main(["vendor", "serve", "--broker", "mqtt://127.0.0.1:1", "--db", db,
                 "--catalog", str(broken), "--key", str(tmp_path / "device.key")]) == 2
    err = capsys.readouterr().err
    assert err == "thingsdk vendor: error: %s: skus.WF-300.stock: must be 0 or more\n" % broken


def test_a_database_that_cannot_be_opened_is_said_in_one_line(keys, tmp_path, capsys):
    device, _ = keys
    bad = tmp_path / "vendor.db"
    bad.write_bytes(b"not a database, only text: " * 8)
    for db, says in ((str(bad), "file is not a database"),
                     ("postgresql://127.0.0.1:1/shop", "Connection refused")):
        assert main(["vendor", "revoke", "--db", db, "--device", device.kid.hex()]) == 2
        err = capsys.readouterr().err
        assert err.startswith("thingsdk vendor: error: database %s: " % db), err
        assert says in err and err.count("\n") == 1, err
    assert bad.read_bytes() == b"not a database, only text: " * 8  # left as it was
    # A SQLite vendor does not load psycopg (PostgreSQL's driver) to say so.
    probe = ("import sys; from thingsdk.cli import main; main(['vendor', 'revoke', '--db', %r, "
             "'--device', %r]); print('psycopg' in sys.modules)" % (str(bad), device.kid.hex()))
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.stdout == "False\n" and "file is not a database" in done.stderr
