"""The API a device maker embeds: `thingsdk` exports thingsdk.api's names, typed; pyright in
strict mode passes the README's Pi example (examples/embed_pi.py) and reports misuse of the
API; the example runs, with its own sensor, against the real broker; and importing the core
loads none of it."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import device_toml
import pytest
from world import TIMEOUT, Tap

import thingsdk
from thingsdk import api, codec, topics
from thingsdk.core import envelope
from thingsdk.core import messages as m
from thingsdk.crypto import Ed25519Signer, save_keypair

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "embed_pi.py"
PYRIGHT = ROOT / "node_modules" / "pyright" / "index.js"
MISUSE = {  # what the example would say wrong -> what pyright must report
    'sources={"coffee-beans": Hopper(420)}': 'sources={"coffee-beans": 420}',
    "device.run(stop)": "device.run(5)",
}


def test_thingsdk_exports_exactly_the_api():
    assert sorted(thingsdk._PUBLIC) == sorted(api.__all__)
    for name in api.__all__:
        assert getattr(thingsdk, name) is getattr(api, name)
    with pytest.raises(AttributeError):
        thingsdk.Nonesuch  # noqa: B018
    assert (ROOT / "thingsdk" / "py.typed").is_file()


def test_importing_the_core_loads_nothing_else():
    probe = ("import sys, thingsdk.core.agent, thingsdk.core.cbor\n"
             "from thingsdk import codec\n"
             "print(sorted(m for m in sys.modules if m.split('.')[0] in "
             "('paho', 'cryptography', 'thingsdk') and not m.startswith('thingsdk.core')))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "['thingsdk', 'thingsdk.codec']"


def pyright(tmp_path, files):
    """pyright's errors, strict mode, on `files` ({name: source}) with this environment's
    packages and the source tree (the editable install is an import hook pyright cannot
    follow)."""
    if not PYRIGHT.exists():
        pytest.fail("pyright is not installed: run .ci/setup")
    for name, source in files.items():
        (tmp_path / name).write_text(source)
    venv = Path(sys.prefix)
    (tmp_path / "pyrightconfig.json").write_text(json.dumps({
        "include": sorted(files), "typeCheckingMode": "strict", "pythonVersion": "3.11",
        "venvPath": str(venv.parent), "venv": venv.name, "extraPaths": [str(ROOT)]}))
    done = subprocess.run(["node", str(PYRIGHT), "--outputjson", "-p", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    return [(Path(d["file"]).name, d["range"]["start"]["line"] + 1, d.get("rule"))
            for d in json.loads(done.stdout)["generalDiagnostics"] if d["severity"] == "error"]


def test_the_pi_example_type_checks_strictly_and_misuse_does_not(tmp_path):
    source = EXAMPLE.read_text()
    wrong = source
    for right, bad in MISUSE.items():
        assert right in source
        wrong = wrong.replace(right, bad)
    lines = [n for n, line in enumerate(wrong.splitlines(), 1)
             if any(bad in line for bad in MISUSE.values())]
    found = pyright(tmp_path, {"embed_pi.py": source, "misuse.py": wrong})
    assert found == [("misuse.py", n, "reportArgumentType") for n in lines]


def test_the_pi_example_runs_with_its_own_sensor_on_the_broker(tmp_path, broker):
    device, owner, vendor = (Ed25519Signer.generate() for _ in range(3))
    for name, key in (("device", device), ("owner", owner), ("vendor", vendor)):
        save_keypair(key, tmp_path / (name + ".key"), tmp_path / (name + ".pub"))
    (tmp_path / "device.toml").write_text(
        '[device]\nkey = "device.key"\nstate = "state"\nvendor = "vendor.pub"\n'
        'owner = "owner.pub"\ninterval = 0.05\nheartbeat = 1\n\n[broker]\nurl = "%s"\n\n'
        '[[consumables]]\nslot = "coffee-beans"\nunit = "g"\ncapacity = 1000\n'
        'sku = "BEANS-250"\npack = 250\nsensor = {type = "custom"}\n' % broker.url)
    up = Tap(broker, topics.uplink(device.kid))
    run = subprocess.Popen([sys.executable, str(EXAMPLE), "device.toml"], cwd=tmp_path,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + TIMEOUT
        while not up.seen and time.monotonic() < deadline and run.poll() is None:
            time.sleep(0.05)
        run.send_signal(signal.SIGTERM)
        out, _ = run.communicate(timeout=TIMEOUT)
    finally:
        if run.poll() is None:
            run.kill()
        up.close()
    assert run.returncode == 0, out
    inbox = envelope.Inbox(vendor.kid, {device.kid: device.verifier()}, codec)
    opened = inbox.open(up.seen[0], int(time.time()))
    assert opened.status == envelope.ACCEPT and opened.message.type == m.STATUS
    (slot,) = opened.message.body["slots"]
    assert (slot["slot"], slot["level"]) == ("coffee-beans", 420)  # what Hopper read


def test_a_custom_sensor_the_program_does_not_pass_is_named(tmp_path):
    path = device_toml.write(tmp_path, consumable='[[consumables]]\nslot = "coffee-beans"\n'
                             'unit = "g"\ncapacity = 1000\nsku = "BEANS-250"\n'
                             'sensor = {type = "custom"}\n')
    with pytest.raises(thingsdk.ConfigError) as caught:
        thingsdk.load_device(path)
    assert str(caught.value) == (
        "%s: consumables[0].sensor.type: custom: the program that loads this file passes the "
        "sensor (load_device(path, sources={'coffee-beans': ...}))" % path)
    with pytest.raises(thingsdk.ConfigError, match="no consumable with a custom sensor is named "
                                                   "coffee"):
        thingsdk.load_device(path, sources={"coffee-beans": object(), "coffee": object()})
