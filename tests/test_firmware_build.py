"""`thingsdk firmware build`: a provisioned bundle (with TLS files) built for each board gives
every module as .mpy of MicroPython 1.29's format, the identity converted (raw seed and keys, DER
certificates and key, config.json) with secrets mode 0600, and a size report; the compiled core
and firmware library import and run on the MicroPython WebAssembly port. Errors are one line.
"""

import ast
import json
import re
import stat
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from micropython_port import ROOT, RUNNER

from thingsdk import boards, codec, topics
from thingsdk.cli import main
from thingsdk.core import cbor, envelope
from thingsdk.crypto import Ed25519Verifier, load_signer
from thingsdk.firmware_build import compile_lib, load_order

CORE = sorted(p.stem for p in (ROOT / "thingsdk" / "core").glob("*.py"))
FIRMWARE = ROOT / "firmware" / "lib"
ADC_PIN = {"esp32": 34, "pico_w": 26}
MPY_VERSION = 6  # MicroPython 1.23 on; sys.implementation._mpy 774 = version 6, sub-version 3


@pytest.fixture
def bundle(tmp_path, pki, capsys):
    for name in ("owner", "vendor", "fridge"):
        assert main(["keygen", "--out", str(tmp_path), "--name", name]) == 0
    fridge = load_signer(tmp_path / "fridge.key")
    cert, key = pki.client(topics.kid_hex(fridge.kid))
    assert main(["provision", "--out", str(tmp_path / "fridge"), "--vendor-pub",
                 str(tmp_path / "vendor.pub"), "--owner-key", str(tmp_path / "owner.key"),
                 "--device-key", str(tmp_path / "fridge.key"),
                 "--broker", "mqtts://broker.example:8884", "--ca", str(pki.ca_file),
                 "--cert", cert, "--key", key,
                 "--consumable", "slot=water-filter,sku=WF-300,unit=ml,capacity=300000,sensor=adc,pin=34,"
                 "empty=2000,full=60000"]) == 0
    capsys.readouterr()
    return tmp_path / "fridge"


def build(tmp_path, bundle, board, *extra):
    """`firmware build` for the board, its sensor on an ADC pin that board has."""
    toml = bundle / "device.toml"
    toml.write_text(re.sub(r"pin = \d+", "pin = %d" % ADC_PIN[board], toml.read_text()))
    return main(["firmware", "build", "--board", board, "--identity", str(bundle),
                 "--out", str(tmp_path / board), *extra])


