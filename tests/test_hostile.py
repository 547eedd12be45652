"""Mutated envelopes fed to a device's and the vendor's receivers, by a seeded mutator for a few
seconds each: never an exception, never the acceptance of changed signed bytes, bounded time per
input. THINGSDK_FUZZ_SEED picks another seed."""

import os
import random
import time

import pytest
from hostile_inputs import crafted, mutate
from order_flow import Flow
from test_vendor import CATALOG, T, Device

from thingsdk import codec
from thingsdk.core import mandate
from thingsdk.core import messages as m
from thingsdk.crypto import Ed25519Signer
from thingsdk.seller.limiter import DeviceLimiter, RefusalLimiter
from thingsdk.seller.service import Service, register
from thingsdk.seller.store import Store

SEED = int(os.environ.get("THINGSDK_FUZZ_SEED", "16"))
SECONDS = 3.0  # per receiver
PER_INPUT = 0.25  # seconds: generous for a shared CI machine; a refusal takes microseconds
MIN_INPUTS = 300
OWNER = Ed25519Signer.from_seed(b"\x02" * 32)


def fuzz(genuine, receive):
    """Feed mutations of the genuine messages (and of crafted ones) to receive(data), which
    returns whether the message was taken; returns (inputs, taken, slowest seconds)."""
    rnd = random.Random(SEED)
    bases = list(genuine) + [d for kind in crafted(b"\x00" * 8).values() for d in kind
                             if len(d) < 8192]
    inputs, taken, slowest = 0, 0, 0.0
    deadline = time.perf_counter() + SECONDS
    while time.perf_counter() < deadline:
        data = mutate(rnd.choice(bases), rnd)
        start = time.perf_counter()
        took = receive(data)  # any exception fails the test
        spent = time.perf_counter() - start
        slowest = max(slowest, spent)
        assert spent < PER_INPUT, (spent, data[:64].hex())
        if took:
            assert data in genuine, "changed bytes were accepted: %s" % data.hex()
            taken += 1
        inputs += 1
    assert inputs >= MIN_INPUTS
    return inputs, taken, slowest


def test_a_device_refuses_every_changed_message(tmp_path):
    flow = Flow(str(tmp_path))
    genuine = []
    real_receive = flow.agent.receive

    def capture(data, now):
        genuine.append(data)
        real_receive(data, now)

    flow.agent.receive = capture
    for _ in range(60):  # a need, its offer, order, receipt, shipment and delivery
        flow.turn()
    flow.agent.receive = real_receive
    assert len(genuine) >= 4
    agent = flow.agent

    def receive(data):
        before = sum(agent.refusals.values())
        agent.receive(data, flow.now)
        return sum(agent.refusals.values()) == before

    inputs, taken, _ = fuzz(set(genuine), receive)
    assert sum(agent.refusals.values()) == inputs - taken
    assert len(agent.refusals) >= 5, agent.refusals  # the mutations reach many checks


def vendor_and_device(folder):
    """A Service (neither refusals nor signed messages throttled) on a fresh database, and a
    registered Device."""
    vendor_key = Ed25519Signer.from_seed(b"\x01" * 32)
    service = Service(Store(folder / "vendor.db"), CATALOG, vendor_key,
                      limiter=RefusalLimiter(rate=1e9, burst=1e9),
                      rates=DeviceLimiter(rate=1e9, burst=1e9))
    device = Device(3, vendor_key)
    register(service.store, device.signer.public_key, OWNER.public_key, T)
    return service, device


def test_the_vendor_refuses_every_changed_message(tmp_path):
    service, device = vendor_and_device(tmp_path)
    claims = mandate.make_claims(OWNER.kid, device.signer.public_key, 1, T, T + 365 * 86400,
                                 [["vendors", {"kids": [service.kid]}]])
    genuine = [device.seal(m.MANDATE, {"cwt": mandate.issue(claims, OWNER, codec)}, T)]
    genuine.append(device.seal(m.QUOTE_REQUEST, {"slot": "s", "sku": "WF-300", "qty": 1}, T))
    [offer] = device.receive(service.handle(genuine[-1], device.kid, T), T)
    genuine.append(device.seal(m.ORDER, m.order_body(offer.body, os.urandom(16), 1), T))
    genuine.append(device.seal(m.STATUS, {"slots": [{"slot": "s", "unit": "pcs", "level": 1,
                                                       "cap": 4, "rate": 0}]}, T))
    genuine = set(genuine)

    def receive(data):
        before = sum(service.refusals.values())
        answers = service.handle(data, device.kid, T)
        refused = sum(service.refusals.values()) - before
        assert refused in (0, 1)
        assert not (answers and refused)
        return not refused

    inputs, taken, _ = fuzz(genuine, receive)
    assert sum(service.refusals.values()) == inputs - taken
    assert len(service.refusals) >= 5, service.refusals


@pytest.mark.parametrize("kind", sorted(crafted(b"\x00" * 8)))
def test_crafted_messages_are_refused_by_both(tmp_path, kind):
    flow = Flow(str(tmp_path / "device"))
    for data in crafted(flow.agent.vendor.kid)[kind]:
        before = sum(flow.agent.refusals.values())
        flow.agent.receive(data, flow.now)
        assert sum(flow.agent.refusals.values()) == before + 1
    service, device = vendor_and_device(tmp_path)
    for data in crafted(device.kid)[kind]:
        assert service.handle(data, device.kid, T) == []
    assert sum(service.refusals.values()) == len(crafted(device.kid)[kind])
