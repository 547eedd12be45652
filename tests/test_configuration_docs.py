"""docs/configuration.md against the code that reads device.toml: every setting the code takes
is documented, every documented setting is taken, the documented defaults of [lifecycle] are the
code's, and the page's example loads."""

import re
from pathlib import Path

import device_toml
import pytest

from thingsdk.core.lifecycle import DEFAULTS
from thingsdk.crypto import Ed25519Signer, save_keypair
from thingsdk.device import config
from thingsdk.firmware_build import BOARD_SENSORS

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "configuration.md"
ROW = re.compile(r"^\| `([a-z0-9_]+)` \| ([^|]*) \| ([^|]*) \|")


def sections():
    """{heading: [(first cell, second cell, third cell), ...]} of the page's tables."""
    found, heading = {}, None
    for line in PAGE.read_text().splitlines():
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
            found[heading] = []
        elif heading and ROW.match(line):
            found[heading].append(ROW.match(line).groups())
    return found


def settings(prefix):
    (rows,) = [rows for heading, rows in sections().items() if heading.startswith(prefix)]
    return rows


def parameters(cell):
    """The `names` in a sensor row's parameters cell."""
    return re.findall(r"`([a-z_]+)`", cell)


@pytest.mark.parametrize("table", sorted(config.TABLES))
def test_each_table_documents_exactly_the_settings_it_takes(table):
    heading = "`[[consumables]]`" if table == "consumables" else "`[%s]`" % table
    documented = [name for name, _, _ in settings(heading)]
    assert sorted(documented) == sorted(config.TABLES[table])


def test_the_lifecycle_defaults_are_the_code_s():
    documented = {name: default.strip(' `"') for name, _, default in settings("`[lifecycle]`")}
    assert documented == {name: str(value) for name, value in DEFAULTS.items()}


def test_the_sensors_documented_are_the_sensors_a_pi_and_a_board_take():
    pi = {kind: parameters(cell) for kind, cell, _ in settings("Sensors on a Pi")}
    assert pi == {kind: list(names) for kind, names in config.SENSORS.items()}
    board = {kind: parameters(cell) for kind, cell, _ in settings("Sensors on a board")}
    assert sorted(board) == sorted(BOARD_SENSORS)
    configure = (ROOT / "firmware" / "lib" / "configure.py").read_text()
    body = configure[configure.index("def sensor("):configure.index("def slot(")]
    for kind, block in re.findall(r'kind == "(\w+)":(.*?)(?=\n    if |\n    raise)', body, re.S):
        read = set(re.findall(r'table(?:\["|\.get\(")(\w+)"', block))
        assert set(board[kind]) == read, kind


def test_the_page_s_example_loads(tmp_path):
    example = re.search(r"```toml\n(.*?)```", PAGE.read_text(), re.S).group(1)
    for name in ("device", "vendor", "owner"):
        save_keypair(Ed25519Signer.generate(), tmp_path / ("%s.key" % name),
                     tmp_path / ("%s.pub" % name))
    # offline and with a sensor this machine has: the rest of the example as written
    example = example[:example.index("[broker]")] + example[example.index("[lifecycle]"):]
    example = example.replace('{ type = "flow", pin = 17, pulses_per_litre = 450 }',
                              '{ type = "simulated", daily_use = 1500 }')
    (tmp_path / "mandate.cwt").write_bytes(b"")  # read at start, checked by the device then
    path = tmp_path / "device.toml"
    path.write_text(example)
    device = config.load(path)
    assert [s.consumable.lead_time for s in device.slots.values()] == [172800]


@pytest.mark.parametrize("setting, message", [
    ('interval = "five"', "device.interval: expected int or float, not 'five'"),
    ("interval = 0", "device.interval: must be more than 0, not 0"),
    ("heartbeat = -60", "device.heartbeat: must be more than 0, not -60"),
    ("heartbeat = 1.5", "device.heartbeat: expected int, not 1.5"),
    ("[broker]\nurl = \"mqtt://127.0.0.1:1883\"\nretry = 5\n",
     "broker.retry: tunes a board's own MQTT client"),
    ("[broker]\nurl = \"mqtt://127.0.0.1:1883\"\nbackoff = [5, 1]\n",
     "broker.backoff: expected [first, most]"),
    ("[broker]\nurl = \"mqtt://127.0.0.1:1883\"\nkeepalive = 0\n",
     "broker.keepalive: must be more than 0, not 0"),
    ("[lifecycle]\nquote_wiat = 300\n", "lifecycle.quote_wiat: unknown setting"),
    ("[lifecycle]\nquote_wait = -1\n", "lifecycle: quote_wait must be an int >= 0"),
])
def test_a_wrong_setting_names_the_file_and_the_setting(tmp_path, setting, message):
    path = device_toml.write(tmp_path, setting)
    with pytest.raises(config.ConfigError) as caught:
        config.load(path)
    assert str(caught.value).startswith("%s: %s" % (path, message))
    assert "\n" not in str(caught.value)


def test_the_pi_takes_the_broker_settings_it_documents(tmp_path):
    path = device_toml.write(tmp_path, '[broker]\nurl = "mqtt://127.0.0.1:1883"\nkeepalive = 15\n'
                                       'limit = 7\nbackoff = [0.5, 8]\n')
    transport = config.load(path).transport
    assert (transport.keepalive, transport.queue_limit) == (15, 7)


def test_time_away_is_read_as_unix_seconds_from_date_times_or_numbers(tmp_path):
    filter_away = device_toml.FILTER + (
        "away = [[2026-07-04T08:00:00+02:00, 2026-07-12T20:00:00Z], [1798675200, 1798934400]]\n")
    path = device_toml.write(tmp_path, consumable=filter_away)
    consumable = config.load(path).slots["water-filter"].consumable
    assert consumable.away == [[1783144800, 1783886400], [1798675200, 1798934400]]


@pytest.mark.parametrize("away, message", [
    ('[[2026-07-04, 2026-07-12]]', "a start or end is a date-time with its offset"),
    ('[[2026-07-04T08:00:00, 2026-07-12T20:00:00]]', "a start or end is a date-time with its"),
    ('[1783144800, 1783886400]', "expected [start, end] pairs"),
    ('"the first week of July"', "expected list, not"),
    ('[[1783886400, 1783144800]]', "away: each end after its start"),
    ('[[1, 5], [3, 9]]', "away: spans must not overlap"),
])
def test_wrong_time_away_names_the_file_and_the_setting(tmp_path, away, message):
    path = device_toml.write(tmp_path, consumable=device_toml.FILTER + "away = %s\n" % away)
    with pytest.raises(config.ConfigError) as caught:
        config.load(path)
    assert str(caught.value).startswith("%s: consumables[0]" % path)
    assert message in str(caught.value) and "\n" not in str(caught.value)
