"""`thingsdk broker init|add`: the set-up it writes, run verbatim by a real mosquitto."""

import json
import os
import pwd
import re
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from broker import HOST, find_mosquitto, free_port, wait_for
from readme_walk import Walk
from thingsdk import codec, topics
from thingsdk.core import messages as m
from thingsdk.cli import main
from thingsdk.crypto import Ed25519Signer, load_signer, save_keypair
from thingsdk.mqtt import Backoff, MessageTooLarge, Transport
from thingsdk.seller.store import Store

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 10.0
NOT_AUTHORIZED = 0x87


@pytest.fixture
def keys(tmp_path):
    """Public key files of a vendor, two owners and three devices; name -> (path, kid hex)."""
    made = {}
    for name in ("vendor", "owner", "neighbour", "fridge", "printer", "doorbell"):
        signer = Ed25519Signer.generate()
        save_keypair(signer, tmp_path / (name + ".key"), tmp_path / (name + ".pub"))
        made[name] = (str(tmp_path / (name + ".pub")), signer.kid.hex())
    return made


def cn_of(path):
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    return cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value


def init(tmp_path, keys, port, capsys):
    setup = tmp_path / "broker"
    assert main(["broker", "init", str(setup), "--vendor-pub", keys["vendor"][0],
                 "--host", HOST, "--host", "localhost", "--port", str(port), "--bind", HOST,
                 "--workers", "2", "--user", pwd.getpwuid(os.getuid()).pw_name,
                 "--owner-pub", keys["owner"][0], "--device-pub", keys["fridge"][0],
                 "--device-pub", keys["printer"][0]]) == 0
    assert main(["broker", "add", str(setup), "--owner-pub", keys["neighbour"][0],
                 "--device-pub", keys["doorbell"][0]]) == 0
    return setup, capsys.readouterr().out


def test_init_and_add_write_certificates_named_by_key_id_and_the_rules(tmp_path, keys, capsys):
    setup, out = init(tmp_path, keys, 8883, capsys)
    fridge, owner, doorbell = keys["fridge"][1], keys["owner"][1], keys["doorbell"][1]
    assert cn_of(setup / ("device-%s.pem" % fridge)) == fridge
    assert cn_of(setup / ("owner-%s.pem" % owner)) == owner
    assert [cn_of(setup / ("vendor-%d.pem" % n)) for n in (1, 2)] == ["vendor-1", "vendor-2"]
    assert cn_of(setup / "admin.pem") == "admin"
    for key in ("ca.key", "server.key", "vendor-1.key", "device-%s.key" % fridge):
        assert stat.S_IMODE((setup / key).stat().st_mode) == 0o600
    conf = (setup / "mosquitto.conf").read_text()
    for line in ("require_certificate true", "use_identity_as_username true",
                 "use_username_as_clientid true", "set_tcp_nodelay true", "allow_anonymous false",
                 "max_packet_size 17408", "max_queued_messages 100000",
                 "plugin_opt_config_file %s" % (setup.resolve() / "dynamic-security.json")):
        assert line + "\n" in conf
    access = json.loads((setup / "dynamic-security.json").read_text())
    roles = {r["rolename"]: {(a["acltype"], a["topic"]) for a in r["acls"]}
             for r in access["roles"]}
    assert roles["device-" + fridge] == {
        ("publishClientSend", "thingsdk/v1/up/" + fridge),
        ("publishClientSend", "thingsdk/v1/presence/" + fridge),
        ("subscribeLiteral", "thingsdk/v1/down/" + fridge),
        ("publishClientReceive", "thingsdk/v1/down/" + fridge),
        ("publishClientSend", "thingsdk/v1/to-owner/" + fridge),
        ("subscribeLiteral", "thingsdk/v1/from-owner/" + fridge),
        ("publishClientReceive", "thingsdk/v1/from-owner/" + fridge)}
    owned = {topics.parse(t)[1].hex() for _, t in roles["owner-" + owner]}
    assert owned == {fridge, keys["printer"][1]}
    assert {t for _, t in roles["owner-" + keys["neighbour"][1]]} == {
        topics.uplink(bytes.fromhex(doorbell)), topics.downlink(bytes.fromhex(doorbell)),
        topics.presence(bytes.fromhex(doorbell)), topics.to_owner(bytes.fromhex(doorbell)),
        topics.from_owner(bytes.fromhex(doorbell))}
    assert access["defaultACLAccess"] == {"publishClientSend": False,
                                          "publishClientReceive": False, "subscribe": False,
                                          "unsubscribe": True}
    assert "start        mosquitto -c %s" % (setup / "mosquitto.conf") in out

    # Adding again is idempotent for the owner and keeps what it read.
    assert main(["broker", "add", str(setup), "--owner-pub", keys["owner"][0],
                 "--device-pub", keys["fridge"][0]]) == 0
    again = json.loads((setup / "dynamic-security.json").read_text())
    assert len(again["clients"]) == len(access["clients"]) and again["roles"] == access["roles"]

    # A front end of the owner's own: its certificate, a client of its own in the owner's role.
    assert main(["broker", "add", str(setup), "--owner-pub", keys["owner"][0],
                 "--front", "page"]) == 0
    assert cn_of(setup / ("owner-%s.page.pem" % owner)) == owner + ".page"
    fronted = json.loads((setup / "dynamic-security.json").read_text())
    client = {c["username"]: c for c in fronted["clients"]}[owner + ".page"]
    assert client["roles"] == [{"rolename": "owner-" + owner}]
    assert fronted["roles"] == access["roles"]


