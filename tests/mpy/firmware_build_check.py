# Runs on the MicroPython WebAssembly port with a built firmware folder mounted: lib/ at /lib (the
# compiled .mpy files only) and identity/ at /identity. Seals a signed status message with the
# device's key read from the seed file, opens it again, and carries it through the firmware's
# MQTT codec; prints what the host test checks.
import json
import os
import sys

import mqtt
from thingsdk.core import cbor, ed25519, envelope, messages

assert not [n for n in os.listdir("/lib/thingsdk/core") if not n.endswith(".mpy")]
config = json.loads(open("/identity/config.json").read())
device = ed25519.Signer(open("/identity/device.seed", "rb").read())
vendor_kid = bytes.fromhex(config["vendor_kid"])
body = {"slots": [{"slot": "water-filter", "unit": "ml", "level": 48, "cap": 300, "rate": 0}]}
data = envelope.seal(messages.STATUS, body, device, vendor_kid, 1, 1767225600, b"\x01" * 16, cbor)
inbox = envelope.Inbox(vendor_kid, {device.kid: ed25519.Verifier(device.public_key)}, cbor)
assert inbox.open(data, 1767225601).status == envelope.ACCEPT
wire = mqtt.publish_head("thingsdk/test", len(data), qos=1, pid=7) + data
length, used = mqtt.decode_length(wire[1:])
assert mqtt.parse_publish(wire[0], wire[1 + used:]) == ("thingsdk/test", 1, 7, data)
print("mpy", sys.implementation._mpy)
print("kid", device.kid.hex(), config["device_kid"])
print("sealed", data.hex())
