"""The device under test: a board (thingsdk.rig's `board` and `rig` fixtures) running thingsdk's
firmware, built for a test world's device (tests/world.py: keys, mandate, the reference vendor on
the rig's mosquitto, an accelerated clock), and the tank of water its filter serves.

The rig holds the device at boot (rig.json) and runs it in slices, `run(seconds)`: on a real board
the REPL is busy while the device runs, so stimuli, power cuts and checks come between slices, or
on cue from what the board prints; the virtual board behaves the same way.
"""

import json
import re

from thingsdk import codec, topics
from thingsdk.core import envelope
from thingsdk.crypto import Ed25519Verifier
from thingsdk.rig.deploy import deploy
from world import ADC_PIN, Needs, Tank, Tap

STOPPED = r"thingsdk: stopped\r?\n"


class Dut(Needs):
    """The world's device on `board`, stimulated through `rig`."""

    def __init__(self, board, rig, world, kind, slice_seconds=1.0, wifi=None):
        self.board, self.rig, self.world, self.kind = board, rig, world, kind
        self.slice_seconds, self.wifi = slice_seconds, wifi
        self.tank = Tank(world)
        self.pin = ADC_PIN[kind]
        self.uplinks = Tap(world.broker, topics.uplink(world.kid))

    def deploy(self, hook=None):
        """Build the world's device for this board, copy it over, hold it at boot."""
        folder = self.world.build_board(tls=False, board=self.kind)
        if self.wifi:
            (folder / "wifi.json").write_text(json.dumps(self.wifi))
        copied = deploy(self.board, folder, say=lambda text: None)
        self.rig.set_hook(dict(hook or {}, hold=True))
        return folder, copied

    def run(self, seconds=None, until=STOPPED):
        """Run the device for a slice; the console lines it printed, up to the line matching
        `until` (by default the end of the slice)."""
        seconds = self.slice_seconds if seconds is None else seconds
        out = self.board.exec("import app\napp.main(seconds=%r)" % seconds,
                              timeout=seconds + 120)
        if not re.search(until, out):  # the virtual board runs it in the background
            out += self.board.expect(r"(?s).*(%s)" % until, seconds + 120).group(0)
        return out

    def run_until(self, condition, slices=60):
        """Slices, the tank's level set before each, until condition(); True if it came."""
        for _ in range(slices):
            self.rig.set_adc(self.pin, self.tank.raw())
            self.run()
            if condition():
                return True
        return False

    # What the board holds, read through its REPL.

    def records(self):
        return self.board.eval("__import__('flash').FlashState('/state').records()")

    def outbox(self):
        """The sealed messages the board keeps (for the vendor, and those the owner fetches)."""
        return self.board.eval(
            "[s.sealed(bytes.fromhex(n[:32]), int(n[33:-5])) for s in "
            "[__import__('flash').FlashState('/state')] for n in "
            "__import__('os').listdir('/state/outbox') if n.endswith('.cose')]")

    def decisions(self):
        audit = self.board.eval("__import__('flash').FlashState('/state').audit.records()")
        return [r for r in audit if "action" in r]

    def verified_uplinks(self):
        """Every message the board published, opened on the host with its public key alone (as
        the vendor does): {type: count}; a message that does not open fails the test."""
        inbox = envelope.Inbox(self.world.vendor_key.kid,
                               {self.world.kid: Ed25519Verifier(self.world.device_key.public_key)},
                               codec)
        seen = {}
        for data in list(self.uplinks.seen):
            opened = inbox.open(data, int(self.world.clock()))
            assert opened.status in (envelope.ACCEPT, envelope.DUPLICATE), opened
            if opened.status == envelope.ACCEPT:
                inbox.commit(opened)
                seen[opened.message.type] = seen.get(opened.message.type, 0) + 1
        return seen

    def close(self):
        self.uplinks.close()
