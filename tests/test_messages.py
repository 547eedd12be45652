"""What thingsdk.core.messages emits matches spec/thingsdk.cddl, checked by an independent
validator (pycddl), and what the spec refuses, messages.parse refuses too."""

import copy
import re
from functools import lru_cache
from pathlib import Path

import pycddl
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from thingsdk import codec
from thingsdk.core import messages as m
from thingsdk.core import schemas
from thingsdk.core.keys import key_id

ROOT = Path(__file__).resolve().parent.parent
SPEC = (ROOT / "spec" / "thingsdk.cddl").read_text()


import samples as ex
CODES = list(range(1, len(m.NAMES) + 1))


@lru_cache(maxsize=None)
def schema(rule):
    """The spec with `rule` as its root (pycddl validates against the first rule)."""
    return pycddl.Schema("thingsdk-root = %s\n%s" % (rule, SPEC))


def own_rule(obj):
    """The rule of a message's own type. pycddl 0.6 loses some errors inside a type choice such
    as `message` (it accepts a body that every alternative refuses), so refusals are checked
    against the one alternative that the type code selects."""
    t = obj.get(2)
    return m.NAMES[t - 1] if type(t) is int and 1 <= t <= len(m.NAMES) else "message"


def spec_accepts(obj, rule):
    try:
        schema(rule).validate_cbor(codec.dumps(obj))
    except pycddl.ValidationError:
        return False
    return True


def test_spec_and_catalog_agree_on_type_codes_and_answers():
    types = re.findall(r"^([a-z-]+) *= \{header, *2 => (\d+), *(answer|may-answer),", SPEC, re.M)
    assert {name: int(code) for name, code, _ in types} == m.TYPES
    assert {m.TYPES[name] for name, _, re_ in types if re_ == "answer"} == set(m.ANSWERS)
    choice = re.search(r"^message = (.*?)\n\n", SPEC, re.M | re.S).group(1)
    assert re.split(r"\s*/\s*", choice.strip()) == list(m.NAMES)


def test_the_catalogs_schemas_are_rules_of_the_spec():
    rules = set(re.findall(r"^([a-z0-9-]+) *=", SPEC, re.M)) | {"text", "bool"}  # and its prelude
    names = [n.decode() for n in re.findall(rb"^([a-z0-9-]+) ", schemas.SCHEMAS, re.M)]
    assert len(names) == len(set(names)) and set(names) <= rules
    assert {name + "-body" for name in m.NAMES} <= set(names)
    for name in names:
        schemas.schema(name)
    with pytest.raises(ValueError):
        schemas.schema("no-such-rule")


@pytest.mark.parametrize("code", CODES, ids=m.NAMES)
def test_every_example_matches_the_spec(code):
    obj = ex.build(code)
    data = codec.dumps(obj)
    schema("message").validate_cbor(data)
    schema(m.NAMES[code - 1]).validate_cbor(data)
    assert m.parse(codec.loads(data)).body == obj[10]


def test_example_mandate_token_matches_the_spec():
    owner = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    owner_kid = key_id(owner.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))
    claims = ex.example_claims()
    claims[1] = owner_kid.hex()
    protected = codec.dumps({1: -8, 4: owner_kid})
    payload = codec.dumps(m.check_claims(claims))
    signature = owner.sign(codec.dumps(["Signature1", protected, b"", payload]))
    token = codec.dumps(codec.Tag(18, [protected, {}, payload, signature]))
    schema("mandate-protected").validate_cbor(protected)
    schema("mandate-claims").validate_cbor(payload)
    schema("mandate-cwt").validate_cbor(token)
    message = ex.build(m.MANDATE, {"cwt": token}, sender_kid=owner_kid)
    schema("message").validate_cbor(codec.dumps(message))


# ---- generated values: whatever the catalog's tables allow, the spec allows -----------------

_CHARACTERS = st.characters(blacklist_categories=("Cs",))  # no lone surrogates: not UTF-8