def test_the_written_conf_runs_and_confines_devices_owners_and_vendor(tmp_path, keys, capsys):
    if find_mosquitto() is None:
        pytest.fail("mosquitto is not installed (Debian: apt-get install mosquitto)")
    port = free_port()
    setup, _ = init(tmp_path, keys, port, capsys)
    log = tmp_path / "mosquitto.log"
    process = subprocess.Popen([find_mosquitto(), "-c", str(setup / "mosquitto.conf")],
                               stdout=subprocess.DEVNULL, stderr=log.open("wb"))
    made = []

    def connect(name, cn, **options):
        got = []
        stem = cn if cn.startswith("vendor-") else "%s-%s" % (name, cn)
        t = Transport("mqtts://%s:%d" % (HOST, port), cn, ca_file=str(setup / "ca.pem"),
                      cert_file=str(setup / (stem + ".pem")), key_file=str(setup / (stem + ".key")),
                      on_message=lambda topic, payload: got.append((topic, payload)),
                      backoff=Backoff(0.05, 0.4), **options)
        made.append(t)
        assert t.start().wait_connected(TIMEOUT)
        return t, got

    def answer(transport, topic_filter):
        ack = transport.subscribe(topic_filter)
        assert ack.wait(TIMEOUT)
        return ack.reasons

    try:
        fridge, doorbell = (bytes.fromhex(keys[k][1]) for k in ("fridge", "doorbell"))
        vendor, from_devices = connect("vendor", "vendor-1")
        assert answer(vendor, topics.vendor_uplinks()) == [1]
        device, to_device = connect("device", keys["fridge"][1], presence=topics.presence(fridge))
        assert answer(device, topics.downlink(fridge)) == [1]
        assert answer(device, topics.downlink(doorbell)) == [NOT_AUTHORIZED]
        owner, seen = connect("owner", keys["owner"][1])
        assert answer(owner, topics.uplink(fridge)) == [1]
        assert answer(owner, topics.uplink(doorbell)) == [NOT_AUTHORIZED]  # not its device
        assert answer(owner, topics.every(topics.UP)) == [NOT_AUTHORIZED]
        assert device.publish(topics.uplink(fridge), b"order").wait(TIMEOUT)
        assert wait_for(lambda: (topics.uplink(fridge), b"order") in from_devices, TIMEOUT)
        assert wait_for(lambda: (topics.uplink(fridge), b"order") in seen, TIMEOUT)
        denied = owner.publish(topics.downlink(fridge), b"forged offer")
        assert denied.wait(TIMEOUT) and denied.reasons == [NOT_AUTHORIZED]
        # Between a device and its owner: each way, only theirs.
        assert answer(owner, topics.to_owner(fridge)) == [1]
        assert answer(owner, topics.to_owner(doorbell)) == [NOT_AUTHORIZED]
        assert answer(device, topics.from_owner(fridge)) == [1]
        assert answer(device, topics.from_owner(doorbell)) == [NOT_AUTHORIZED]
        assert answer(vendor, topics.from_owner(fridge)) == [NOT_AUTHORIZED]
        assert device.publish(topics.to_owner(fridge), b"please approve").wait(TIMEOUT)
        assert wait_for(lambda: (topics.to_owner(fridge), b"please approve") in seen, TIMEOUT)
        assert owner.publish(topics.from_owner(fridge), b"approved").wait(TIMEOUT)
        assert wait_for(lambda: (topics.from_owner(fridge), b"approved") in to_device, TIMEOUT)
        for forged in (owner.publish(topics.from_owner(doorbell), b"approved"),
                       device.publish(topics.from_owner(fridge), b"approved by me")):
            assert forged.wait(TIMEOUT) and forged.reasons == [NOT_AUTHORIZED]

        # A device added while the broker runs: refused until `add --live` gives it its rules.
        kettle = Ed25519Signer.generate()
        save_keypair(kettle, tmp_path / "kettle.key", tmp_path / "kettle.pub")
        assert main(["broker", "add", str(setup), "--owner-pub", keys["owner"][0],
                     "--device-pub", str(tmp_path / "kettle.pub")]) == 0
        newcomer, _ = connect("device", kettle.kid.hex())
        assert answer(newcomer, topics.downlink(kettle.kid)) == [NOT_AUTHORIZED]
        assert answer(owner, topics.uplink(kettle.kid)) == [NOT_AUTHORIZED]
        assert main(["broker", "add", str(setup), "--owner-pub", keys["owner"][0],
                     "--device-pub", str(tmp_path / "kettle.pub"),
                     "--live", "mqtts://%s:%d" % (HOST, port)]) == 0
        assert answer(newcomer, topics.downlink(kettle.kid)) == [1]
        assert answer(owner, topics.uplink(kettle.kid)) == [1]  # its owner reads it too
        assert answer(owner, topics.uplink(doorbell)) == [NOT_AUTHORIZED]
        # Forty at once: the owner's rules no longer fit one control message of the broker's.
        fleet = [Ed25519Signer.generate() for _ in range(40)]
        extra = [arg for signer in fleet for arg in ("--device-pub", signer.public_key.hex())]
        assert main(["broker", "add", str(setup), "--owner-pub", keys["owner"][0], *extra,
                     "--live", "mqtts://%s:%d" % (HOST, port)]) == 0
        assert answer(owner, topics.presence(fleet[-1].kid)) == [1]
        # The broker takes no packet over the protocol's largest message, and says so in its
        # CONNACK: the transport refuses a bigger one instead of being dropped by the broker.
        with pytest.raises(MessageTooLarge, match="over the 17408-byte packets"):
            device.publish(topics.uplink(fridge), b"x" * 17400)
        assert device.publish(topics.uplink(fridge), b"x" * 16384).wait(TIMEOUT)
        assert device.connected and device.reconnects == 0
    finally:
        for transport in made:
            transport.close(timeout=1)
        process.terminate()
        process.wait(TIMEOUT)
    assert "Opening ipv4 listen socket on port %d" % port in log.read_text()


