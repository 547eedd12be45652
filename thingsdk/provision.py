"""A device's identity bundle (`thingsdk provision`): its key, the pinned vendor key, the owner's
public key, the broker and its TLS files, an owner-signed mandate for this device and a
`device.toml` for `thingsdk device run --config` (the format of thingsdk.device.config).

Consumables are written as `key=value` lists, e.g.
`slot=water-filter,sku=WF-300,unit=ml,capacity=300000,lead_time=3d,sensor=flow,pin=17,
pulses_per_litre=450`: the keys of a [[consumables]] table (durations may be written 3d, 12h),
`sensor` the sensor type (default simulated, using about a thirtieth of the capacity a day) and
every other key a parameter of the sensor.
"""

import json
import shutil
from pathlib import Path

from thingsdk import topics
from thingsdk.core.consumable import Consumable
from thingsdk.crypto import Ed25519Signer, load_signer, save_keypair
from thingsdk.mqtt import certificate_cn
from thingsdk.owner import build_claims, parse_duration, read_public_key, write_mandate

CONSUMABLE_KEYS = ("slot", "unit", "capacity", "sku", "category", "min_interval", "pack",
                   "lead_time", "lead_spread", "safety", "order_qty")
DURATIONS = ("min_interval", "lead_time", "lead_spread")
TLS_FILES = (("ca", "ca.pem"), ("cert", "device.pem"), ("key", "device-tls.key"))


def _value(text):
    """A sensor or consumable value: an int, a float, true/false, or else the text."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text, text)


def parse_consumable(text):
    """A [[consumables]] table from "key=value,..." (see the module's docstring), checked."""
    table, sensor = {}, {"type": "simulated"}
    for item in text.split(","):
        key, sep, value = (part.strip() for part in item.partition("="))
        if not sep or not key or not value:
            raise ValueError("consumable %r: %r is not key=value" % (text, item))
        if key in DURATIONS and not value.isdigit():
            table[key] = parse_duration(value)
        elif key in CONSUMABLE_KEYS:
            table[key] = _value(value)
        elif key == "sensor":
            sensor["type"] = value
        else:
            sensor[key] = _value(value)
    missing = [k for k in ("slot", "unit", "capacity") if k not in table]
    if missing or ("sku" not in table and "category" not in table):
        raise ValueError("consumable %r needs slot, unit, capacity and a sku or category" % text)
    Consumable(**{k: v for k, v in table.items() if k not in ("category", "min_interval")})
    if sensor["type"] == "simulated":
        sensor.setdefault("daily_use", max(1, table["capacity"] // 30))
    table["sensor"] = sensor
    return table


def _toml(value):
    if isinstance(value, dict):
        return "{%s}" % ", ".join("%s = %s" % (k, _toml(v)) for k, v in value.items())
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(value)  # a TOML basic string


def config_text(broker, tls, consumables, clock=None, interval=None):
    """device.toml for the bundle's file names."""
    device = {"key": "device.key", "state": "state", "vendor": "vendor.pub",
              "owner": "owner.pub", "mandate": "mandate.cwt"}
    if interval is not None:
        device["interval"] = interval
    tables = [("device", device), ("broker", dict({"url": broker}, **tls))]
    if clock:
        tables.append(("clock", clock))
    lines = []
    for name, table in tables:
        lines += ["[%s]" % name] + ["%s = %s" % (k, _toml(v)) for k, v in table.items()] + [""]
    for table in consumables:
        lines += ["[[consumables]]"] + ["%s = %s" % (k, _toml(v)) for k, v in table.items()]
        lines.append("")
    return "\n".join(lines)


def provision(out, vendor_pub, owner_key, broker, mandate_options, consumables, now,
              tls=None, device_key=None, clock=None, interval=None):
    """Write the bundle into the new folder `out`; returns (device signer, mandate token).

    `tls` maps ca, cert, key to files copied in; a client certificate must name the device's
    key id as its CN, so it needs `device_key` (an existing private key file, copied in).
    `mandate_options` are those of `mandate create` (device-pub is filled in)."""
    out, tls = Path(out), {k: v for k, v in (tls or {}).items() if v}
    if out.exists() and any(out.iterdir()):
        raise ValueError("%s exists and is not empty" % out)
    if bool(tls.get("cert")) != bool(tls.get("key")):
        raise ValueError("a client certificate needs its key, and a key its certificate")
    signer = load_signer(device_key) if device_key else Ed25519Signer.generate()
    if tls.get("cert"):
        cn = certificate_cn(tls["cert"])
        if device_key is None or cn != topics.kid_hex(signer.kid):
            why = "of --device-key" if device_key else "a fresh key has none yet"
            raise ValueError("the client certificate's CN is %r: it must be the device's key id "
                             "(%s); pass --device-key with the key it was issued for" % (cn, why))
    vendor = read_public_key(vendor_pub)
    owner = load_signer(owner_key)
    tables = [parse_consumable(text) for text in consumables]
    options = dict(mandate_options, **{"device-pub": signer.public_key.hex()})
    claims = build_claims(options, owner.kid, now)
    out.mkdir(parents=True, exist_ok=True)
    save_keypair(signer, out / "device.key", out / "device.pub")
    (out / "vendor.pub").write_text(vendor.hex() + "\n")
    (out / "owner.pub").write_text(owner.public_key.hex() + "\n")
    token = write_mandate(claims, owner, out / "mandate.cwt")
    copied = {}
    for key, name in TLS_FILES:
        if key in tls:
            shutil.copyfile(tls[key], out / name)
            (out / name).chmod(0o600 if key == "key" else 0o644)
            copied[key] = name
    (out / "device.toml").write_text(config_text(broker, copied, tables, clock, interval))
    return signer, token
