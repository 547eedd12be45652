"""A Device from its TOML file (`thingsdk device run --config FILE`): docs/configuration.md
documents every table and setting. Paths are relative to the file; keys are PEM files or 64 hex
digits. Every error is a ConfigError naming the file and the setting.
"""

import datetime
import os
import time
import tomllib
from collections.abc import Mapping
from pathlib import Path

from thingsdk.core.consumable import SETTINGS, configured
from thingsdk.core.lifecycle import DEFAULTS, LifecycleError, make_config
from thingsdk.crypto import load_signer
from thingsdk.device.runtime import Device, Slot
from thingsdk.device.state import StateFolder, read_data
from thingsdk.inspect import is_file
from thingsdk.owner import read_public_key
from thingsdk.sensors import Sensor



# Every setting device.toml may hold, table by table; docs/configuration.md documents each one (a
# test checks the two against each other). [lifecycle] takes thingsdk.core.lifecycle.DEFAULTS.
TABLES = {
    "device": ("key", "state", "vendor", "owner", "mandate", "interval", "heartbeat"),
    "broker": ("url", "ca", "cert", "key", "backoff", "keepalive", "limit", "retry", "max_size"),
    "clock": ("speed", "start"),
    "lifecycle": tuple(DEFAULTS),
    "consumables": ("slot", "unit", "capacity", "sku", "category", "sensor") + SETTINGS,
}
BOARD_ONLY = ("retry", "max_size")  # [broker] settings only a board's MQTT client takes
# A Pi's sensor types and their parameters (a board's: thingsdk.firmware_build.BOARD_SENSORS).
SENSORS = {
    "simulated": ("daily_use", "noise", "variability", "refill_below", "seed", "capacity"),
    "flow": ("pin", "pulses_per_litre", "pull_up"),
    "hx711": ("data_pin", "clock_pin", "gain", "counts_per_unit", "offset", "samples"),
    "tank": ("shape", "diameter", "height", "width", "depth", "length", "echo", "trigger",
             "max_distance", "offset"),
    "custom": (),  # the program's own: load(path, sources={slot: source})
}


class ConfigError(ValueError):
    """A configuration that cannot be used; the text names the file and the setting."""


class AcceleratedClock:
    """Unix time that runs `speed` times faster than the real clock from the real time `start`
    on: every process given the same two numbers reads the same time."""

    def __init__(self, speed, start):
        self.speed, self.start = speed, start

    def __call__(self):
        return self.start + (time.time() - self.start) * self.speed


class _Table:
    """Typed access to one TOML table; errors name the file and the setting."""

    def __init__(self, source, table, where):
        self.source, self.table, self.where = source, table, where
        if not isinstance(table, dict):
            self.fail("", "expected a table")

    def fail(self, key, text):
        raise ConfigError("%s: %s: %s" % (self.source, ".".join(
            p for p in (self.where, key) if p) or "top level", text))

    def get(self, key, kind, default=..., above=None):
        """The setting's value, of `kind` (a type or a tuple of types) and, for a number, more
        than `above` if given."""
        if key not in self.table:
            if default is ...:
                self.fail(key, "missing")
            return default
        value = self.table[key]
        if isinstance(value, bool) and kind is not bool or not isinstance(value, kind):
            kinds = kind if isinstance(kind, tuple) else (kind,)
            self.fail(key, "expected %s, not %r" % (" or ".join(k.__name__ for k in kinds), value))
        if above is not None and not value > above:
            self.fail(key, "must be more than %s, not %r" % (above, value))
        return value

    def sub(self, key, optional=True):
        return _Table(self.source, self.get(key, dict, {} if optional else ...),
                      ".".join(p for p in (self.where, key) if p))

    def only(self, known):
        for key in self.table:
            if key not in known:
                self.fail(key, "unknown setting")


def _read(path):
    """(top table, [device] table) of a config file."""
    with open(path, "rb") as f:
        try:
            top = _Table(str(path), tomllib.load(f), "")
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("%s: not TOML: %s" % (path, exc)) from exc
    top.only(tuple(TABLES))
    dev = top.sub("device", optional=False)
    dev.only(TABLES["device"])
    return top, dev


