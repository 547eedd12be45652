"""Mandates on CPython: tokens from `cryptography` keys and cbor2 match the CDDL and the portable
core byte for byte; tampering, timing and versions are refused; constraints evaluate as the prose
says (quiet hours checked against `datetime`)."""

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pycddl
import pytest
import samples
from hypothesis import given
from hypothesis import strategies as st

from cose_peer import Peer
from thingsdk import codec
from thingsdk.core import cbor, cose, ed25519, envelope, messages, policy
from thingsdk.core import mandate as md
from thingsdk.core.ledger import Ledger
from thingsdk.crypto import Ed25519Signer

SPEC = (Path(__file__).resolve().parent.parent / "spec" / "thingsdk.cddl").read_text()
OWNER = Ed25519Signer.from_seed(bytes(range(32)))
DEVICE = Ed25519Signer.from_seed(bytes(range(1, 33)))
NOW = samples.TS + 10 * 86400
EXP = samples.TS + 365 * 86400


def cddl(rule):
    return pycddl.Schema("root = %s\n%s" % (rule, SPEC))


def example(version=7, constraints=None):
    rules = samples.example_claims()[md.CONSTRAINTS] if constraints is None else constraints
    return md.make_claims(OWNER.kid, DEVICE.public_key, version, samples.TS, EXP, rules)


TOKEN = md.issue(example(), OWNER, codec)


def test_an_issued_token_matches_the_cddl():
    cddl("mandate-cwt").validate_cbor(TOKEN)
    protected, _, payload, _ = codec.loads(TOKEN).value
    cddl("mandate-protected").validate_cbor(protected)
    cddl("mandate-claims").validate_cbor(payload)
    assert codec.loads(payload) == example()


def test_cpython_and_core_make_and_accept_the_same_tokens():
    core_owner = ed25519.Signer(bytes(range(32)))
    assert md.issue(example(), core_owner, cbor) == TOKEN
    m = md.verify(TOKEN, ed25519.Verifier(OWNER.public_key), cbor, DEVICE.kid, NOW)
    assert m.constraints == [tuple(c) for c in example()[md.CONSTRAINTS]]
    assert md.verify(TOKEN, OWNER.verifier(), codec, DEVICE.kid, NOW).version == 7


@given(st.data())
def test_any_change_to_a_token_is_refused(data):
    i = data.draw(st.integers(0, len(TOKEN) - 1))
    flip = data.draw(st.integers(1, 255))
    bad = TOKEN[:i] + bytes([TOKEN[i] ^ flip]) + TOKEN[i + 1:]
    with pytest.raises(md.MandateError) as exc:
        md.verify(bad, OWNER.verifier(), codec, DEVICE.kid, NOW)
    assert exc.value.code in ("bad-signature", "malformed", "wrong-owner")


def test_python_cwt_mandates_need_the_kid_protected_as_envelopes_do():
    """One rule for mandates and envelopes: the kid is protected. python-cwt's default (the kid in
    the unprotected header) is refused by both with the same code; with the kid protected its CWT
    is accepted, and it verifies ours."""
    peer = Peer()
    try:
        payload = codec.dumps(example())
        good = peer.sign(OWNER.seed(), OWNER.kid, payload, kid_protected=True)
        assert md.verify(good, OWNER.verifier(), codec, DEVICE.kid, NOW).version == 7
        assert peer.verify(OWNER.public_key, OWNER.kid, TOKEN) == payload
        loose = peer.sign(OWNER.seed(), OWNER.kid, payload, kid_protected=False)
        with pytest.raises(md.MandateError) as exc:
            md.verify(loose, OWNER.verifier(), codec, DEVICE.kid, NOW)
        assert exc.value.code == "malformed" and "protected" in str(exc.value)
        order = messages.build(messages.ORDER, samples.example_bodies()[messages.ORDER],
                               DEVICE.kid, OWNER.kid, 1, samples.TS, samples.TS + 60, bytes(16))
        box = envelope.Inbox(OWNER.kid, {DEVICE.kid: DEVICE.verifier()}, codec)
        loose_order = peer.sign(DEVICE.seed(), DEVICE.kid, codec.dumps(order), kid_protected=False)
        assert box.open(loose_order, samples.TS).reason == "bad-header"
        strict_order = peer.sign(DEVICE.seed(), DEVICE.kid, codec.dumps(order))
        assert box.open(strict_order, samples.TS).status == envelope.ACCEPT
    finally:
        peer.close()