def test_broker_errors_are_one_line_naming_the_file(tmp_path, keys, capsys):
    setup, _ = init(tmp_path, keys, 8883, capsys)
    assert main(["broker", "init", str(setup), "--vendor-pub", keys["vendor"][0],
                 "--host", "localhost"]) == 2
    assert "%s exists and is not empty" % setup in capsys.readouterr().err
    assert main(["broker", "add", str(tmp_path / "nowhere"), "--owner-pub", keys["owner"][0],
                 "--device-pub", keys["fridge"][0]]) == 2
    assert "nowhere/ca.pem: no such file" in capsys.readouterr().err
    assert main(["broker", "add", str(setup), "--owner-pub", keys["fridge"][0],
                 "--device-pub", keys["fridge"][0]]) == 2
    assert "each needs its own key" in capsys.readouterr().err
    assert main(["broker", "add", str(setup), "--owner-pub", keys["owner"][0],
                 "--front", "../page"]) == 2
    assert "not '../page'" in capsys.readouterr().err
    nowhere = "mqtts://%s:%d" % (HOST, free_port())
    before = (setup / "dynamic-security.json").read_bytes()
    newcomer = Ed25519Signer.generate().public_key.hex()
    assert main(["broker", "add", str(setup), "--owner-pub", keys["owner"][0],
                 "--device-pub", newcomer, "--live", nowhere]) == 2
    assert capsys.readouterr().err == ("thingsdk broker: error: cannot reach the broker at %s: "
                                       "[Errno 111] Connection refused\n" % nowhere)
    assert (setup / "dynamic-security.json").read_bytes() == before  # nothing recorded
    (setup / "ca.key").write_text("not a key")
    assert main(["broker", "add", str(setup), "--owner-pub", keys["owner"][0],
                 "--device-pub", keys["fridge"][0]]) == 2
    err = capsys.readouterr().err
    assert err.startswith("thingsdk broker: error: %s: not a PEM private key" % (setup / "ca.key"))
    assert "Traceback" not in err and err.count("\n") == 1
    assert main(["broker", "init", str(tmp_path / "other"), "--vendor-pub", keys["vendor"][0],
                 "--host", "localhost", "--plugin", str(tmp_path / "none.so")]) == 2
    assert "--plugin %s: no such file" % (tmp_path / "none.so") in capsys.readouterr().err
    assert not (tmp_path / "other").exists()
    assert main(["broker", "init", str(tmp_path / "other"), "--vendor-pub", keys["vendor"][0],
                 "--host", "localhost", "--owner-pub", keys["owner"][0],
                 "--device-pub", keys["owner"][0]]) == 2
    assert "need keys of their own" in capsys.readouterr().err
    assert not (tmp_path / "other").exists()


