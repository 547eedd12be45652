"""`thingsdk provision`, `status` and `owner cancel`: a bundle provisioned with real keys and TLS
files runs as `thingsdk device run` on mosquitto (mutual TLS, the thingsdk ACL) against the
reference vendor on one accelerated clock; `status` reads its state folder while it runs; the
owner cancels one order inside the mandate's cancel window and is refused for another outside it.
"""

import os
import re
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from broker import VENDOR, wait_for

from thingsdk import codec, topics
from thingsdk.cli import main
from thingsdk.core import lifecycle
from thingsdk.core import mandate as md
from thingsdk.crypto import Ed25519Verifier, load_signer
from thingsdk.device import config
from thingsdk.device.config import AcceleratedClock
from thingsdk.device.state import StateFolder
from thingsdk.mqtt import Backoff, Transport
from thingsdk.seller import catalog
from thingsdk.seller.serve import Server
from thingsdk.seller.service import Service
from thingsdk.seller.store import Store

ROOT = Path(__file__).resolve().parent.parent
SPEED = 3000  # simulated seconds per real second
TIMEOUT = 40.0
CATALOG = """
[vendor]
offer_hours = 24
[skus.WF-300]
title = "Fridge water filter WF-300"
category = "water-filter"
price = [2450, "EUR"]
shipping = [498, "EUR"]
lead_hours = 24
stock = 50
[skus.IC-20]
title = "Ice maker filter IC-20"
category = "ice-filter"
price = [1290, "EUR"]
shipping = [498, "EUR"]
lead_hours = 24
stock = 50
[support]
steps = ["We opened a case and will get back to you within one working day."]
"""
# 1000 ml used at 200 ml an hour: the device orders as soon as it knows the rate.
SLOT = ("unit=ml,capacity=1000,lead_time=4h,lead_spread=2h,min_interval=600,"
        "daily_use=4800,noise=0,variability=0")


@pytest.fixture
def keys(tmp_path, capsys):
    for name in ("owner", "vendor", "fridge"):
        assert main(["keygen", "--out", str(tmp_path), "--name", name]) == 0
    capsys.readouterr()
    return {name: load_signer(tmp_path / (name + ".key")) for name in ("owner", "vendor", "fridge")}


def provision(tmp_path, *extra):
    return main(["provision", "--out", str(tmp_path / "fridge"), "--vendor-pub",
                 str(tmp_path / "vendor.pub"), "--owner-key", str(tmp_path / "owner.key"),
                 "--consumable", "slot=water-filter,sku=WF-300," + SLOT, *extra])


def test_provision_writes_a_bundle_device_run_can_use(tmp_path, keys, capsys):
    assert provision(tmp_path, "--broker", "mqtt://127.0.0.1:1883", "--budget", "60EUR/month",
                     "--consumable", "slot=ink,category=ink-black,unit=page,capacity=1000,"
                                     "sensor=flow,pin=17,pulses_per_litre=450") == 0
    out = capsys.readouterr().out
    bundle = tmp_path / "fridge"
    assert sorted(os.listdir(bundle)) == ["device.key", "device.pub", "device.toml",
                                          "mandate.cwt", "owner.pub", "vendor.pub"]
    assert stat.S_IMODE(os.stat(bundle / "device.key").st_mode) == 0o600
    device = load_signer(bundle / "device.key")
    assert device.kid != keys["fridge"].kid  # a fresh key
    assert "key id %s" % device.kid.hex() in out
    assert "thingsdk vendor register --db VENDOR.db --device-pub %s --owner-pub %s" % (
        bundle / "device.pub", bundle / "owner.pub") in out
    assert "thingsdk device run --config %s" % (bundle / "device.toml") in out
    mandate = md.verify((bundle / "mandate.cwt").read_bytes(),
                        Ed25519Verifier(keys["owner"].public_key), codec, device.kid,
                        int(time.time()))
    assert mandate.version == 1
    assert mandate.constraints == [("budget", {"cur": "EUR", "max": 6000, "period": "month"})]
    text = (bundle / "device.toml").read_text()
    assert 'sensor = {type = "simulated", daily_use = 4800, noise = 0, variability = 0}' in text
    assert 'sensor = {type = "flow", pin = 17, pulses_per_litre = 450}' in text
    assert "lead_time = 14400" in text
    # The first slot loads as the runtime's device (the flow meter needs a GPIO: not here).
    (bundle / "device.toml").write_text(text[:text.rindex("[[consumables]]")])
    loaded = config.load(bundle / "device.toml")
    assert loaded.kid == device.kid and loaded.vendor.kid == keys["vendor"].kid
    assert loaded.owner.kid == keys["owner"].kid and loaded.transport.port == 1883
    assert loaded.slots["water-filter"].consumable.lead_time == 4 * 3600


