"""`thingsdk demo`: three simulated things buy their consumables from the reference vendor over
MQTT, in simulated time, within what their owner signed; every message and decision is shown.

broker    an MQTT broker inside the process (amqtt, on loopback), and how clients reach a broker
scenario  the cast: the owner and the three things (keys, sensors, consumables, mandates)
wire      what passes on the broker: every signed message, checked, and what is on its way
story     what happens after each step, the owner's and an attacker's moves, the counts
timeline  the text a person reads: one line per event, a progress line, the summary table
run       the orchestration: simulated time, the vendor, the intro, the steps, the summary
"""

DEFAULT_SPEED = 20000.0  # simulated seconds per real second: the story in about 20 s


class DemoError(Exception):
    """The demo cannot run or did not play out; the text says why, in one line."""