def strategy(spec):
    """A Hypothesis strategy for the values a messages.py schema tuple describes."""
    kind = spec[0]
    if kind == "i":
        return st.integers(spec[1], spec[2])
    if kind == "b":
        return st.binary(min_size=spec[1], max_size=min(spec[2], 64))
    if kind == "s" and len(spec) > 3:
        rest = st.text(spec[3].decode(), min_size=spec[1] - 1, max_size=spec[2] - 1)
        return st.builds(str.__add__, st.sampled_from(spec[-1].decode()), rest)
    if kind == "s":
        size_ok = lambda s: spec[1] <= len(s.encode()) <= spec[2]  # noqa: E731
        return st.text(_CHARACTERS, min_size=spec[1], max_size=min(spec[2], 40)).filter(size_ok)
    if kind == "y":
        return st.booleans()
    if kind == "e":
        return st.sampled_from(spec[1])
    if kind == "a":
        return st.tuples(*map(strategy, spec[1])).map(list)
    if kind == "l":
        return st.lists(strategy(spec[1]), min_size=spec[2], max_size=min(spec[3], 3))
    if kind == "d":
        return st.dictionaries(strategy(spec[1]), strategy(spec[2]), min_size=spec[3],
                               max_size=min(spec[4], 3))
    if kind == "|":
        return st.one_of(*map(strategy, spec[1]))
    if kind == "k":
        known = [st.tuples(st.just(k), strategy(p)).map(list) for k, p in spec[1]]
        return st.one_of(*known, st.just(["acme:eco-mode", {"level": 2}]))
    assert kind == "m", spec
    _, fields, optional, one, tag, variants, _, _ = spec
    fields = dict(fields)
    required = [k for k in fields if k not in optional and k not in one]
    maps = []
    for choice in [[k] for k in one] or [[]]:
        for value, extra in variants or ((None, ()),):
            keys = {k: strategy(fields[k]) for k in required + choice}
            keys.update({k: strategy(s) for k, s in extra})
            if tag is not None:
                keys[tag] = st.just(value)
            maps.append(st.fixed_dictionaries(keys, optional={k: strategy(fields[k])
                                                               for k in optional}))
    return st.one_of(maps)


ORDERED = (("level", "cap"), ("lo", "est", "hi"), ("min", "max"))


