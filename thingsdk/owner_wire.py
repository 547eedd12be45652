"""The owner on the wire: an owner's MQTT client for its devices (docs/topics.md).

It connects as the owner (client id = the CN of its certificate: the owner's key id in hex, or
that and `.NAME` for each further front end; see `thingsdk broker add --front`) with a persistent
session and subscribes at QoS 1 to each device's to-owner topic,
so what a device publishes while the owner is offline waits in the broker for it. Each message
is opened with the device's pinned public key (thingsdk.core.envelope.Inbox): signature, catalog,
addressing and the replay guard; what fails is counted by reason and handed on marked refused,
never as verified. Answers go out on the device's from-owner topic. A front end that shows
more (the owner's page reads the devices' uplink, downlink and presence too) names those topic
kinds in `also` and takes their messages, as they come, in `on_other`.

Used by `thingsdk owner approve|decline|cancel --broker`, `thingsdk owner watch` and the owner's
page (`thingsdk owner serve`):

    with OwnerLink.connect(url, owner_signer, [device_pub], on_heard=print, ca_file=...) as link:
        link.send(device_kid, data)
"""

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from thingsdk import codec, topics
from thingsdk.core import envelope, messages, replay, schemas
from thingsdk.core.keys import key_id
from thingsdk.core.messages import Message
from thingsdk.crypto import Ed25519Signer, Ed25519Verifier
from thingsdk.mqtt import Ack, MqttError, Transport, certificate_cn

__all__ = ["Heard", "OwnerLink"]


@dataclass(frozen=True)
class Heard:
    """One message that came on a device's to-owner topic. `message` is set only when it was
    verified with the device's key and taken by the replay guard; otherwise `refused` names why
    (a reason token of envelope.Inbox, or `duplicate` for a redelivery) and `detail` says more."""

    device: bytes
    data: bytes
    message: Message | None = None
    refused: str | None = None
    detail: str = ""

    @property
    def verified(self) -> bool:
        return self.message is not None