@pytest.mark.parametrize("extra, error", [
    (["--cert", "fridge.pub"], "a client certificate needs its key"),
    (["--consumable", "slot=x,unit=ml"], "needs slot, unit, capacity and a sku or category"),
    (["--consumable", "slot=x,sku=X,unit=ml,capacity=10,lead_time=soon"], "not a duration"),
    (["--budget", "lots"], "lacks a period"),
])
def test_provision_refuses_in_one_line_and_writes_nothing(tmp_path, keys, capsys, extra, error):
    extra = [str(tmp_path / x) if x.startswith("fridge.") else x for x in extra]
    assert provision(tmp_path, "--broker", "mqtt://127.0.0.1:1883", *extra) == 2
    err = capsys.readouterr().err
    assert err.startswith("thingsdk provision: error: ") and error in err and err.count("\n") == 1
    assert not (tmp_path / "fridge").exists()


def test_provision_checks_the_client_certificate_names_the_device(tmp_path, keys, pki, capsys):
    cert, key = pki.client("a04be1f2c3d49587")
    for extra in ([], ["--device-key", str(tmp_path / "fridge.key")]):
        assert provision(tmp_path, "--broker", "mqtts://127.0.0.1:8883", "--cert", cert,
                         "--key", key, *extra) == 2
        assert "the client certificate's CN is 'a04be1f2c3d49587': it must be the device's " \
               "key id" in capsys.readouterr().err
    assert not (tmp_path / "fridge").exists()
    (tmp_path / "garbage.pem").write_text("not a certificate")
    assert provision(tmp_path, "--broker", "mqtts://127.0.0.1:8883", "--cert",
                     str(tmp_path / "garbage.pem"), "--key", key, "--device-key",
                     str(tmp_path / "fridge.key")) == 2
    assert capsys.readouterr().err == ("thingsdk provision: error: client certificate %s: not a "
                                       "PEM certificate\n" % (tmp_path / "garbage.pem"))


def test_status_refuses_a_folder_that_is_no_state_folder(tmp_path, capsys):
    assert main(["status", "--state", str(tmp_path)]) == 2
    assert "is not a device's state folder" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []  # read-only: nothing created