def repair(value):
    """Make generated values meet the cross-field rules, which no single field shows."""
    if isinstance(value, list):
        for item in value:
            repair(item)
    elif isinstance(value, dict):
        for item in value.values():
            repair(item)
        for keys in ORDERED:
            if all(k in value for k in keys):
                value.update(zip(keys, sorted(value[k] for k in keys)))
        if "ship" in value and "total" in value:  # an offer: price * qty + ship - credit, in
            amount, currency = value["ship"]  # one currency
            price = min(value["price"][0], (10 ** 12 - amount) // value["qty"])
            value["price"] = [price, currency]
            total = price * value["qty"] + amount
            if "credit" in value:
                value["credit"] = [min(value["credit"][0], total), currency]
                total -= value["credit"][0]
            if "reward" in value:
                value["reward"] = [value["reward"][0], currency]
            value["total"] = [total, currency]
    return value


GENERATED = settings(max_examples=30, deadline=None,
                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


@pytest.mark.parametrize("code", CODES, ids=m.NAMES)
@GENERATED
@given(data=st.data())
def test_generated_bodies_match_the_spec(code, data):
    body = repair(data.draw(strategy(schemas.schema(m.NAMES[code - 1] + "-body"))))
    obj = ex.build(code, body, seq=data.draw(st.integers(0, m.MAX_INT53)))
    for rule in ("message", m.NAMES[code - 1]):
        schema(rule).validate_cbor(codec.dumps(obj))


@GENERATED
@given(claims=strategy(schemas.schema("mandate-claims")))
def test_generated_claims_match_the_spec(claims):
    claims[4] = max(claims[4], 1)  # nbf and iat come before exp
    claims[5], claims[6] = min(claims[5], claims[4] - 1), min(claims[6], claims[4] - 1)
    m.check_claims(repair(claims))
    schema("mandate-claims").validate_cbor(codec.dumps(claims))


# ---- mutations: the spec and the parser refuse the same things ------------------------------

def _set(*path_and_value):
    """A mutation that sets one item, reached from the message by keys and indexes."""
    *path, value = path_and_value

    def mutate(obj):
        for key in path[:-1]:
            obj = obj[key]
        obj[path[-1]] = value
    return mutate


def _delete(*path):
    def mutate(obj):
        for key in path[:-1]:
            obj = obj[key]
        del obj[path[-1]]
    return mutate


MUTATIONS = [  # (what, message type, mutation, MessageError code)
    ("unknown header field", m.STATUS, _set(11, 0), "unknown-field"),
    ("unknown body field", m.ORDER, _set(10, "coupon", "FREE"), "unknown-field"),
    ("unknown nested field", m.APPROVAL_REQUEST, _set(10, "order", "colour", "blue"),
     "unknown-field"),
    ("missing header field", m.STATUS, _delete(5), "missing-field"),
    ("missing body field", m.OFFER, _delete(10, "until"), "missing-field"),
    ("answer without re", m.RECEIPT, _delete(9), "missing-field"),
    ("rejection without reason", m.RECEIPT, _set(10, {"order": bytes(16), "status": "rejected"}),
     "missing-field"),
    ("quote naming neither sku nor category", m.QUOTE_REQUEST, _delete(10, "sku"),
     "missing-field"),
    ("version 2", m.STATUS, _set(1, 2), "bad-version"),
    ("type 21", m.STATUS, _set(2, 21), "unknown-type"),
    ("type 0", m.STATUS, _set(2, 0), "unknown-type"),
    ("type as text", m.STATUS, _set(2, "status"), "bad-type"),
    ("body not a map", m.STATUS, _set(10, [1]), "bad-type"),
    ("quantity as text", m.ORDER, _set(10, "qty", "2"), "bad-type"),
    ("quantity as bool", m.ORDER, _set(10, "qty", True), "bad-type"),
    ("float quantity", m.ORDER, _set(10, "qty", 2.0), "bad-type"),
    ("float amount", m.ORDER, _set(10, "total", 0, 5398.0), "bad-type"),
    ("float timestamp", m.STATUS, _set(6, float(ex.TS)), "bad-type"),
    ("float diagnostic", m.SUPPORT_REQUEST, _set(10, "diag", "ratio", 0.5), "bad-type"),
    ("message id as text", m.STATUS, _set(3, "0" * 16), "bad-type"),
    ("numeric currency", m.PROMOTION, _set(10, "price", 1, 978), "bad-type"),
    ("lower-case currency", m.OFFER, _set(10, "price", 1, "eur"), "bad-value"),
    ("currency with a digit", m.PROMOTION, _set(10, "price", 1, "E1R"), "bad-value"),
    ("four-letter currency", m.PROMOTION, _set(10, "price", 1, "EURO"), "bad-size"),
    ("money of three items", m.PROMOTION, _set(10, "price", [1990, "EUR", 2]), "bad-size"),
    ("unknown decision", m.APPROVAL, _set(10, "decision", "maybe"), "bad-value"),
    ("unknown canceller", m.CANCEL, _set(10, "by", "courier"), "bad-value"),
    ("code with spaces", m.ERROR, _set(10, "code", "Out Of Stock"), "bad-value"),
    ("negative quantity", m.ORDER, _set(10, "qty", -1), "out-of-range"),
    ("zero quantity", m.ORDER, _set(10, "qty", 0), "out-of-range"),
    ("amount beyond 10**12", m.ORDER, _set(10, "total", 0, 10 ** 12 + 1), "out-of-range"),
    ("negative price", m.PROMOTION, _set(10, "price", 0, -1), "out-of-range"),
    ("sequence 2**53", m.STATUS, _set(5, 2 ** 53), "out-of-range"),
    ("negative sequence", m.STATUS, _set(5, -1), "out-of-range"),
    ("timestamp after 9999", m.STATUS, lambda o: o.update({6: 10 ** 12, 7: 10 ** 12 + 1}),
     "out-of-range"),
    ("mandate version 0", m.ORDER, _set(10, "mandate", 0), "out-of-range"),
    ("zero capacity", m.STATUS, _set(10, "slots", 1, "cap", 0), "out-of-range"),
    ("short message id", m.STATUS, _set(3, bytes(15)), "bad-size"),
    ("long sender kid", m.STATUS, _set(4, bytes(9)), "bad-size"),
    ("short recipient kid", m.STATUS, _set(8, bytes(7)), "bad-size"),
    ("long correlation id", m.RECEIPT, _set(9, bytes(17)), "bad-size"),
    ("short order id", m.ORDER, _set(10, "order", bytes(8)), "bad-size"),
    ("long vendor kid", m.APPROVAL_REQUEST, _set(10, "order", "vendor", bytes(9)), "bad-size"),
    ("title of 281 bytes", m.OFFER, _set(10, "title", "x" * 281), "bad-size"),
    ("empty text", m.ERROR, _set(10, "text", ""), "bad-size"),
    ("no repair steps", m.SUPPORT_REPLY, _set(10, "steps", []), "bad-size"),
    ("18 slots", m.STATUS, lambda o: o[10]["slots"].extend(o[10]["slots"] * 8), "bad-size"),
    ("mandate token of 2049 bytes", m.MANDATE, _set(10, "cwt", bytes(2049)), "bad-size"),
]


@pytest.mark.parametrize("code, mutate, expected", [t[1:] for t in MUTATIONS],
                         ids=[t[0] for t in MUTATIONS])
def test_spec_and_parser_refuse_the_same_mutations(code, mutate, expected):
    obj = copy.deepcopy(ex.build(code))
    mutate(obj)
    with pytest.raises(m.MessageError) as caught:
        m.parse(obj)
    assert caught.value.code == expected
    assert not spec_accepts(obj, own_rule(obj))


CROSS_FIELD = [  # rules CDDL cannot state: the parser alone enforces them
    ("expiry not after timestamp", m.STATUS, _set(7, ex.TS)),
    ("lifetime beyond 30 days", m.STATUS, _set(7, ex.TS + 30 * 86400 + 1)),
    ("level above capacity", m.STATUS, _set(10, "slots", 0, "level", 301)),
    ("estimate outside its band", m.STATUS, _set(10, "slots", 0, "empty", "est", 40)),
    ("offer total that does not add up", m.OFFER, _set(10, "total", 0, 5399)),
    ("offer in two currencies", m.OFFER, _set(10, "ship", 1, "USD")),
    ("offer with a credit not taken off its total", m.OFFER, _set(10, "credit", [100, "EUR"])),
    ("credit in another currency", m.OFFER,
     lambda o: o[10].update(credit=[100, "USD"], total=[o[10]["total"][0] - 100, "EUR"])),
    ("reward in another currency", m.OFFER, _set(10, "reward", [100, "USD"])),
]


def test_an_offer_takes_the_credit_it_shows_off_its_total_and_may_carry_a_reward():
    obj = copy.deepcopy(ex.build(m.OFFER))
    total = obj[10]["total"][0]
    obj[10].update(credit=[100, "EUR"], total=[total - 100, "EUR"], reward=[250, "EUR"])
    assert spec_accepts(obj, "offer")
    body = m.parse(obj).body
    assert body["credit"] == [100, "EUR"] and body["reward"] == [250, "EUR"]


@pytest.mark.parametrize("code, mutate", [t[1:] for t in CROSS_FIELD],
                         ids=[t[0] for t in CROSS_FIELD])
def test_parser_enforces_cross_field_rules_beyond_the_spec(code, mutate):
    obj = copy.deepcopy(ex.build(code))
    mutate(obj)
    assert spec_accepts(obj, "message")
    with pytest.raises(m.MessageError) as caught:
        m.parse(obj)
    assert caught.value.code in ("out-of-range", "bad-value")


CLAIM_MUTATIONS = [  # (what, mutation of the example claims, MessageError code)
    ("unknown claim", _set(7, bytes(16)), "unknown-field"),
    ("missing cnf", _delete(8), "missing-field"),
    ("upper-case subject", _set(2, "3F1C9A0B5E7D2A61"), "bad-value"),
    ("subject as bytes", _set(2, bytes(8)), "bad-type"),
    ("curve X25519", _set(8, 1, -1, 4), "bad-value"),
    ("31-byte public key", _set(8, 1, -2, bytes(31)), "bad-size"),
    ("public key as text", _set(8, 1, -2, "k" * 32), "bad-type"),
    ("version 0", _set(-65537, 0), "out-of-range"),
    ("constraints not an array", _set(-65538, {}), "bad-type"),
]


@pytest.mark.parametrize("mutate, expected", [t[1:] for t in CLAIM_MUTATIONS],
                         ids=[t[0] for t in CLAIM_MUTATIONS])
def test_spec_and_parser_refuse_the_same_claims(mutate, expected):
    claims = ex.example_claims()
    mutate(claims)
    with pytest.raises(m.MessageError) as caught:
        m.check_claims(claims)
    assert caught.value.code == expected
    assert not spec_accepts(claims, "mandate-claims")


CONSTRAINT_MUTATIONS = [  # (what, index in the example claims, mutation, MessageError code)
    ("float budget", 1, _set(1, "max", 100.0), "bad-type"),
    ("weekly budget", 1, _set(1, "period", "week"), "bad-value"),
    ("rolling budget without window", 2, _delete(1, "window"), "missing-field"),
    ("recurrence of zero orders", 3, _set(1, "max", 0), "out-of-range"),
    ("offset beyond +14 h", 8, _set(1, "tz", 841), "out-of-range"),
    ("minute 1440", 8, _set(1, "start", 1440), "out-of-range"),
    ("7-byte vendor kid", 4, _set(1, "kids", 0, bytes(7)), "bad-size"),
    ("no vendors", 4, _set(1, "kids", []), "bad-size"),
    ("item rule without limits", 5, _delete(1, "allow", 0, "max-qty"), "missing-field"),
    ("lower-case currency", 6, _set(1, "cur", "eur"), "bad-value"),
    ("negative cancel window", 7, _set(1, "seconds", -1), "out-of-range"),
    ("constraint without params", 0, lambda c: c.pop(), "bad-size"),
    ("kind as a number", 0, _set(0, 7), "bad-type"),
    ("bare unknown kind", 0, _set(0, "execution-date"), "bad-value"),
]


@pytest.mark.parametrize("index, mutate, expected", [t[1:] for t in CONSTRAINT_MUTATIONS],
                         ids=[t[0] for t in CONSTRAINT_MUTATIONS])
def test_spec_and_parser_refuse_the_same_constraints(index, mutate, expected):
    claims = ex.example_claims()
    constraint = claims[-65538][index]
    mutate(constraint)
    with pytest.raises(m.MessageError) as caught:
        m.check_claims(claims)
    assert caught.value.code == expected
    kind = constraint[0]
    known = schemas.lookup(schemas.schema("constraint")[1], kind)
    assert not spec_accepts(constraint, kind if known else "unknown-constraint")
