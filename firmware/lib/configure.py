"""What the firmware application reads from identity/config.json once, at boot: the config
itself (checked), a Slot for each consumable with its sensor, the link to the broker, and the
device they make (`app`).

app.App imports this module while it starts and drops it once the device is set up (nothing
made here refers back to it: what is called later is app's), so its code is not in a board's
heap while the device runs.
"""

import json

from app import Wifi, new_id, rig_hook, say
from flash import FlashState, read
from thingsdk.core import cbor, ed25519, topics
from thingsdk.core.agent import Agent, Slot
from thingsdk.core.consumable import DAY, SETTINGS, configured
from ticks import MICROPYTHON, clock_from

NEEDED = ("device_kid", "link", "broker", "consumables")  # in config.json
# The MQTT client's settings config.json's broker may set: (name, least, most, whole numbers only)
TUNED = (("keepalive", 1, 65535, 1), ("retry", 0.1, 3600, 0), ("backoff", 0.1, 86400, 0),
         ("limit", 1, 256, 1), ("max_size", 64, 65536, 1))


def load(identity):
    """config.json of the folder `identity`, as data; OSError or ValueError saying what to do
    when it is missing or lacks what a device needs."""
    config = read(identity + "config.json")
    if config is None:
        raise OSError("%sconfig.json is missing: copy a `thingsdk firmware build` folder "
                      "to the board" % identity)
    config = json.loads(config)
    missing = [key for key in NEEDED if key not in config]
    if missing:
        raise ValueError("%sconfig.json has no %s: build it again with `thingsdk firmware "
                         "build`" % (identity, ", ".join(missing)))
    return config


def tuned(broker, where):
    """The Client keywords the broker table sets, each checked (ValueError saying which)."""
    options = {}
    for key, least, most, whole in TUNED:
        if key in broker:
            value = options[key] = broker[key]
            pair = key == "backoff"
            values = value if pair else [value]
            kinds = (int,) if whole else (int, float)
            if not (type(values) is list and len(values) == 1 + pair and all(
                    type(v) in kinds and least <= v <= most for v in values)
                    and values[0] <= values[-1]):
                raise ValueError("%sconfig.json: broker %s is %r, not %s from %s to %s: set it in "
                                 "device.toml's [broker] and build again" % (
                                     where, key, value, "[first, most]" if pair else
                                     "a whole number" if whole else "a number", least, most))
    if "backoff" in options:
        options["backoff"], options["backoff_cap"] = options["backoff"]
    return options


def sensor(table, capacity, machine, root, source=None):
    """A sensor source from its config table (type adc, flow or hx711) on the board's pins; type
    custom is `source`, the program's own (main.py: `app.boot(sources={slot: source})`)."""
    kind = table["type"]
    if kind == "custom":
        if source is None:
            raise ValueError("its sensor is custom: pass it, app.boot(sources={slot: source})")
        return source
    from drivers import AdcLevel, HX711, PulseUsage, ScaleLevel  # only a board sensor needs it

    if kind == "adc":
        pin = table["pin"]
        if str(pin) in rig_hook(root).get("adc", {}):
            from rig import RigADC  # only on a test rig

            adc = RigADC(root, pin)
        else:
            adc = machine.ADC(machine.Pin(pin))
        return AdcLevel(adc, table["empty"], table["full"], capacity)
    if kind == "flow":
        pin = machine.Pin(table["pin"], machine.Pin.IN, machine.Pin.PULL_UP)
        return PulseUsage(pin, table["pulses_per_unit"], table.get("units", 1))
    if kind == "hx711":
        cell = HX711(machine.Pin(table["data_pin"], machine.Pin.IN),
                     machine.Pin(table["clock_pin"], machine.Pin.OUT), table.get("gain", 128))
        return ScaleLevel(cell, table.get("tare", 0), table["scale_num"], table["scale_den"],
                          table.get("zero", 0))
    raise ValueError("unknown sensor type %r (a board has adc, flow, hx711, custom)" % kind)


def slot(table, machine, root, sources=None):
    """A Slot from a consumables entry of config.json (`sources`: the custom sensors by slot)."""
    settings = {}
    for key in SETTINGS:
        if key in table:
            settings[key] = table[key]
    consumable = configured(table["slot"], table["unit"], table["capacity"], sku=table.get("sku"),
                            **settings)
    try:
        source = sensor(table["sensor"], table["capacity"], machine, root,
                        (sources or {}).get(table["slot"]))
    except ValueError as exc:
        raise ValueError("consumable %s: %s" % (table["slot"], exc))
    return Slot(consumable, source, table.get("category"))


