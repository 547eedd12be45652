"""What paho's MQTT 5 Properties cost a vendor per order, with thingsdk.mqtt_properties and
without it, side by side in one run.

    python bench/paho_properties.py [--messages 4000] [--rounds 3]

A vendor's Transport (MQTT 5, manual acknowledgement, as `vendor serve` has it) on a local
mosquitto (TCP_NODELAY on, as bench/fleet.py has it), in a process of its own: it takes
`--messages` QoS 1 uplinks of an order's size, sent by the C client `mosquitto_pub` if installed
(paho otherwise, in a process of its own), each acknowledged as it comes; then it publishes as
many answers at QoS 1 and waits for the broker's PUBACKs. Its CPU time (all its threads) is
measured for each half, per message; once with paho's Properties as paho has them and once with
`mqtt_properties.install()`, in turn for `--rounds` rounds, the least of each kept. An order
brings the vendor three uplinks and sends two answers, so it prints the MQTT work per order both
ways and what the change saves.
"""

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from broker import Pki  # noqa: E402
from fleet import NoDelayBroker  # noqa: E402

SIZE = 238  # bytes: an order message
UP, DOWN = 3, 2  # an order's uplinks (mandate, quote request, order) and answers (offer, receipt)
UPLINK, DOWNLINK = "bench/up", "bench/down"


def paho_as_it_is():
    """Undo mqtt_properties.install(): paho's own methods back on its Properties."""
    from paho.mqtt.properties import Properties

    spec = importlib.util.find_spec("paho.mqtt.properties")
    pristine = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pristine)
    for name in ("__init__", "isEmpty", "clear", "pack", "unpack"):
        setattr(Properties, name, vars(pristine.Properties)[name])
    del Properties._thingsdk_light


def measure(light, url, count):
    """The vendor's side, in this process: CPU µs per uplink taken and per answer published."""
    from thingsdk import mqtt

    if not light:
        paho_as_it_is()
    got = []
    done = threading.Event()

    def arrived(topic, payload, delivery):
        transport.ack(delivery)
        got.append(time.process_time())
        if len(got) == count:
            done.set()

    transport = mqtt.Transport(url, "bench-vendor-%d" % os.getpid(), on_message=arrived,
                               version=mqtt.V5, manual_ack=True)
    ack = transport.subscribe(UPLINK)
    transport.start()
    if not ack.wait(10):
        raise SystemExit("no SUBACK from %s" % url)
    print("ready", flush=True)
    if not done.wait(120):
        raise SystemExit("only %d of %d uplinks came" % (len(got), count))
    start = got[count // 10]  # the first tenth left out: connection and start-up
    taken = (got[-1] - start) / (count - 1 - count // 10)
    payload = os.urandom(SIZE)
    start = time.process_time()
    acks = [transport.publish(DOWNLINK, payload) for _ in range(count)]
    if not all(a.wait(60) for a in acks):
        raise SystemExit("not every answer was acknowledged")
    published = (time.process_time() - start) / count
    transport.close()
    from paho.mqtt.properties import Properties

    print(json.dumps({"taken_us": 1e6 * taken, "published_us": 1e6 * published,
                      "light": getattr(Properties, "_thingsdk_light", False)}), flush=True)


def send(port, count):
    """`count` QoS 1 uplinks to the vendor: with mosquitto_pub if installed, else paho."""
    line = b"x" * SIZE + b"\n"
    pub = shutil.which("mosquitto_pub")
    if pub:
        subprocess.run([pub, "-h", "127.0.0.1", "-p", str(port), "-t", UPLINK, "-q", "1", "-l"],
                       input=line * count, check=True, timeout=120)
        return "mosquitto_pub (C)"
    subprocess.run([sys.executable, __file__, "--paho-send", str(port), str(count)], check=True,
                   timeout=120)
    return "paho (mosquitto-clients not installed)"


def paho_send(port, count):
    import paho.mqtt.client as paho

    client = paho.Client(paho.CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
    client.connect("127.0.0.1", port)
    client.loop_start()
    infos = [client.publish(UPLINK, b"x" * SIZE, qos=1) for _ in range(count)]
    for info in infos:
        info.wait_for_publish(60)
    client.loop_stop()
    client.disconnect()


def one_run(light, broker, count):
    vendor = subprocess.Popen([sys.executable, __file__, "--measure", "light" if light else "paho",
                               broker.url, str(count)], stdout=subprocess.PIPE, text=True)
    if vendor.stdout.readline().strip() != "ready":
        raise SystemExit("the vendor's side did not start")
    how = send(broker.port, count)
    out, _ = vendor.communicate(timeout=180)
    if vendor.returncode:
        raise SystemExit("the vendor's side failed")
    return json.loads(out.strip().splitlines()[-1]), how


def run(count, rounds):
    """{False: paho as it is, True: light}: each the least per-message figures of `rounds`, and
    how the uplinks were sent."""
    best = {False: {}, True: {}}
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        for name in ("broker", "pki"):
            (folder / name).mkdir()
        broker = NoDelayBroker(folder / "broker", Pki(folder / "pki"))
        broker.start()
        try:
            for _ in range(rounds):
                for light in (False, True):
                    figures, how = one_run(light, broker, count)
                    if figures.pop("light") != light:
                        raise SystemExit("the vendor's side did not have paho as asked")
                    for key, value in figures.items():
                        best[light][key] = min(best[light].get(key, value), value)
        finally:
            broker.stop()
    return best, how


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--measure", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--paho-send", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        mode, url, count = args.measure
        return measure(mode == "light", url, int(count))
    if args.paho_send:
        return paho_send(*args.paho_send)
    best, how = run(args.messages, args.rounds)
    print("the vendor's MQTT 5 work (paho, one connection to a local mosquitto), CPU µs, the "
          "least of %d rounds of %d messages of %d bytes, uplinks sent by %s:"
          % (args.rounds, args.messages, SIZE, how))
    print("  %-34s %12s %12s %16s" % ("", "per uplink", "per answer", "per order (%d+%d)"
                                      % (UP, DOWN)))
    per_order = {}
    for light, name in ((False, "paho as it is"), (True, "with thingsdk.mqtt_properties")):
        f = best[light]
        per_order[light] = UP * f["taken_us"] + DOWN * f["published_us"]
        print("  %-34s %12.1f %12.1f %16.1f" % (name, f["taken_us"], f["published_us"],
                                                per_order[light]))
    print("  saved per order: %.1f µs (%.0f %% of paho's MQTT work)"
          % (per_order[False] - per_order[True],
             100 * (per_order[False] - per_order[True]) / per_order[False]))


if __name__ == "__main__":
    main()
