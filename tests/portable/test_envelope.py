"""Sealing and opening messages: every refusal has a reason and is counted, nothing raises."""

from samples import TS, example_bodies
from thingsdk.core import cbor, cose, ed25519, envelope, messages

DEVICE = ed25519.Signer(bytes(range(32)))
VENDOR = ed25519.Signer(bytes(range(1, 33)))
STRANGER = ed25519.Signer(bytes(range(2, 34)))


def _inbox():
    keys = {DEVICE.kid: ed25519.Verifier(DEVICE.public_key)}
    return envelope.Inbox(VENDOR.kid, keys, cbor)


def _order(seq=1, msg_id=b"\x01" * 16, signer=DEVICE, to=None, now=TS, ttl=600):
    body = example_bodies()[messages.ORDER]
    return envelope.seal(messages.ORDER, body, signer, to or VENDOR.kid, seq, now, msg_id, cbor, ttl)


def test_accept_then_duplicate_then_replay():
    inbox = _inbox()
    data = _order()
    first = inbox.open(data, TS + 1)
    assert first.status == envelope.ACCEPT and first.message.body["qty"] == 2
    inbox.commit(first)
    assert inbox.open(data, TS + 2).status == envelope.DUPLICATE
    replay = inbox.open(_order(msg_id=b"\x02" * 16), TS + 3)  # same seq, new id: a replay
    assert (replay.status, replay.reason) == (envelope.REJECT, "replayed")
    assert inbox.rejections == {"replayed": 1}


def test_uncommitted_message_can_be_processed_again():
    inbox = _inbox()
    data = _order()
    assert inbox.open(data, TS).status == envelope.ACCEPT
    assert inbox.open(data, TS).status == envelope.ACCEPT  # crashed before commit: do it again


def test_every_refusal_is_counted():
    inbox = _inbox()
    tampered = bytearray(_order(seq=5))
    tampered[-70] ^= 0x10
    forged_kid = messages.build(messages.ORDER, example_bodies()[messages.ORDER], DEVICE.kid,
                                VENDOR.kid, 6, TS, TS + 60, b"\x06" * 16)
    cases = [
        (bytes(tampered), "bad-signature"),
        (b"\xd2\x84", "malformed"),
        (_order(seq=2, to=STRANGER.kid), "not-for-us"),
        (_order(seq=3, now=TS - 7200), "expired"),
        (_order(seq=4, signer=STRANGER), "unknown-key"),
        (cose.sign1(cbor.dumps(forged_kid), STRANGER, cbor, protected={1: -8, 4: DEVICE.kid}),
         "bad-signature"),
        (cose.sign1(b"\x01", DEVICE, cbor), "bad-type"),
    ]
    for data, reason in cases:
        got = inbox.open(data, TS)
        assert (got.status, got.reason) == (envelope.REJECT, reason), (reason, got)
    assert sum(inbox.rejections.values()) == len(cases)


def test_payload_sender_must_be_the_signing_key():
    inbox = _inbox()
    inbox.keys[STRANGER.kid] = ed25519.Verifier(STRANGER.public_key)
    claimed = messages.build(messages.ORDER, example_bodies()[messages.ORDER], DEVICE.kid,
                             VENDOR.kid, 7, TS, TS + 60, b"\x07" * 16)
    got = inbox.open(cose.sign1(cbor.dumps(claimed), STRANGER, cbor), TS)
    assert (got.status, got.reason) == (envelope.REJECT, "kid-mismatch")


def test_changed_unsigned_bytes_cannot_take_a_messages_place():
    """A copy with a label added to the unprotected header is refused, so the device's genuine
    redelivery still gets the answer of a duplicate, not an id conflict."""
    inbox = _inbox()
    data = _order(seq=8, msg_id=b"\x08" * 16)
    changed = data[:16] + b"\xa1\x18\x63\x61x" + data[17:]
    assert data[16:17] == b"\xa0"
    got = inbox.open(changed, TS)
    assert (got.status, got.reason) == (envelope.REJECT, "bad-header")
    first = inbox.open(data, TS)
    assert first.status == envelope.ACCEPT
    inbox.commit(first)
    assert inbox.open(data, TS + 1).status == envelope.DUPLICATE
    unprotected_kid = cose.sign1(cbor.dumps(_payload(9)), DEVICE,
                                 cbor, protected={1: -8}, unprotected={4: DEVICE.kid})
    got = inbox.open(unprotected_kid, TS)
    assert (got.status, got.reason) == (envelope.REJECT, "bad-header")
    assert inbox.rejections == {"bad-header": 2}


def _payload(seq):
    return messages.build(messages.ORDER, example_bodies()[messages.ORDER], DEVICE.kid,
                          VENDOR.kid, seq, TS, TS + 600, bytes([seq]) * 16)


def test_check_reads_no_replay_state_and_admit_decides():
    inbox = _inbox()
    data = _order(seq=11, msg_id=b"\x0b" * 16)
    checked = inbox.check(data)
    assert checked.status is None and checked.message.seq == 11
    inbox.commit(inbox.admit(checked, TS))
    assert inbox.admit(inbox.check(data), TS).status == envelope.DUPLICATE
    assert inbox.check(data[:-1]).status == envelope.REJECT
