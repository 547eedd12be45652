"""paho-mqtt's MQTT 5 `Properties`, made cheap for the packets that carry none.

paho makes a Properties object for every MQTT 5 packet it reads or writes: each PUBLISH, each
PUBACK. Each one builds its own tables of the 27 property names and their types, and walks all
27 names to tell whether it is empty, to clear itself and to pack itself, even when no property
is set. thingsdk's PUBLISH and PUBACK packets carry none (its messages say all in their signed
payload). Measured with bench/paho_properties.py (a vendor's Transport on a local mosquitto, CPU
time), the MQTT work of an order at the vendor, three uplinks taken and two answers published,
was 334-386 µs with paho as it is and 271-311 µs with `install()` (three runs): 57-112 µs less,
of the 1.5-2.2 ms of CPU a `vendor serve` process spent on an order in bench/fleet.py.

`install()` has every Properties share one copy of those tables, which paho only reads, and
answers `isEmpty`, `clear`, `pack` and `unpack` at once for an object with no property set, with
what paho's own code gives for it. An object with a property set goes through paho's own code.
It changes paho only where its Properties has the shape this was written against (paho-mqtt 2:
its four attributes of its own, those tables included); elsewhere it leaves paho as it is.
"""

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

# What a Properties object holds of its own before any property is set (paho-mqtt 2).
_OWN = ("packetType", "types", "names", "properties")


def install(cls=Properties):
    """Make `cls` (paho's Properties) cheap for objects without properties; True if done, False
    if its shape is not the one expected (then nothing is changed). Installing twice is a
    no-op."""
    if getattr(cls, "_thingsdk_light", False):
        return True
    sample = cls(PacketTypes.PUBLISH)
    if sorted(vars(sample)) != sorted(_OWN):
        return False
    tables = {name: getattr(sample, name) for name in _OWN[1:]}
    size = len(_OWN)
    is_empty, clear, pack, unpack = cls.isEmpty, cls.clear, cls.pack, cls.unpack

    def __init__(self, packetType):
        own = self.__dict__
        own["packetType"] = packetType
        own.update(tables)

    def isEmpty(self):  # noqa: N802 (paho's name)
        return len(self.__dict__) == size or is_empty(self)

    def _clear(self):
        if len(self.__dict__) != size:
            clear(self)

    def _pack(self):
        return b"\x00" if len(self.__dict__) == size else pack(self)  # a length of 0

    def _unpack(self, buffer):
        if len(self.__dict__) == size and buffer[:1] == b"\x00":
            return self, 1  # none: the property length, 0, took one byte
        return unpack(self, buffer)

    cls.__init__, cls.isEmpty, cls.clear, cls.pack, cls.unpack = (
        __init__, isEmpty, _clear, _pack, _unpack)
    cls._thingsdk_light = True
    return True