def tls_context(cert, key, ca):
    """A client SSL context for mutual TLS from DER bytes: certificate, private key (PKCS#8 on
    CPython; mbedTLS also takes SEC1) and the CA that signed the broker's certificate. Made once,
    at boot, for every connection the MQTT client makes: so it is here, not in the client's
    module, which a running board keeps loaded."""
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if MICROPYTHON:
        ctx.load_cert_chain(cert, key)
    else:  # CPython loads a client certificate from a PEM file only
        import binascii
        import os
        import tempfile

        b64 = binascii.b2a_base64(key).decode().strip()
        pem = ssl.DER_cert_to_PEM_cert(cert) + (
            "-----BEGIN PRIVATE KEY-----\n%s\n-----END PRIVATE KEY-----\n"
            % "\n".join(b64[i:i + 64] for i in range(0, len(b64), 64)))
        fd, path = tempfile.mkstemp()
        try:
            os.write(fd, pem.encode())
            os.close(fd)
            ctx.load_cert_chain(path)
        finally:
            os.unlink(path)
    ctx.load_verify_locations(cadata=ca)
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def link(config, root, on_message, on_join=None):
    """The way to the broker: the firmware's MQTT client (over the WiFi of wifi.json, if there is
    one, calling `on_join()` each time it is joined), or a serial link to a gateway."""
    kind = config.get("link", {"type": "mqtt"})
    if kind["type"] == "serial":
        import machine
        from seriallink import Link

        uart = machine.UART(kind["uart"], baudrate=kind["baudrate"], tx=machine.Pin(kind["tx"]),
                            rx=machine.Pin(kind["rx"]))
        return Link(uart, on_message)
    from mqtt import Client

    broker, identity = config["broker"], root + "identity/"
    options = tuned(broker, identity)
    ssl = None
    if broker["tls"]:
        ssl = tls_context(read(identity + "device.der"), read(identity + "device-tls.der"),
                          read(identity + "ca.der"))
    wifi = read(root + "wifi.json")
    kid = bytes.fromhex(config["device_kid"])
    return Client(broker["host"], broker["port"], config["device_kid"], ssl=ssl,
                  presence=topics.presence(kid), on_message=on_message, note=say,
                  wifi=wifi and Wifi(json.loads(wifi), on_join=on_join), **options)


def app(device, root, clock, sources):
    """Set up the app.App `device` from the board's files under `root` (see App)."""
    identity = root + "identity/"
    device.config = config = load(identity)
    device.root, device.clock = root, clock or clock_from(config.get("clock"))
    device.kid = kid = bytes.fromhex(config["device_kid"])
    device.uplink, device.downlink = topics.uplink(kid), topics.downlink(kid)
    device.to_owner, device.from_owner = topics.to_owner(kid), topics.from_owner(kid)
    device.interval = config.get("interval", 5)
    device.outgoing = []
    device.errors, device.fatal = 0, None
    device.hook = rig_hook(root)
    device.frozen = False
    slots = [slot(t, device.machine, root, sources) for t in config.get("consumables", ())]
    device.state = FlashState(root + "state")
    # The vendor's key keeps its multiples, made once at boot: each of the order's messages is
    # verified with them. The owner's key, which verifies a mandate or an approval now and then,
    # makes them for each (firmware/README.md, "Size and memory").
    device.agent = Agent(ed25519.Signer(read(identity + "device.seed")),
                         ed25519.Verifier(read(identity + "vendor.pub")),
                         ed25519.Verifier(read(identity + "owner.pub"), False),
                         device.state, slots, cbor, new_id, device.clock(),
                         publish=device._queue, config=config.get("lifecycle"),
                         heartbeat=config.get("heartbeat", DAY), note=say,
                         to_owner=device._to_owner, spare=True)
    device.mandate = read(identity + "mandate.cwt")
    # A demo's or a rig's clock (config.json's `clock`) is its own; a real one is set by NTP.
    device.link = link(config, root, device._on_message,
                       None if config.get("clock") else device._joined)