def test_the_readme_walk_from_keys_to_an_approved_order_and_a_revoke(tmp_path, capsys):
    """The newcomer's path, as the README walks it: keygen, `broker init`, mosquitto on the
    written conf, provision (with a mandate that wants the owner's approval above 20.00 EUR),
    vendor register and serve, device run, each a process of its own; then the owner approves
    the device's request with `owner approve`, the vendor verifies that approval and accepts the
    order, `status` and `log` show it, and `vendor revoke` is heard by the device."""
    walk = Walk(tmp_path)
    kid = walk.kid
    assert "provision    %s: %s" % (walk.pub("fridge"), " ".join(walk.device_tls)) in \
        walk.init_said
    try:
        walk.mosquitto()
        walk.vendor()
        # the owner waits for the device's request on the broker, and answers there
        owner = walk.start("owner", walk.cli(
            "owner", "approve", "--broker", walk.url, "--owner-key", str(tmp_path / "owner.key"),
            "--device-pub", walk.pub("fridge"), *walk.tls("owner-" + walk.owner_kid),
            "--wait", "60"), "waiting for an approval request of device %s" % kid)
        walk.device()
        _approve_the_order_then_revoke(walk, capsys, owner)
    finally:
        walk.stop()
    said = walk.said()
    for name in ("vendor", "owner", "device"):
        connected = "connected to " if name != "owner" else "on "  # the owner's own words
        assert connected + "localhost:%d" % walk.port in said[name], said[name]
        assert "Traceback" not in said[name]
    assert re.search(r"(sent|queued) mandate [0-9a-f]+ \(\d+ B\)", said["device"]), said["device"]
    assert "as %s (" % kid in said["mosquitto"] and "as vendor-1 (" in said["mosquitto"]


