"""The device runtime on CPython: the portable agent (thingsdk.core.agent) with a state folder,
cryptography's Ed25519, an MQTT Transport on its own thread and a loop that steps it.

The agent holds the logic and its crash-safety rules; this adds what only a Raspberry Pi has:
threads (the transport's messages are queued for the next step, and one lock serialises every
call), logging, os.urandom and IANA time zones. A message from the vendor or the owner is
acknowledged to the broker only once the step that took it has kept what it caused: one that came
just before a crash or a power cut is delivered again to the next run, not lost.
"""

import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

from thingsdk import codec, topics
from thingsdk.core import messages as m
from thingsdk.core.agent import MAX_SLOTS, Agent, Slot
from thingsdk.core.consumable import DAY
from thingsdk.crypto import Ed25519Signer, Ed25519Verifier
from thingsdk.device.state import StateFolder
from thingsdk.mqtt import MqttError
from thingsdk.zones import zone_offset

if TYPE_CHECKING:
    from thingsdk.mqtt import Transport

__all__ = ["MAX_SLOTS", "Device", "Slot"]
log = logging.getLogger(__name__)


class Device(Agent):
    """One device: its key (`signer`), the vendor's and the owner's public keys (pinned), a
    StateFolder, its Slots, an MQTT Transport (not started, with the device's presence topic;
    None to stay offline), `clock()` (unix seconds), `config`: lifecycle settings (overrides of
    lifecycle.DEFAULTS), the `heartbeat` period of its status messages and `interval`, the real
    seconds between steps in `run`.

    `mandate` is a mandate token to offer at start (from the owner's file); the one held in the
    state folder stays unless this one verifies with a higher version.
    """

    def __init__(self, signer: Ed25519Signer, vendor_key: bytes, owner_key: bytes,
                 state: StateFolder, slots: Iterable[Slot], transport: "Transport | None" = None,
                 clock: Callable[[], float] = time.time,
                 config: Mapping[str, int | str] | None = None, heartbeat: int = DAY,
                 interval: float = 1.0, mandate: bytes | None = None) -> None:
        self.transport = transport
        self.clock = clock
        self.interval = interval
        self._offered_mandate = mandate
        self._lock = threading.RLock()
        self._downlinks = queue.Queue()
        super().__init__(signer, Ed25519Verifier(vendor_key), Ed25519Verifier(owner_key), state,
                         slots, codec, lambda: os.urandom(m.ID_SIZE), int(clock()),
                         publish=self._publish, config=config, heartbeat=heartbeat,
                         zones=zone_offset, note=log.info,
                         to_owner=None if transport is None else self._publish_to_owner)

    def now(self) -> int:
        return int(self.clock())

    # Running.

    def start(self) -> None:
        """Connect, carry on every need kept in the state folder, and tell the vendor the
        mandate held (the vendor checks orders against it)."""
        with self._lock:
            if self.transport is not None:
                self.transport.manual_ack = True  # acknowledged in step, once kept
                self.transport.on_message = self._on_message
                self.transport.subscribe(topics.downlink(self.kid))
                self.transport.subscribe(topics.from_owner(self.kid))
                self.transport.start()
            super().start(self.now(), self._offered_mandate)

    def run(self, stop: threading.Event) -> None:
        """start(), then step every `interval` seconds until the threading.Event `stop` is set;
        then close()."""
        self.start()
        try:
            while not stop.is_set():
                self.step()
                stop.wait(self.interval)
        finally:
            self.close()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def step(self, now: int | None = None) -> None:
        """One turn: messages in, sensors read, deadlines, new needs, the heartbeat."""
        with self._lock:
            while True:
                try:
                    data, delivery = self._downlinks.get_nowait()
                except queue.Empty:
                    break
                # Each is judged by the clock when it is taken (one that came during this step
                # was signed after it began: it is not from the future), and acknowledged once
                # receive has kept what it caused.
                self.receive(data, self.now() if now is None else now)
                if self.transport is not None and delivery is not None:
                    self.transport.ack(delivery)
            super().step(self.now() if now is None else now)

    def report_fault(self, code: str, diagnostics: Mapping[str, int | str | bool],
                     text: str | None = None) -> bytes:
        """Ask the vendor for support with a fault (a token) and diagnostics (name -> int, text
        or bool); returns the need's id. One open case per fault code."""
        with self._lock:
            return super().report_fault(code, diagnostics, self.now(), text)

    def take_mandate(self, token: bytes, now: int) -> bool:
        with self._lock:
            return super().take_mandate(token, now)

    def _on_message(self, topic, payload, delivery=None):
        """From the transport's thread: the vendor's and the owner's messages, queued for the
        next step (the agent tells them apart by their signature) with what acknowledges them
        once taken; any other is acknowledged at once."""
        if topic in (topics.downlink(self.kid), topics.from_owner(self.kid)):
            self._downlinks.put((payload, delivery))
        elif delivery is not None and self.transport is not None:
            self.transport.ack(delivery)

    def _publish(self, data: bytes, msg_type: int, topic: str | None = None) -> bool:
        """Publish now (True), or leave it queued until the transport connects (False), on the
        uplink or `topic`."""
        if self.transport is None:
            return False
        try:
            return not self.transport.publish(topic or topics.uplink(self.kid), data).queued
        except MqttError as exc:  # the outbox keeps it: the lifecycle sends it again
            log.warning("could not publish: %s", exc)
            return False

    def _publish_to_owner(self, data: bytes, msg_type: int) -> bool:
        """To the owner's topic (the outbox keeps the bytes for an owner without a broker too)."""
        return self._publish(data, msg_type, topics.to_owner(self.kid))