def mpy_files(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*.mpy"))


@pytest.mark.parametrize("board", sorted(boards.BOARDS))
def test_build_compiles_every_module_and_converts_the_identity(tmp_path, bundle, board, capsys):
    assert build(tmp_path, bundle, board, "--force") == 0
    out, folder = capsys.readouterr().out, tmp_path / board
    unused = ("seriallink", "frames")  # the board reaches its broker over WiFi, not a gateway
    expected = (["lib/%s.mpy" % p.stem for p in FIRMWARE.glob("*.py") if p.stem not in unused]
                + ["lib/thingsdk/__init__.mpy"]
                + ["lib/thingsdk/core/%s.mpy" % name for name in CORE if name not in unused])
    assert mpy_files(folder) == sorted(expected)
    for name in expected:
        data = (folder / name).read_bytes()
        assert data[:2] == b"M" + bytes([MPY_VERSION]) and str(ROOT).encode() not in data
        assert re.search(r"\n  %s +%d B\n" % (re.escape(name), len(data)), out)
    assert [p.name for p in folder.rglob("*.py")] == ["main.py"]  # run at boot, as source
    assert (folder / "main.py").read_bytes() == (FIRMWARE.parent / "main.py").read_bytes()

    ident = folder / "identity"
    fridge = load_signer(bundle / "device.key")
    assert (ident / "device.seed").read_bytes() == fridge.seed()
    assert (ident / "vendor.pub").read_bytes().hex() == (bundle / "vendor.pub").read_text().strip()
    assert (ident / "owner.pub").read_bytes().hex() == (bundle / "owner.pub").read_text().strip()
    assert (ident / "mandate.cwt").read_bytes() == (bundle / "mandate.cwt").read_bytes()
    for name in ("device.seed", "device-tls.der"):
        assert stat.S_IMODE((ident / name).stat().st_mode) == 0o600
    for der, pem in (("ca.der", "ca.pem"), ("device.der", "device.pem")):
        assert (x509.load_der_x509_certificate((ident / der).read_bytes())
                == x509.load_pem_x509_certificate((bundle / pem).read_bytes()))
    key_der = serialization.load_der_private_key((ident / "device-tls.der").read_bytes(), None)
    key_pem = serialization.load_pem_private_key((bundle / "device-tls.key").read_bytes(), None)
    assert key_der.private_numbers() == key_pem.private_numbers()

    config = json.loads((ident / "config.json").read_text())
    vendor, owner = (load_signer(bundle.parent / n) for n in ("vendor.key", "owner.key"))
    assert config == {"board": board, "broker": {"host": "broker.example", "port": 8884,
                                                 "tls": True},
                      "link": {"type": "mqtt"},
                      "device_kid": fridge.kid.hex(), "vendor_kid": vendor.kid.hex(),
                      "owner_kid": owner.kid.hex(), "lifecycle": {}, "clock": None,
                      "consumables": [{"slot": "water-filter", "sku": "WF-300", "unit": "ml",
                                       "capacity": 300000, "sensor": {
                                           "type": "adc", "pin": ADC_PIN[board],
                                           "empty": 2000, "full": 60000}}]}

    total = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    code = sum(p.stat().st_size for p in folder.rglob("*") if p.suffix in (".mpy", ".py"))
    profile = boards.BOARDS[board]
    assert "-march=%s" % profile.march in out
    verdict = ("OVER the target by %d B" % (total - boards.TARGET) if total > boards.TARGET
               else "within the target, %d B to spare" % (boards.TARGET - total))
    assert "total        %d B with the identity vs the 61440 B (60 KB) target: %s" % (
        total, verdict) in out
    loaded, order = boards.heap_needed(code)
    assert ("heap         the code takes about %d KB while a need decides; a whole order needs "
            "about %d KB in all" % (loaded // 1024, order // 1024)) in out
    assert re.search(r"^fits         (yes|NO): about %d KB free on this board"
                     % (profile.heap // 1024), out, re.M)


def test_exclude_leaves_a_module_out_unless_another_needs_it(tmp_path, bundle, capsys):
    assert build(tmp_path, bundle, "esp32", "--exclude", "flash") == 2
    assert capsys.readouterr().err == ("thingsdk firmware: error: --exclude flash: app.py "
                                       "imports it\n")
    assert build(tmp_path, bundle, "pico_w", "--exclude", "cbor") == 2
    assert capsys.readouterr().err == ("thingsdk firmware: error: --exclude cbor: approval.py "
                                       "imports it\n")


@pytest.mark.parametrize("args, message", [
    (["--board", "esp8266"], "unknown board 'esp8266' (known: esp32, pico_w)"),
    (["--identity", "missing"], "missing holds no device.toml: not an identity bundle"),
    (["--exclude", "nonesuch"], "--exclude nonesuch: no such module"),
])
def test_errors_are_one_line(tmp_path, bundle, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    given = dict(zip(args[::2], args[1::2]))
    argv = ["firmware", "build", "--board", given.get("--board", "esp32"),
            "--identity", given.get("--identity", str(bundle)), "--out", "out"]
    argv += ["--exclude", given["--exclude"]] if "--exclude" in given else []
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("thingsdk firmware: error: " + message) and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_a_sensor_the_board_cannot_read_is_refused(tmp_path, bundle, capsys):
    toml = bundle / "device.toml"
    toml.write_text(toml.read_text().replace("pin = 34", "pin = 4"))
    argv = ["firmware", "build", "--board", "esp32", "--identity", str(bundle), "--out",
            str(tmp_path / "out")]
    assert main(argv) == 2
    assert "pin 4 cannot read an ADC on ESP32 (generic, no PSRAM) (use one of 32, 33" in \
        capsys.readouterr().err
    toml.write_text(toml.read_text().replace('type = "adc"', 'type = "simulated"'))
    assert main(argv) == 2
    assert "sensor type 'simulated' does not run on a board" in capsys.readouterr().err


def test_a_board_without_a_broker_links_over_its_uart(tmp_path, bundle, capsys):
    toml = bundle / "device.toml"
    text = toml.read_text()
    start = text.index("[broker]")
    toml.write_text(text[:start] + text[text.index("[[consumables]]"):])
    assert build(tmp_path, bundle, "esp32", "--force") == 0
    config = json.loads((tmp_path / "esp32" / "identity" / "config.json").read_text())
    assert config["broker"] is None
    assert config["link"] == {"type": "serial", "uart": 2, "tx": 17, "rx": 16, "baudrate": 115200}
    built = mpy_files(tmp_path / "esp32")
    assert "lib/seriallink.mpy" in built and "lib/thingsdk/core/frames.mpy" in built
    assert "lib/mqtt.mpy" not in built and "lib/thingsdk/core/backoff.mpy" not in built


def test_a_build_that_would_not_run_is_refused_with_how_far_it_is_short(tmp_path, bundle,
                                                                          capsys):
    assert build(tmp_path, bundle, "esp32") == 2
    err = capsys.readouterr().err
    match = re.match(r"thingsdk firmware: error: this build would not run on the ESP32 \(generic, "
                     r"no PSRAM\): its code takes about (\d+) KB of heap while a need decides "
                     r"and the board has about 110 KB free \((\d+) KB short\)\. Build with "
                     r"--frozen", err)
    assert match and int(match[1]) - 110 <= int(match[2]) <= int(match[1]) - 109, err
    assert err.count("\n") == 1
    assert not (tmp_path / "esp32" / "lib").exists()  # nothing half-written stays
    assert build(tmp_path, bundle, "esp32", "--force") == 0
    out = capsys.readouterr().out
    assert re.search(r"^fits         NO: about 110 KB free on this board, \d+ KB short of an order; "
                     r"--frozen runs the code from flash$", out, re.M)


@pytest.mark.parametrize("board", sorted(boards.BOARDS))
def test_a_frozen_build_writes_a_manifest_and_the_make_lines(tmp_path, bundle, board, capsys):
    assert build(tmp_path, bundle, board, "--frozen") == 0
    out, folder = capsys.readouterr().out, tmp_path / board
    assert not (folder / "lib").exists() and mpy_files(folder) == []
    manifest = folder / "firmware" / "manifest.py"
    lines = manifest.read_text().splitlines()
    profile = boards.BOARDS[board]
    includes = [line for line in lines if line.startswith("include(")]
    assert includes == ['include("%s")' % profile.port_manifest]  # the port's own modules stay
    frozen = sorted(re.findall(r'^module\("([^"]+)"\)$', manifest.read_text(), re.M))
    unused = ("seriallink", "frames")
    assert frozen == sorted(["%s.py" % p.stem for p in FIRMWARE.glob("*.py") if p.stem not in unused]
                            + ["thingsdk/__init__.py", "thingsdk/core/ed25519_comb.py"]
                            + ["thingsdk/core/%s.py" % n for n in CORE if n not in unused])
    for name in frozen:  # self-contained: every file named is beside the manifest
        assert (manifest.parent / name).is_file(), name
    assert (manifest.parent / "app.py").read_text() == (FIRMWARE / "app.py").read_text()
    assert (folder / "main.py").is_file() and (folder / "identity" / "config.json").is_file()
    assert "make -C ports/%s BOARD=%s FROZEN_MANIFEST=%s" % (
        profile.port, profile.make_board, manifest.resolve()) in out
    assert re.search(r"^fits         yes: about %d KB free" % (profile.heap // 1024), out, re.M)
    from thingsdk.rig.deploy import local_files

    assert all(not path.startswith("/firmware") for path, _ in local_files(folder))


def test_out_must_be_new_or_empty(tmp_path, bundle, capsys):
    (tmp_path / "esp32").mkdir()
    (tmp_path / "esp32" / "keep").write_text("mine")
    assert build(tmp_path, bundle, "esp32") == 2
    assert "is not empty" in capsys.readouterr().err
    assert (tmp_path / "esp32" / "keep").read_text() == "mine"


def test_built_modules_run_on_micropython(tmp_path, bundle, capsys):
    """The esp32 build's lib/ alone, mounted at /lib, seals and opens a message on the
    WebAssembly port; -march changes nothing in bytecode-only modules (the bytes equal a build
    without it), so this is the very code a board gets."""
    assert build(tmp_path, bundle, "esp32", "--force") == 0
    capsys.readouterr()
    folder = tmp_path / "esp32"
    compile_lib(tmp_path / "plain")
    for name in mpy_files(folder):
        assert (folder / name).read_bytes() == (tmp_path / "plain" / name).read_bytes(), name
    done = subprocess.run(
        ["node", str(RUNNER), "--heap", str(2 * 1024 * 1024),
         "--mount", "%s:/lib" % (folder / "lib"), "--mount", "%s:/identity" % (folder / "identity"),
         str(ROOT / "tests" / "mpy" / "firmware_build_check.py")],
        capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    lines = dict(line.split(" ", 1) for line in done.stdout.splitlines())
    assert lines["mpy"] == "774"  # version 6, sub-version 3: what mpy-cross 1.29 emits
    fridge = load_signer(bundle / "device.key")
    assert lines["kid"] == "%s %s" % (fridge.kid.hex(), fridge.kid.hex())
    vendor = load_signer(bundle.parent / "vendor.key")
    inbox = envelope.Inbox(vendor.kid, {fridge.kid: Ed25519Verifier(fridge.public_key)}, codec)
    opened = inbox.open(bytes.fromhex(lines["sealed"]), 1767225601)
    assert opened.status == envelope.ACCEPT, opened  # signed on MicroPython, checked by CPython
    assert cbor.loads(bytes.fromhex(lines["sealed"]))  # and it is CBOR


@pytest.mark.parametrize("old, new, message", [
    ("pin = 34", "pin = 34, pullup = true", "consumables[0].sensor.pullup: unknown setting"),
    ("[broker]\n", "[broker]\nkeepalive_s = 30\n", "broker.keepalive_s: unknown setting"),
    ("[[consumables]]\n", "[[consumables]]\nlead = 3\n", "consumables[0].lead: unknown setting"),
])
def test_a_setting_the_board_would_not_take_is_refused_by_name(tmp_path, bundle, capsys, old,
                                                               new, message):
    toml = bundle / "device.toml"
    assert old in toml.read_text()
    toml.write_text(toml.read_text().replace(old, new, 1))
    argv = ["firmware", "build", "--board", "esp32", "--identity", str(bundle), "--out",
            str(tmp_path / "out")]
    assert main(argv) == 2
    assert capsys.readouterr().err == "thingsdk firmware: error: %s: %s\n" % (toml, message)


def test_load_order_puts_each_module_after_what_it_imports():
    """The order bench/firmware.py loads the stock build in to charge each module its own heap:
    the texts reader first, every module after the SDK and firmware modules it imports on
    loading, each once, and the link app imports only when configured (mqtt) after app; not
    the modules imported only when needed (counter-proposals, boot-time configuration, the
    serial link)."""
    order = load_order()
    assert order[0] == "texts" and len(order) == len(set(order))
    assert order.index("app") < order.index("mqtt") == len(order) - 1
    core = ROOT / "thingsdk" / "core"
    for name in order[1:]:
        short = name.rsplit(".", 1)[-1]
        path = (core if name.startswith("thingsdk.core.") else ROOT / "firmware" / "lib") / (
            short + ".py")
        for needed in _imported_on_loading(ast.parse(path.read_text())):
            if needed in order:
                assert order.index(needed) < order.index(name), (needed, name)
    for lazy in ("thingsdk.core.counter", "configure", "seriallink"):
        assert lazy not in order


def _imported_on_loading(tree):
    """The module names a module's top-level import statements name."""
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module == "thingsdk.core":
            yield from ("thingsdk.core." + alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)


def test_time_away_goes_to_the_board_as_unix_seconds(tmp_path, bundle, capsys):
    toml = bundle / "device.toml"
    toml.write_text(toml.read_text().replace(
        "[[consumables]]\n", "[[consumables]]\naway = [[2026-07-04T08:00:00+02:00, "
                             "2026-07-12T20:00:00Z]]\n"))
    assert build(tmp_path, bundle, "pico_w", "--force") == 0
    config = json.loads((tmp_path / "pico_w" / "identity" / "config.json").read_text())
    assert config["consumables"][0]["away"] == [[1783144800, 1783886400]]
    toml.write_text(toml.read_text().replace("2026-07-12T20:00:00Z", "2026-07-12"))
    assert build(tmp_path, bundle, "pico_w", "--force") == 2
    err = capsys.readouterr().err
    assert "consumables[0].away: a start or end is a date-time with its offset" in err
