"""Every example in examples/ runs end to end in simulated mode against mosquitto, in accelerated
time, and tells the outcome it is there to show. They run side by side (each waits on its
accelerated clock most of the time), then each one's output is checked."""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
SPEED = "20000"  # simulated seconds per real second
TIMEOUT = 60  # real seconds, per example

DELIVERED = [r"ORDER PLACED for {slot}: 1 x {sku}, {total} \(vendor's ref ORD-\d+\)",
             r"DELIVERED to {slot}"]
EXPECTED = {
    "water_filter.py": DELIVERED + [r"{slot}: delivered -> closed \(refilled\)"],
    "coffee_beans.py": DELIVERED + [r"{slot}: delivered -> closed \(refilled\)"],
    "printer_ink.py": DELIVERED,
    "vending_machine.py": [
        r"SUPPORT REPLY for {slot}:\n    1\. Open the coin mechanism",
        r"{slot}: decided to buy\. A technician visit was quoted for the fault",
        r"ORDER PLACED for {slot}: 1 x {sku}, {total}"],
}
SLOTS = {"water_filter.py": ("water-filter", "WF-300", "29.48 EUR"),
         "coffee_beans.py": ("coffee-beans", "BEANS-1KG", "22.80 EUR"),
         "printer_ink.py": ("ink-black", "INK-XL-BK", "31.90 EUR"),
         "vending_machine.py": ("fault:coin-jam", "service-visit", "89.00 EUR")}


# The embedding examples of the README, tested where the API is.
ELSEWHERE = {"embed_pi.py": "test_public_api.py", "board_main.py": "test_firmware_types.py"}


def test_every_example_is_tested():
    scripts = sorted(p.name for p in EXAMPLES.glob("*.py") if p.name != "world.py")
    assert scripts == sorted(list(EXPECTED) + list(ELSEWHERE))
    for name, test in ELSEWHERE.items():
        assert name in (ROOT / "tests" / test).read_text()
    index = (EXAMPLES / "README.md").read_text()
    assert all("`%s`" % name in index for name in scripts)


def test_every_example_runs_to_its_outcome(broker):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    running = {name: subprocess.Popen(
        [sys.executable, str(EXAMPLES / name), "--broker", broker.url, "--speed", SPEED,
         "--timeout", str(TIMEOUT)] + ([] if name == "vending_machine.py" else ["--simulate"]),
        cwd=EXAMPLES, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for name in EXPECTED}
    try:
        outputs = {name: process.communicate(timeout=TIMEOUT + 30)[0]
                   for name, process in running.items()}
    finally:
        for process in running.values():
            if process.poll() is None:
                process.kill()
                process.wait()
    for name, out in outputs.items():
        assert running[name].returncode == 0, (name, out)
        slot, sku, total = SLOTS[name]
        for pattern in EXPECTED[name]:
            assert re.search(pattern.format(slot=re.escape(slot), sku=re.escape(sku),
                                            total=re.escape(total)), out), (name, pattern, out)
        assert "decided to refuse" not in out, (name, out)
        assert "the device's state, as `thingsdk status` shows it:" in out, (name, out)


def test_without_a_broker_an_example_embeds_one():
    done = subprocess.run([sys.executable, str(EXAMPLES / "vending_machine.py"), "--speed", SPEED,
                           "--timeout", str(TIMEOUT)], cwd=EXAMPLES, capture_output=True,
                          text=True, timeout=TIMEOUT + 30,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUPPORT REPLY for fault:coin-jam:" in done.stdout
    assert "ORDER PLACED for fault:coin-jam: 1 x service-visit, 89.00 EUR" in done.stdout