def locate(path):
    """(state folder path, device key id, owner public key, clock) of a config file, for the
    read-only tools (`thingsdk status`, `owner cancel`): no Device, no sensor, nothing written."""
    path = Path(path)
    top, dev = _read(path)
    base = path.parent
    state = base / dev.get("state", str)
    facts = read_data(state / "device.cbor")
    kept = facts.get("clock") if isinstance(facts, dict) else None
    clock = _clock(top.sub("clock"), lambda: time.time() if kept is None else kept)
    return (state, load_signer(base / dev.get("key", str)).kid,
            _public_key(base, dev.get("owner", str)), clock)


def load(path: "str | os.PathLike[str]",
         sources: Mapping[str, Sensor] | None = None) -> Device:
    """The Device a config file describes (not started). `sources` are the program's own sensors
    by slot, for the file's sensors of type custom: objects with `kind` (thingsdk.LEVEL or
    USAGE) and `read(now) -> int` in the consumable's unit."""
    path = Path(path)
    top, dev = _read(path)
    base = path.parent
    signer = load_signer(base / dev.get("key", str))
    state = StateFolder(base / dev.get("state", str))
    clock = _clock(top.sub("clock"), lambda: _fact(state, "clock", time.time))
    born = _fact(state, "born", lambda: int(clock()))
    sources = dict(sources or {})
    slots = [_slot(_Table(str(path), table, "consumables[%d]" % i), born, sources)
             for i, table in enumerate(top.get("consumables", list))]
    if sources:
        raise ConfigError("%s: no consumable with a custom sensor is named %s"
                          % (path, ", ".join(sorted(sources))))
    mandate = dev.get("mandate", str, None)
    return Device(signer, _public_key(base, dev.get("vendor", str)),
                  _public_key(base, dev.get("owner", str)), state, slots,
                  _transport(top.sub("broker"), base, signer.kid), clock,
                  _lifecycle(top.sub("lifecycle")), dev.get("heartbeat", int, 86400, above=0),
                  dev.get("interval", (int, float), 60, above=0),
                  (base / mandate).read_bytes() if mandate else None)


def _lifecycle(table):
    table.only(TABLES["lifecycle"])
    try:
        make_config(table.table)
    except LifecycleError as exc:
        table.fail("", str(exc))
    return table.table or None


def _public_key(base, text):
    return read_public_key(str(base / text) if is_file(base / text) else text)


def _clock(table, kept_start):
    table.only(TABLES["clock"])
    if not table.table:
        return time.time
    start = table.get("start", (int, float), None)
    if start is None:  # kept from the first start, so a restart keeps the same time
        start = kept_start()
    return AcceleratedClock(table.get("speed", (int, float)), start)


def _fact(state, key, make):
    """A fact about the state folder, made and kept the first time it is asked for."""
    facts = state.load("device", {})
    if key not in facts:
        facts[key] = make()
        state.save("device", facts)
    return facts[key]


def _transport(table, base, kid):
    if not table.table:
        return None
    from thingsdk.mqtt import Backoff, device_transport

    table.only(TABLES["broker"])
    for key in BOARD_ONLY:
        if key in table.table:
            table.fail(key, "tunes a board's own MQTT client (the board's config.json); on a Pi "
                            "paho re-sends and sizes packets itself: remove it from this file")
    files = {name: str(base / table.get(key, str)) if key in table.table else None
             for name, key in (("ca_file", "ca"), ("cert_file", "cert"), ("key_file", "key"))}
    backoff = table.get("backoff", list, [1.0, 120.0])
    if not (len(backoff) == 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                      and v > 0 for v in backoff) and backoff[0] <= backoff[1]):
        table.fail("backoff", "expected [first, most]: two numbers of seconds above 0, first "
                              "not above most, not %r" % (backoff,))
    return device_transport(table.get("url", str), kid, backoff=Backoff(*backoff),
                            keepalive=table.get("keepalive", int, 60, above=0),
                            queue_limit=table.get("limit", int, 1000, above=0), **files)