def _approve_the_order_then_revoke(walk, capsys, owner):
    kid, state = walk.kid, walk.folder / "fridge" / "state"
    # The device publishes its request on its to-owner topic; the owner's `approve` shows it and
    # publishes the signed approval on the device's from-owner topic.
    assert owner.wait(60.0) == 0, walk.said("owner")
    asked = walk.said("owner")
    assert "for 29.48 EUR from Acme Home Supplies (vendor " in asked and "approve" in asked
    assert "published on thingsdk/v1/from-owner/%s" % kid in asked, asked
    assert re.search(r"sent approval-request [0-9a-f]+ to the owner \(\d+ B\)",
                     walk.said("device"))
    # ... and keeps it in its outbox too, readable by an owner without a broker
    requests = [path for path in (state / "outbox").glob("*.cose")
                if codec.loads(codec.loads(path.read_bytes()).value[2])[2] == m.APPROVAL_REQUEST]
    assert len(requests) == 1
    assert wait_for(lambda: [o["status"] for o in walk.orders()] == ["accepted"], 30.0), (
        walk.orders(), walk.said("vendor"))
    said = []

    def placed():  # as `status` shows the device's state: its order placed, the vendor's ref
        assert main(["status", "--config", str(walk.toml)]) == 0
        said.append(capsys.readouterr().out)
        return "placed, slot water-filter" in said[-1]

    assert wait_for(placed, 30.0), said[-1]
    assert "1 on order" in said[-1] and "29.48 EUR" in said[-1]
    assert main(["log", str(state / "audit.log")]) == 0
    log = capsys.readouterr().out
    assert "approved" in log and "Acme Home Supplies delivers in 3 days" in log, log
    assert main(["vendor", "revoke", "--db", walk.db, "--device", kid]) == 0
    assert wait_for(lambda: "the vendor refused this device: device-deregistered" in
                    walk.said("device"), 30.0), walk.said("device")




def test_a_new_mandate_goes_over_the_broker_to_the_device_and_on_to_the_vendor(tmp_path, capsys):
    """`mandate send --broker`: the owner's new mandate (version 2) is sealed with the owner's
    key and published on the device's from-owner topic; the running device takes it in place of
    version 1 and passes it on to the vendor. One that is not this owner's for this device is
    refused before anything is sent."""
    walk = Walk(tmp_path)
    owner_key, kid = str(tmp_path / "owner.key"), bytes.fromhex(walk.kid)
    new = tmp_path / "mandate-v2.cwt"
    assert main(["mandate", "create", "--out", str(new), "--owner-key", owner_key,
                 "--device-pub", walk.pub("fridge"), "--version", "2",
                 "--budget", "80.00EUR/month", "--approval-above", "50.00EUR"]) == 0
    assert main(["keygen", "--out", str(tmp_path), "--name", "kettle"]) == 0
    elsewhere = tmp_path / "kettle.cwt"
    assert main(["mandate", "create", "--out", str(elsewhere), "--owner-key", owner_key,
                 "--device-pub", walk.pub("kettle"), "--version", "3"]) == 0
    capsys.readouterr()
    send = ["--owner-key", owner_key, "--device-pub", walk.pub("fridge"), "--broker", walk.url,
            *walk.tls("owner-" + walk.owner_kid)]
    try:
        walk.mosquitto()
        walk.vendor()
        walk.device()
        assert Store(walk.db).device(kid).mandate_version == 1
        assert main(["mandate", "send", str(elsewhere), *send]) == 2
        err = capsys.readouterr().err
        assert "is not a mandate of this owner for device %s" % walk.kid in err, err
        assert main(["mandate", "send", str(new), *send]) == 0
        out = capsys.readouterr().out
        assert "published on thingsdk/v1/from-owner/%s" % walk.kid in out, out
        state = tmp_path / "fridge" / "state" / "mandate.cwt"
        assert wait_for(lambda: state.read_bytes() == new.read_bytes(), 30.0), walk.said()
        assert wait_for(lambda: Store(walk.db).device(kid).mandate_version == 2, 30.0), \
            walk.said()
    finally:
        walk.stop()
    said = walk.said("device")
    assert "Traceback" not in said, said
    # version 1 at start (queued if before the connection), then version 2 as it came
    assert len(re.findall(r"(sent|queued) mandate [0-9a-f]+ ", said)) == 2, said
