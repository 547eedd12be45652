"""Opening messages on CPython: mutated, truncated and random input is always refused and counted."""

import pytest
from hypothesis import given, strategies as st

from samples import TS, example_bodies
from thingsdk import codec
from thingsdk.core import cose, envelope, messages
from thingsdk.crypto import Ed25519Signer

DEVICE = Ed25519Signer.from_seed(bytes(range(32)))
VENDOR = Ed25519Signer.from_seed(bytes(range(1, 33)))
ORDER = envelope.seal(messages.ORDER, example_bodies()[messages.ORDER], DEVICE, VENDOR.kid, 9, TS,
                      b"\x09" * 16, codec)


def inbox():
    return envelope.Inbox(VENDOR.kid, {DEVICE.kid: DEVICE.verifier()}, codec)


def test_the_untouched_order_is_accepted():
    got = inbox().open(ORDER, TS + 5)
    assert got.status == envelope.ACCEPT and got.message.kid == DEVICE.kid


@given(st.data())
def test_any_mutation_is_refused_and_counted(data):
    blob = bytearray(ORDER)
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(blob) - 1))
        blob[i] = data.draw(st.integers(0, 255).filter(lambda b, old=blob[i]: b != old))
    box = inbox()
    got = box.open(bytes(blob), TS + 5)
    assert got.status == envelope.REJECT and box.rejections == {got.reason: 1}


@given(st.binary(max_size=400) | st.integers(0, len(ORDER) - 1).map(lambda n: ORDER[:n]))
def test_random_and_truncated_input_is_refused(blob):
    box = inbox()
    assert box.open(blob, TS).status == envelope.REJECT
    assert sum(box.rejections.values()) == 1


def test_the_largest_message_the_catalog_allows_fits_the_size_limit():
    """A support request with 32 diagnostics of the longest keys and texts: under 16 KiB."""
    diag = {("k%03d" % i) + "x" * 251: "v" * 128 for i in range(32)}
    body = {"case": bytes(16), "fault": "a" * 32, "diag": diag, "text": "\u00e9" * 140}
    data = envelope.seal(messages.SUPPORT_REQUEST, body, DEVICE, VENDOR.kid, 2**53 - 1, TS,
                         b"\x0a" * 16, codec)
    assert 12000 < len(data) < cose.MAX_MESSAGE_BYTES
    assert inbox().open(data, TS + 5).status == envelope.ACCEPT
    too_long = dict(body, diag=dict(diag, **{"k" + "y" * 255: "v"}))
    with pytest.raises(ValueError):  # a 256-byte key: the decoder would refuse it
        codec.loads(codec.dumps(too_long))


def test_an_observer_reads_a_message_to_another_but_checks_its_signature_and_freshness():
    """An owner watching its device's order to the vendor: not addressed to it, still checked."""
    watcher = envelope.Inbox(None, {DEVICE.kid: DEVICE.verifier()}, codec, observer=True)
    assert watcher.open(ORDER, TS + 5).status == envelope.ACCEPT
    assert watcher.open(ORDER, TS + 10 ** 6).reason == "expired"
    forged = envelope.seal(messages.ORDER, example_bodies()[messages.ORDER], VENDOR, VENDOR.kid,
                           9, TS, b"\x09" * 16, codec)
    assert envelope.Inbox(None, {DEVICE.kid: DEVICE.verifier()}, codec,
                          observer=True).open(forged, TS + 5).reason == "unknown-key"


def test_only_an_inbox_made_an_observer_goes_without_its_own_key_id():
    """The device's own inbox keeps checking `to`: forgetting its kid is an error, not a wider
    inbox."""
    with pytest.raises(ValueError):
        envelope.Inbox(None, {DEVICE.kid: DEVICE.verifier()}, codec)
    with pytest.raises(ValueError):
        envelope.Inbox(VENDOR.kid, {}, codec, observer=True)
    assert inbox().open(envelope.seal(messages.ORDER, example_bodies()[messages.ORDER], DEVICE,
                                      DEVICE.kid, 9, TS, b"\x09" * 16, codec),
                        TS + 5).reason == "not-for-us"
