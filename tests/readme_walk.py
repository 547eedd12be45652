"""The README's walk as separate processes: keys, `broker init` (and `broker add --front page` for
the owner's page), mosquitto on the conf it writes,
a fridge provisioned with a mandate that wants the owner's approval above 20.00 EUR and a filter
nearly spent, the vendor registering it and serving, and the device running. Shared by the walk's
test (the owner answers with `owner approve --broker`) and the owner page's (the owner clicks)."""

import contextlib
import io
import os
import pwd
import subprocess
import sys
from pathlib import Path

import pytest

from broker import HOST, accepting, find_mosquitto, free_port, wait_for
from thingsdk.cli import main
from thingsdk.crypto import load_signer
from thingsdk.seller.store import Store

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 10.0


class Walk:
    """The walk's files in `folder`, written by the project's own commands (`keygen`, `broker
    init`, `provision`, `vendor register`; what `broker init` printed is in `init_said`);
    `start(name, command, ready)` runs one process with its output in `logs[name]`, `stop()`
    ends them all, the last started first."""

    def __init__(self, folder):
        said = io.StringIO()
        with contextlib.redirect_stdout(said):
            self._write(folder, said)

    def _write(self, folder, said):
        if find_mosquitto() is None:
            pytest.fail("mosquitto is not installed (Debian: apt-get install mosquitto)")
        self.folder = folder
        for name in ("vendor", "owner", "fridge"):
            assert main(["keygen", "--out", str(folder), "--name", name]) == 0
        self.kid = load_signer(folder / "fridge.key").kid.hex()
        self.owner_kid = load_signer(folder / "owner.key").kid.hex()
        self.port = free_port()
        self.setup, self.url = folder / "broker", "mqtts://localhost:%d" % self.port
        assert main(["broker", "init", str(self.setup), "--vendor-pub", self.pub("vendor"),
                     "--host", "localhost", "--port", str(self.port), "--bind", HOST,
                     "--user", pwd.getpwuid(os.getuid()).pw_name,
                     "--owner-pub", self.pub("owner"), "--device-pub", self.pub("fridge")]) == 0
        self.init_said = said.getvalue()
        # the owner's page is a front end of its own: a certificate and session of its own
        assert main(["broker", "add", str(self.setup), "--owner-pub", self.pub("owner"),
                     "--front", "page"]) == 0
        self.device_tls = self.tls("device-" + self.kid)
        assert main(["provision", "--out", str(folder / "fridge"),
                     "--vendor-pub", self.pub("vendor"), "--owner-key", str(folder / "owner.key"),
                     "--device-key", str(folder / "fridge.key"), "--broker", self.url,
                     *self.device_tls,
                     "--consumable", "slot=water-filter,sku=WF-300,unit=ml,capacity=300000,"
                                     "lead_time=3d", "--interval", "0.2",
                     "--approval-above", "20.00EUR"]) == 0
        # A filter nearly spent: it needs one now. Its readings are kept an hour apart, so no
        # usage rate is learnt in the test's seconds and the decision the owner answers stays
        # the one asked about: a rate learnt from a few seconds of real time is about 0, and an
        # approval that came after it met "enough stock" (one run in three or four).
        self.toml = folder / "fridge" / "device.toml"
        self.toml.write_text(self.toml.read_text().replace(
            "[device]\n", "[device]\nheartbeat = 1\n").replace(
            'sensor = {type = "simulated", daily_use = 10000}',
            'min_interval = 3600\nsensor = {type = "simulated", daily_use = 10000, '
            'capacity = 20000}'))
        self.db = str(folder / "vendor.db")
        assert main(["vendor", "register", "--db", self.db, "--device-pub", self.pub("fridge"),
                     "--owner-pub", self.pub("owner")]) == 0
        self.logs = {}
        self.processes = []

    def pub(self, name):
        return str(self.folder / (name + ".pub"))

    def tls(self, client):
        """--ca, --cert and --key of a client `broker init` made a certificate for."""
        return ["--ca", str(self.setup / "ca.pem"), "--cert", str(self.setup / (client + ".pem")),
                "--key", str(self.setup / (client + ".key"))]

    def cli(self, *args):
        return [sys.executable, "-m", "thingsdk.cli", *args]

    def mosquitto(self):
        self.start("mosquitto", [find_mosquitto(), "-c", str(self.setup / "mosquitto.conf")],
                   "mosquitto version 2", lambda: accepting(self.port))

    def vendor(self):
        """`vendor serve`, started once subscribed (what a device sends before the vendor's
        first subscription has nobody to go to)."""
        self.start("vendor", self.cli(
            "vendor", "serve", "--broker", self.url, "--db", self.db,
            "--catalog", str(ROOT / "thingsdk/seller/catalog.example.toml"),
            "--key", str(self.folder / "vendor.key"), "--ca", str(self.setup / "ca.pem"),
            "--cert", str(self.setup / "vendor-1.pem"),
            "--keyfile", str(self.setup / "vendor-1.key"), "--interval", "0.2"),
            "serving localhost:%d" % self.port)

    def page(self):
        """`owner serve` for the fridge, started once connected to the broker (before the device
        asks: the broker keeps an owner's messages from its first subscription on); its URL."""
        port = free_port()
        self.start("page", self.cli(
            "owner", "serve", "--broker", self.url,
            *self.tls("owner-%s.page" % self.owner_kid),
            "--owner-key", str(self.folder / "owner.key"), "--device-pub", self.pub("fridge"),
            "--vendor-pub", self.pub("vendor"),
            "--mandate", str(self.folder / "fridge" / "mandate.cwt"), "--port", str(port)),
            "connected to localhost:%d" % self.port)
        return "http://%s:%d/" % (HOST, port)

    def device(self):
        """`device run`, and wait until the vendor has its mandate and levels."""
        self.start("device", self.cli("device", "run", "--config", str(self.toml)))
        store = Store(self.db)
        try:
            assert wait_for(lambda: store.device(bytes.fromhex(self.kid)).mandate is not None
                            and store.levels(bytes.fromhex(self.kid)), 30.0), self.said()
        finally:
            store.close()

    def orders(self):
        """The fridge's orders as the vendor's store keeps them."""
        store = Store(self.db)
        try:
            return store.orders(bytes.fromhex(self.kid))
        finally:
            store.close()

    def start(self, name, command, ready=None, also=lambda: True):
        self.logs[name] = self.folder / (name + ".log")
        with self.logs[name].open("wb") as log:
            self.processes.append(subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=log))
        if ready is not None:
            assert wait_for(lambda: ready in self.logs[name].read_text() and also(),
                            TIMEOUT * 2), self.logs[name].read_text()
        return self.processes[-1]

    def said(self, name=None):
        if name is not None:
            return self.logs[name].read_text()
        return {name: path.read_text() for name, path in self.logs.items()}

    def stop(self):
        for process in reversed(self.processes):
            process.terminate()
            process.wait(TIMEOUT)
