"""The MQTT topics of a device (docs/topics.md): one uplink, downlink and presence topic each, and
one each way between the device and its owner.

Each device's topics end in its key id (lower-case hex), so the broker can confine a device to its
own topics with three ACL patterns. Replies are routed by the signed payload (`to`, `re`), never by
reply topics.
"""

from thingsdk.core.keys import kid_hex

PREFIX = "thingsdk/v1"
UP, DOWN, PRESENCE = "up", "down", "presence"
TO_OWNER, FROM_OWNER = "to-owner", "from-owner"
ONLINE, OFFLINE = b"online", b"offline"


def uplink(kid):
    """Where the device publishes its messages to the vendor."""
    return "%s/%s/%s" % (PREFIX, UP, kid_hex(kid))


def downlink(kid):
    """Where the device receives messages from the vendor (and only it may subscribe)."""
    return "%s/%s/%s" % (PREFIX, DOWN, kid_hex(kid))


def presence(kid):
    """The device's retained presence, `online` or `offline` (its last will)."""
    return "%s/%s/%s" % (PREFIX, PRESENCE, kid_hex(kid))


def to_owner(kid):
    """Where the device publishes its messages to its owner (approval requests, news)."""
    return "%s/%s/%s" % (PREFIX, TO_OWNER, kid_hex(kid))


def from_owner(kid):
    """Where the device receives its owner's messages (answers, mandates)."""
    return "%s/%s/%s" % (PREFIX, FROM_OWNER, kid_hex(kid))


def every(kind):
    """The filter matching that kind of topic (UP, DOWN or PRESENCE) of every device."""
    return "%s/%s/+" % (PREFIX, kind)