def away_spans(value):
    """A consumable's `away` from device.toml as Consumable takes it: [[start, end], ...] of
    unix seconds, from pairs of date-times with their offset (2026-07-01T00:00:00+02:00) or of
    unix seconds. ValueError says what is wrong."""
    if not isinstance(value, list):
        raise ValueError("expected a list of [start, end] pairs, not %r" % (value,))
    spans = []
    for span in value:
        if not (isinstance(span, list) and len(span) == 2):
            raise ValueError("expected [start, end] pairs, not %r" % (span,))
        pair = []
        for moment in span:
            if isinstance(moment, datetime.datetime) and moment.tzinfo is not None:
                moment = int(moment.timestamp())
            elif not isinstance(moment, int) or isinstance(moment, bool):
                raise ValueError("a start or end is a date-time with its offset "
                                 "(2026-07-01T00:00:00+02:00) or unix seconds, not %r" % (moment,))
            pair.append(moment)
        spans.append(pair)
    return spans


def _setting(table, key):
    if key != "away":
        return table.get(key, int)
    try:
        return away_spans(table.get(key, list))
    except ValueError as exc:
        table.fail(key, str(exc))


def _slot(table, born, sources):
    table.only(TABLES["consumables"])
    capacity = table.get("capacity", int)
    try:
        consumable = configured(table.get("slot", str), table.get("unit", str), capacity,
                                sku=table.get("sku", str, None),
                                **{k: _setting(table, k) for k in SETTINGS if k in table.table})
        sensor = table.sub("sensor", optional=False)
        if sensor.get("type", str) == "custom":
            source = sources.pop(consumable.slot, None)
            if source is None:
                sensor.fail("type", "custom: the program that loads this file passes the sensor "
                                    "(load_device(path, sources={%r: ...}))" % consumable.slot)
        else:
            source = _sensor(sensor, capacity, born)
        return Slot(consumable, source, table.get("category", str, None))
    except ConfigError:
        raise
    except ValueError as exc:  # the consumable's own checks
        table.fail("", str(exc))


def _sensor(table, capacity, born):
    kind = table.get("type", str)
    if kind not in SENSORS:
        table.fail("type", "unknown sensor type %r (a Pi has %s)" % (kind, ", ".join(SENSORS)))
    table.only(("type",) + SENSORS[kind])
    params = {k: v for k, v in table.table.items() if k != "type"}
    try:
        if kind == "simulated":
            from thingsdk.sensors.simulated import SimulatedLevel

            return SimulatedLevel(params.pop("capacity", capacity), start=born, **params)
        if kind == "flow":
            from thingsdk.sensors.flow import FlowMeter

            return FlowMeter(params.pop("pin"), params.pop("pulses_per_litre"), capacity, **params)
        if kind == "hx711":
            from thingsdk.sensors.hx711 import HX711, LoadCell

            adc = HX711(params.pop("data_pin"), params.pop("clock_pin"), params.pop("gain", 128))
            return LoadCell(adc, params.pop("counts_per_unit"), **params)
        return _tank(table, params)
    except (KeyError, TypeError) as exc:
        table.fail("", "bad or missing parameter: %s" % exc)


def _tank(table, params):
    from thingsdk.sensors import level

    shapes = {"vertical-cylinder": (level.VerticalCylinder, ("diameter", "height")),
              "box": (level.Box, ("width", "depth", "height")),
              "horizontal-cylinder": (level.HorizontalCylinder, ("diameter", "length"))}
    name = params.pop("shape")
    if name not in shapes:
        table.fail("shape", "expected %s, not %r" % (" or ".join(shapes), name))
    shape, sizes = shapes[name]
    for size in ("diameter", "height", "width", "depth", "length"):
        if size in params and size not in sizes:
            table.fail(size, "a %s tank has no %s (its sizes: %s)" % (name, size, ", ".join(sizes)))
    distance = level.UltrasonicDistance(params.pop("echo"), params.pop("trigger"),
                                        params.pop("max_distance", 2.0))
    return level.TankLevel(shape(*[params.pop(size) for size in sizes]), distance,
                           params.pop("offset", 0))
