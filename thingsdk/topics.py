"""The MQTT topic layout on the broker (docs/topics.md): the device topics of thingsdk.core.topics,
the vendor's shared subscription, topic parsing and who may do what (the access rules that
`thingsdk broker` turns into the broker's ACL, thingsdk.broker_setup).

Each device's topics end in its key id (lower-case hex), so the broker can confine a device to its
own topics. Replies are routed by the signed payload (`to`, `re`), never by reply topics.
"""

import re

from thingsdk.core.keys import kid_hex
from thingsdk.core.topics import (DOWN, FROM_OWNER, OFFLINE, ONLINE, PREFIX, PRESENCE, TO_OWNER,
                                  UP, downlink, every, from_owner, presence, to_owner, uplink)

_KID_HEX = re.compile(r"[0-9a-f]{16}\Z")
# An access rule is (WRITE, topic): may publish there, or (READ, filter): may subscribe to exactly
# that filter and receive what it matches. Nothing else is allowed.
READ, WRITE = "read", "write"
__all__ = ["DOWN", "FROM_OWNER", "OFFLINE", "ONLINE", "PREFIX", "PRESENCE", "READ", "TO_OWNER", "UP",
           "WRITE", "device_access", "downlink", "every", "from_owner", "kid_hex", "owner_access",
           "parse", "presence", "shared_filter", "to_owner", "uplink", "vendor_access",
           "vendor_uplinks"]
KINDS = (UP, DOWN, PRESENCE, TO_OWNER, FROM_OWNER)


def vendor_uplinks(group="vendor"):
    """The vendor's shared subscription: the broker spreads all uplinks over the group's workers."""
    if not group or any(c in group for c in "/+#"):
        raise ValueError("bad share group name: %r" % (group,))
    return "$share/%s/%s" % (group, every(UP))


def shared_filter(topic_filter):
    """The filter a subscription matches messages against: without its `$share/GROUP/`."""
    if topic_filter.startswith("$share/"):
        return topic_filter.split("/", 2)[2]
    return topic_filter


def parse(topic):
    """(kind, kid) of a device topic; kind is one of KINDS (UP, DOWN, PRESENCE, TO_OWNER,
    FROM_OWNER). Raises ValueError otherwise."""
    parts = topic.split("/")
    if len(parts) != 4 or "/".join(parts[:2]) != PREFIX or parts[2] not in KINDS:
        raise ValueError("not a thingsdk device topic: %r" % (topic,))
    if not _KID_HEX.match(parts[3]):
        raise ValueError("bad key id in topic: %r" % (topic,))
    return parts[2], bytes.fromhex(parts[3])


def device_access(kid):
    """What a device may do on the broker: publish its uplink, presence and messages to its
    owner; read its downlink and its owner's messages."""
    return [(WRITE, uplink(kid)), (WRITE, presence(kid)), (READ, downlink(kid)),
            (WRITE, to_owner(kid)), (READ, from_owner(kid))]


def vendor_access(group="vendor"):
    """What a vendor worker may do: read every uplink (plainly or through the share `group`) and
    presence, and publish every downlink."""
    return [(READ, every(UP)), (READ, vendor_uplinks(group)), (READ, every(PRESENCE)),
            (WRITE, every(DOWN))]


def owner_access(kids):
    """What an owner may do: read the uplink, downlink, presence and messages to the owner of its
    own devices and publish its messages to them; nothing else and nothing of anyone else's."""
    return [rule for kid in kids for rule in (
        (READ, uplink(kid)), (READ, downlink(kid)), (READ, presence(kid)), (READ, to_owner(kid)),
        (WRITE, from_owner(kid)))]