class OwnerLink:
    """The owner's link to its devices over a broker connection (not started: `start()` or
    `with`).

    `transport`: a thingsdk.mqtt.Transport whose client id is the owner's key id in hex (see
    `connect`; one this link owns: it sets its on_message); `owner`: the owner's signer;
    `devices`: the public keys of its devices (raw 32 bytes), whose to-owner topics it reads;
    `on_heard(heard: Heard)` runs for every message, in the network thread. `also`: other topic
    kinds of each device to read (thingsdk.topics.UP, DOWN, PRESENCE), whose messages go as they
    came to `on_other(topic, payload)`, unopened, as does anything on a topic not its devices'.
    `refusals` counts refused messages by reason; `clock()` gives unix seconds for the freshness
    checks.
    """

    def __init__(self, transport: Transport, owner: Ed25519Signer, devices: Iterable[bytes], *,
                 on_heard: Callable[[Heard], None] | None = None, also: Iterable[str] = (),
                 on_other: Callable[[str, bytes], None] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.owner = owner
        keys = {key_id(pub): Ed25519Verifier(pub) for pub in devices}
        self.devices = sorted(keys)
        self.on_heard = on_heard
        self.on_other = on_other
        self.clock = clock
        self._inbox = envelope.Inbox(owner.kid, keys, codec,
                                     replay.ReplayGuard(max_lifetime=schemas.MAX_LIFETIME))
        self._lock = threading.Lock()
        self.transport = transport
        transport.on_message = self.deliver
        self.kinds = (topics.TO_OWNER,) + tuple(kind for kind in also if kind != topics.TO_OWNER)
        self._subscribed = [(topic, transport.subscribe(topic)) for topic in
                            (_topic(kind, kid) for kid in self.devices for kind in self.kinds)]

    @classmethod
    def connect(cls, url: str, owner: Ed25519Signer, devices: Iterable[bytes], *,
                on_heard: Callable[[Heard], None] | None = None, ca_file: str | None = None,
                cert_file: str | None = None, key_file: str | None = None, also: Iterable[str] = (),
                on_other: Callable[[str, bytes], None] | None = None,
                clock: Callable[[], float] = time.time, **options) -> "OwnerLink":
        """A link on its own connection to the broker at `url` (not started), as the owner, with
        a persistent session. `ca_file`, `cert_file`, `key_file`: mutual TLS for mqtts:// (the
        owner's certificate: CN = its key id, or that and `.NAME` for one more front end, see
        `thingsdk broker add --front`). The client id is the certificate's CN (what a broker set
        up by `broker init` uses whatever the client says), else the owner's key id in hex.
        `options` are thingsdk.mqtt.Transport's."""
        transport = Transport(url, _client_id(owner, cert_file), ca_file=ca_file,
                              cert_file=cert_file, key_file=key_file, **options)
        return cls(transport, owner, devices, on_heard=on_heard, also=also, on_other=on_other,
                   clock=clock)

    @property
    def refusals(self) -> dict[str, int]:
        """Messages refused since start, by reason."""
        with self._lock:
            return dict(self._inbox.rejections)

    def start(self) -> "OwnerLink":
        self.transport.start()
        return self

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> "OwnerLink":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.close()

    def ready(self, timeout: float | None = None) -> bool:
        """True once connected and subscribed to every device's topics (from then on the broker
        keeps their messages for this owner's session while it is away), False after `timeout`
        seconds. Raises thingsdk.mqtt.ConnectionRefused if the broker refused it, and MqttError if
        it refused a subscription (the owner's access rules lack a device)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self.transport.wait_connected(timeout):
            return False
        for topic, ack in self._subscribed:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not ack.wait(left):
                return False
            if ack.refused:
                raise MqttError("the broker at %s refused this owner %s" % (
                    self.transport.address, topic))
        return True

    def send(self, device: bytes, data: bytes) -> Ack:
        """Publish a sealed message (an approval, a cancel) on the device's from-owner topic, QoS
        1; the returned Ack completes on the broker's PUBACK. Held until connected."""
        return self.transport.publish(topics.from_owner(device), data)

    def open(self, device: bytes, data: bytes) -> Heard:
        """What a message from `device` is: verified and new, or refused and why (counted)."""
        with self._lock:
            opened = self._inbox.open(data, int(self.clock()))
            if opened.status == envelope.ACCEPT and opened.message.kid != device:
                self._inbox.rejections["wrong-topic"] = \
                    self._inbox.rejections.get("wrong-topic", 0) + 1
                return Heard(device, data, refused="wrong-topic",
                             detail="signed by device %s" % opened.message.kid.hex())
            if opened.status == envelope.REJECT:
                return Heard(device, data, refused=opened.reason, detail=opened.detail)
            if opened.status == envelope.DUPLICATE:
                return Heard(device, data, refused=envelope.DUPLICATE, detail="delivered again")
            self._inbox.commit(opened)
            return Heard(device, data, opened.message)

    def check(self, device: bytes, data: bytes) -> Message | None:
        """The message in `data` if it is signed by `device` and addressed to this owner, every
        check but the replay guard's (for what was kept after it opened once); None if not."""
        with self._lock:
            opened = self._inbox.check(data)
        if opened.status is not None or opened.message.kid != device:
            return None
        return opened.message

    def deliver(self, topic: str, payload: bytes) -> None:
        """One message from the broker (the transport's on_message): one on a to-owner topic is
        opened and handed to on_heard; any other goes to on_other as it came."""
        try:
            kind, device = topics.parse(topic)
        except ValueError:
            kind, device = None, b""
        if kind == topics.TO_OWNER:
            if self.on_heard is not None:
                self.on_heard(self.open(device, payload))
        elif self.on_other is not None:
            self.on_other(topic, payload)


def _client_id(owner: Ed25519Signer, cert_file: str | None) -> str:
    """The CN of the client certificate in `cert_file`, else the owner's key id in hex (also
    when the file cannot be read: the transport then says why, naming it)."""
    try:
        cn = None if cert_file is None else certificate_cn(cert_file)
    except (OSError, ValueError):
        cn = None
    return cn if isinstance(cn, str) and cn else owner.kid.hex()


_TOPIC = {topics.UP: topics.uplink, topics.DOWN: topics.downlink,
          topics.PRESENCE: topics.presence, topics.TO_OWNER: topics.to_owner}


def _topic(kind: str, kid: bytes) -> str:
    try:
        return _TOPIC[kind](kid)
    except KeyError:
        raise ValueError("an owner reads a device's %s topics, not %r" % (
            ", ".join(sorted(_TOPIC)), kind)) from None