def test_an_owner_signed_version_too_big_for_text_is_a_mandate_error():
    """4302 digits: more than CPython turns into text; refused as malformed, never a ValueError
    of another kind."""
    claims = example(constraints=[])
    claims[md.VERSION] = 10**4301
    token = cose.sign1(codec.dumps(claims), OWNER, codec)
    assert len(token) <= md.MAX_TOKEN
    for c in (codec, cbor):
        with pytest.raises(md.MandateError) as exc:
            md.verify(token, OWNER.verifier(), c, DEVICE.kid, NOW)
        assert exc.value.code == "malformed" and "128 bytes" in str(exc.value)
    claims[md.VERSION] = 2**1000  # small enough to decode, refused by the catalog
    token = cose.sign1(codec.dumps(claims), OWNER, codec)
    with pytest.raises(md.MandateError) as exc:
        md.verify(token, OWNER.verifier(), codec, DEVICE.kid, NOW)
    assert exc.value.code == "malformed"


def test_a_resigned_mandate_from_another_key_is_refused():
    thief = Ed25519Signer.generate()
    claims = example()
    claims[md.ISS] = md.kid_hex(thief.kid)
    stolen = md.issue(claims, thief, codec)
    with pytest.raises(md.MandateError) as exc:
        md.verify(stolen, OWNER.verifier(), codec, DEVICE.kid, NOW)
    assert exc.value.code == "wrong-owner"


@given(st.integers(0, 2 * EXP))
def test_a_mandate_holds_exactly_from_nbf_until_exp(now):
    if samples.TS <= now < EXP:
        assert md.verify(TOKEN, OWNER.verifier(), codec, DEVICE.kid, now).status(now) is None
    else:
        with pytest.raises(md.MandateError) as exc:
            md.verify(TOKEN, OWNER.verifier(), codec, DEVICE.kid, now)
        assert exc.value.code == ("not-yet-valid" if now < samples.TS else "expired")


VERSIONED = {v: md.issue(example(v, []), OWNER, codec) for v in range(1, 6)}


@given(st.lists(st.integers(1, 5), min_size=1, max_size=12))
def test_the_holder_keeps_the_highest_version(versions):
    held = None
    for v in versions:
        try:
            held = md.accept(held, VERSIONED[v], OWNER.verifier(), codec, DEVICE.kid, NOW)
        except md.MandateError as exc:
            assert exc.code == "stale-version" and v < held.version
    assert held.version == max(versions)


def judge(rule, offer, now=NOW, ledger=None):
    m = md.Mandate(example(7, [rule]), None)
    (check,) = policy.evaluate(m, policy.Proposal(samples.VENDOR, offer), ledger or Ledger(), now)
    return check


def offer_of(total, currency="EUR"):
    return dict(samples.example_bodies()[3], total=[total, currency])


@given(st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 10**6))
def test_amount_range_holds_exactly_between_min_and_max(a, b, total):
    low, high = min(a, b), max(a, b)
    check = judge(["amount-range", {"cur": "EUR", "min": low, "max": high}], offer_of(total))
    assert (check.outcome == "ok") == (low <= total <= high)


@given(st.integers(-720, 840), st.integers(0, 1439), st.integers(0, 1439),
       st.integers(samples.TS, samples.TS + 400 * 86400))
def test_quiet_hours_agree_with_datetime(tz, start, end, now):
    zone = timezone(timedelta(minutes=tz))
    local = datetime.fromtimestamp(now, zone)
    minute = local.hour * 60 + local.minute
    quiet = start <= minute < end if start <= end else (minute >= start or minute < end)
    check = judge(["quiet-hours", {"tz": tz, "start": start, "end": end}], offer_of(100), now)
    assert check.outcome == ("wait" if quiet else "ok")
    if quiet:
        until = datetime.fromtimestamp(check.until, zone)
        assert (until.hour * 60 + until.minute, until.second) == (end, 0)
        assert 0 < check.until - now <= 1440 * 60
        after = judge(["quiet-hours", {"tz": tz, "start": start, "end": end}], offer_of(100),
                      check.until)
        assert after.outcome == "ok"


@given(st.text(min_size=1, max_size=8, alphabet="abcdefghij"),
       st.dictionaries(st.text(max_size=5), st.integers(), max_size=3))
def test_every_extension_constraint_fails_closed(name, params):
    check = judge(["acme:" + name, params], offer_of(100))
    assert (check.outcome, check.reason) == ("refuse", "unknown-constraint")
