"""What the firmware application reads from identity/config.json once, at boot: the config
itself (checked), a Slot for each consumable with its sensor, and the link to the broker.

app.App imports this module while it starts and drops it once the device is set up (nothing
made here refers back to it), so its code is not in a board's heap while the device runs.
"""

import json

from app import Wifi, rig_hook, say
from flash import read
from thingsdk.core import topics
from thingsdk.core.agent import Slot
from thingsdk.core.consumable import SETTINGS, configured

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
    from mqtt import Client, tls_context

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