def test_a_corrupt_sequence_checkpoint_is_one_line_naming_the_file(tmp_path, capsys):
    folder = tmp_path / "state"
    StateFolder(folder).sequence.take()
    (folder / "seq").write_bytes(b"\x00not a checkpoint")
    assert main(["status", "--state", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("thingsdk status: error: sequence checkpoint %s: " % (folder / "seq"))
    assert err.rstrip().endswith("restore that file from a backup of the state folder")
    assert err.count("\n") == 1  # no traceback
    assert (folder / "seq").read_bytes() == b"\x00not a checkpoint"  # never restarted at 0


# ---- a provisioned device at work --------------------------------------------------------------

def state_of(folder):
    return {r["slot"]: r for r in StateFolder(folder).records()}


def run_cli(*args):
    """The `thingsdk` command in a subprocess: (exit code, stdout, stderr)."""
    done = subprocess.run([sys.executable, "-m", "thingsdk.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=TIMEOUT)
    return done.returncode, done.stdout, done.stderr


def test_a_provisioned_fridge_orders_and_its_owner_cancels_inside_the_window_only(
        tmp_path, keys, broker, capsys):
    clock = AcceleratedClock(SPEED, time.time())
    kid = keys["fridge"].kid
    cert, key = broker.pki.client(topics.kid_hex(kid))
    assert provision(tmp_path, "--broker", broker.tls_url, "--ca", str(broker.pki.ca_file),
                     "--cert", cert, "--key", key, "--device-key", str(tmp_path / "fridge.key"),
                     "--consumable", "slot=ice-filter,sku=IC-20," + SLOT,
                     "--speed", str(SPEED), "--start", repr(clock.start), "--interval", "0.05",
                     "--vendor", keys["vendor"].kid.hex(), "--budget", "100EUR/month",
                     "--cancel-window", "2h") == 0
    bundle = tmp_path / "fridge"
    assert stat.S_IMODE(os.stat(bundle / "device-tls.key").st_mode) == 0o600
    db = str(tmp_path / "vendor.db")
    assert main(["vendor", "register", "--db", db, "--device-pub", str(bundle / "device.pub"),
                 "--owner-pub", str(bundle / "owner.pub")]) == 0
    capsys.readouterr()
    store = Store(db)
    vendor_tls = dict(zip(("cert_file", "key_file"), broker.pki.client(VENDOR)),
                      ca_file=str(broker.pki.ca_file))
    server = Server(Service(Store(db), catalog.parse(CATALOG), keys["vendor"], ttl=12 * 3600),
                    Transport(broker.tls_url, "vendor-1", backoff=Backoff(0.05, 0.5),
                              **vendor_tls), clock=clock)
    vendor = threading.Thread(target=server.run)
    vendor.start()
    device = None
    try:
        assert server.ready.wait(TIMEOUT)
        with open(tmp_path / "device.log", "wb") as log:
            device = subprocess.Popen([sys.executable, "-m", "thingsdk.cli", "device", "run",
                                       "--config", str(bundle / "device.toml")],
                                      cwd=ROOT, stdout=log, stderr=log)
        state = bundle / "state"

        def placed():
            needs = state_of(state)
            return len(needs) == 2 and all(r["state"] == lifecycle.PLACED for r in needs.values())

        assert wait_for(placed, TIMEOUT), (state_of(state), (tmp_path / "device.log").read_text())
        needs = state_of(state)
        water, ice = needs["water-filter"], needs["ice-filter"]

        code, out, _ = run_cli("status", "--config", str(bundle / "device.toml"))
        assert code == 0
        assert "device       %s" % kid.hex() in out
        for slot in ("water-filter", "ice-filter"):
            assert re.search(r"\n  %s +\d+/1000 ml, [\d.]+ ml/day, empty in .*, 1 on order\n"
                             % slot, out), out
        for rec, total in ((water, "29.48 EUR"), (ice, "17.88 EUR")):
            line = next(x for x in out.splitlines() if x.startswith("  " + rec["need"].hex()))
            assert "placed" in line and "order " + rec["oid"].hex() in line and total in line
            assert "vendor " + keys["vendor"].kid.hex() in line and "may cancel until" in line
        assert "mandate      version 1" in out and "signature    valid" in out
        assert "decisions         buy 2" in out

        # Inside the window: the device cancels at the vendor, which confirms; with the owner's
        # key only.
        assert main(["owner", "cancel", water["oid"].hex(), "--config",
                     str(bundle / "device.toml"), "--owner-key", str(tmp_path / "vendor.key")]) == 2
        assert "is not the key of the device's owner" in capsys.readouterr().err
        # ... published on the device's from-owner topic, as its owner on the broker
        owner_cert, owner_tls_key = broker.pki.owner(load_signer(tmp_path / "owner.key").kid,
                                                     [kid])
        code, out, err = run_cli("owner", "cancel", water["oid"].hex()[:10], "--config",
                                 str(bundle / "device.toml"), "--owner-key",
                                 str(tmp_path / "owner.key"), "--broker", broker.tls_url,
                                 "--ca", str(broker.pki.ca_file), "--cert", owner_cert,
                                 "--key", owner_tls_key)
        assert code == 0, err
        assert "cancel       order %s" % water["oid"].hex() in out
        assert "published on %s" % topics.from_owner(kid) in out

        def vendor_status(oid):
            return next(o["status"] for o in store.orders(kid) if o["id"] == oid)

        assert wait_for(lambda: vendor_status(water["oid"]) == "cancelled", TIMEOUT)
        assert wait_for(lambda: state_of(state)["water-filter"]["state"] == lifecycle.CLOSED)
        assert state_of(state)["water-filter"]["reason"] == "changed-mind"
        assert os.listdir(state / "from-owner") == []

        # Outside the window (the other order, once its window has passed): refused, nothing sent.
        assert wait_for(lambda: clock() > ice["cancel_until"] + 60, TIMEOUT)
        code, out, err = run_cli("owner", "cancel", ice["need"].hex(), "--config",
                                 str(bundle / "device.toml"), "--owner-key",
                                 str(tmp_path / "owner.key"))
        assert code == 2 and err.count("\n") == 1
        assert "the cancel window of order %s closed at" % ice["oid"].hex() in err
        assert "(2 hours after the vendor accepted it)" in err
        assert os.listdir(state / "from-owner") == []
        assert vendor_status(ice["oid"]) in ("accepted", "shipped")

        code, out, _ = run_cli("status", "--state", str(state), "--now", str(int(clock())))
        assert "device       %s" % kid.hex() in out  # the key id from the mandate held
        assert "%s buy, slot water-filter: changed-mind" % water["need"].hex() in out
        assert "signature    not checked" in out
        device.send_signal(signal.SIGTERM)
        assert device.wait(TIMEOUT) == 0
    finally:
        if device is not None and device.poll() is None:
            device.kill()
            device.wait()
        server.stop()
        vendor.join(TIMEOUT)
        store.close()


@pytest.mark.parametrize("name", ["consumables.cbor", "needs/0011.cbor"])
def test_a_damaged_state_file_is_one_line_naming_it_and_left_as_it_is(tmp_path, capsys, name):
    folder = tmp_path / "state"
    StateFolder(folder).sequence.take()
    damaged = b"\xa1\x01\x02\xff"  # a map, then a byte that belongs to nothing
    (folder / name).write_bytes(damaged)
    assert main(["status", "--state", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err == ("thingsdk status: error: %s: damaged (trailing bytes after the data item): "
                   "restore it from a backup of the state folder\n" % (folder / name))
    assert (folder / name).read_bytes() == damaged
