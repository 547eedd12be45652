"""The message catalog: every type round-trips, and malformed messages are refused with a reason.

The example bodies (samples.py) are also what tests/test_messages.py validates against the CDDL.
"""

from thingsdk.core import messages as m
from check import raises
from samples import DEVICE, EXP, TS, VENDOR, _id, build, example_bodies, example_claims


def code_of(fn, *args, **kwargs):
    """The MessageError code that fn raises."""
    exc = raises(m.MessageError, fn, *args, **kwargs)
    assert isinstance(exc, ValueError)
    return exc.code


def test_catalog_names_twenty_types():
    assert len(m.NAMES) == 20
    assert m.TYPES["status"] == m.STATUS == 1 and m.TYPES["error"] == m.ERROR == 15
    assert m.TYPES["approval-request"] == m.APPROVAL_REQUEST == 9
    assert m.TYPES["resync-reply"] == m.RESYNC_REPLY == 18 and m.TYPES["notice"] == m.NOTICE == 20


def test_every_type_round_trips():
    for code, body in example_bodies().items():
        obj = build(code)
        msg = m.parse(obj)
        assert (msg.v, msg.type, msg.name()) == (1, code, m.NAMES[code - 1])
        assert (msg.id, msg.kid, msg.to, msg.re) == (_id(code), DEVICE, VENDOR, _id(99))
        assert (msg.seq, msg.ts, msg.exp) == (41, TS, EXP)
        assert msg.body == body
        assert sorted(obj) == list(range(1, 11))


def test_correlation_id_is_optional_except_for_answers():
    assert m.parse(build(m.STATUS, reply_to=None)).re is None
    for code in (m.OFFER, m.RECEIPT, m.APPROVAL, m.SUPPORT_REPLY, m.RESYNC_NONCE, m.RESYNC_REPLY):
        exc = raises(m.MessageError, build, code, None, None)
        assert exc.code == "missing-field" and exc.field == "re"


def test_unknown_fields_are_refused_anywhere():
    obj = build(m.STATUS)
    obj[11] = 0
    assert code_of(m.parse, obj) == "unknown-field"
    body = example_bodies()[m.ORDER]
    body["coupon"] = "FREE"
    exc = raises(m.MessageError, build, m.ORDER, body)
    assert (exc.code, exc.field) == ("unknown-field", "b.coupon")
    body = example_bodies()[m.STATUS]
    body["slots"][1]["colour"] = "blue"
    exc = raises(m.MessageError, build, m.STATUS, body)
    assert (exc.code, exc.field) == ("unknown-field", "b.slots[1].colour")


def test_missing_fields_are_named():
    obj = build(m.STATUS)
    del obj[5]
    exc = raises(m.MessageError, m.parse, obj)
    assert (exc.code, exc.field) == ("missing-field", "seq")
    assert "seq" in str(exc)
    body = example_bodies()[m.OFFER]
    del body["until"]
    exc = raises(m.MessageError, build, m.OFFER, body)
    assert (exc.code, exc.field) == ("missing-field", "b.until")


def test_version_and_type_are_checked_first():
    obj = build(m.STATUS)
    obj[1] = 2
    assert code_of(m.parse, obj) == "bad-version"
    obj[1] = 1.0
    assert code_of(m.parse, obj) == "bad-version"
    obj[1] = 1
    for t in (0, 21, 255):
        obj[2] = t
        assert code_of(m.parse, obj) == "unknown-type"
    obj[2] = "status"
    assert code_of(m.parse, obj) == "bad-type"
    assert code_of(m.parse, [1, 1]) == "bad-type"


def test_ids_must_have_their_exact_size():
    assert code_of(build, m.STATUS, None, _id(1), msg_id=bytes(15)) == "bad-size"
    assert code_of(build, m.STATUS, None, _id(1), sender_kid=bytes(9)) == "bad-size"
    assert code_of(build, m.STATUS, None, _id(1), recipient_kid=bytes(7)) == "bad-size"
    assert code_of(build, m.STATUS, None, bytes(17)) == "bad-size"
    assert code_of(build, m.STATUS, None, "0" * 16) == "bad-type"
    body = example_bodies()[m.ORDER]
    body["order"] = bytes(8)
    assert code_of(build, m.ORDER, body) == "bad-size"


def test_absurd_numbers_are_out_of_range():
    assert code_of(build, m.STATUS, None, _id(1), seq=2 ** 53) == "out-of-range"
    assert code_of(build, m.STATUS, None, _id(1), seq=-1) == "out-of-range"
    assert m.parse(build(m.STATUS, seq=2 ** 53 - 1)).seq == 2 ** 53 - 1
    for name, value in (("qty", -1), ("qty", 0), ("qty", 10 ** 6 + 1), ("mandate", 0),
                        ("total", [10 ** 12 + 1, "EUR"]), ("total", [-5, "EUR"])):
        body = example_bodies()[m.ORDER]
        body[name] = value
        assert code_of(build, m.ORDER, body) == "out-of-range", name


def test_expiry_must_follow_timestamp_within_thirty_days():
    assert code_of(build, m.STATUS, None, _id(1), exp=TS) == "out-of-range"
    assert code_of(build, m.STATUS, None, _id(1), exp=TS - 1) == "out-of-range"
    assert code_of(build, m.STATUS, None, _id(1), exp=TS + 30 * 86400 + 1) == "out-of-range"
    assert m.parse(build(m.STATUS, exp=TS + 30 * 86400)).exp == TS + 30 * 86400
    assert code_of(build, m.STATUS, None, _id(1), ts=10 ** 12, exp=10 ** 12 + 1) == "out-of-range"


def test_no_floats_and_no_bools_for_numbers():
    for name, value in (("qty", 2.0), ("qty", True), ("total", [5398.0, "EUR"])):
        body = example_bodies()[m.ORDER]
        body[name] = value
        assert code_of(build, m.ORDER, body) == "bad-type", name
    assert code_of(build, m.STATUS, None, _id(1), ts=float(TS)) == "bad-type"
    body = example_bodies()[m.ORDER]
    body["test"] = 0
    assert code_of(build, m.ORDER, body) == "bad-type"


def test_currency_is_three_upper_case_letters():
    for currency, code in (("eur", "bad-value"), ("EURO", "bad-size"), ("E1R", "bad-value"),
                           ("", "bad-size"), (978, "bad-type")):
        body = example_bodies()[m.PROMOTION]
        body["price"] = [1990, currency]
        assert code_of(build, m.PROMOTION, body) == code, currency
    body = example_bodies()[m.PROMOTION]
    body["price"] = [1990, "EUR", 2]
    assert code_of(build, m.PROMOTION, body) == "bad-size"


def test_text_bounds_count_utf8_bytes():
    body = example_bodies()[m.ERROR]
    body["text"] = "\u00e9" * 140  # 280 bytes
    assert m.parse(build(m.ERROR, body)).body["text"] == body["text"]
    body["text"] = "\u00e9" * 141
    assert code_of(build, m.ERROR, body) == "bad-size"
    body["text"] = ""
    assert code_of(build, m.ERROR, body) == "bad-size"
    body = example_bodies()[m.ERROR]
    body["code"] = "Out Of Stock"
    assert code_of(build, m.ERROR, body) == "bad-value"


def test_receipt_status_decides_its_fields():
    rejected = {"order": _id(4), "status": "rejected", "reason": "price-changed"}
    assert m.parse(build(m.RECEIPT, rejected)).body["reason"] == "price-changed"
    duplicate = {"order": _id(4), "status": "duplicate", "ref": "ACME-2026-000399"}
    assert m.parse(build(m.RECEIPT, duplicate)).body["status"] == "duplicate"
    rejected["ref"] = "ACME-1"
    assert code_of(build, m.RECEIPT, rejected) == "unknown-field"
    del rejected["reason"], rejected["ref"]
    assert code_of(build, m.RECEIPT, rejected) == "missing-field"
    rejected["status"] = "lost"
    assert code_of(build, m.RECEIPT, rejected) == "bad-value"


def test_quote_names_exactly_one_of_sku_or_category():
    body = example_bodies()[m.QUOTE_REQUEST]
    body["cat"] = "water-filter"
    assert code_of(build, m.QUOTE_REQUEST, body) == "exclusive"
    del body["sku"]
    assert m.parse(build(m.QUOTE_REQUEST, body)).body["cat"] == "water-filter"
    del body["cat"]
    assert code_of(build, m.QUOTE_REQUEST, body) == "missing-field"


def test_cross_field_rules():
    body = example_bodies()[m.OFFER]
    body["total"] = [5399, "EUR"]
    assert code_of(build, m.OFFER, body) == "bad-value"
    body = example_bodies()[m.OFFER]
    body["ship"] = [498, "USD"]
    assert code_of(build, m.OFFER, body) == "bad-value"
    body = example_bodies()[m.STATUS]
    body["slots"][0]["level"] = 301
    assert code_of(build, m.STATUS, body) == "out-of-range"
    body = example_bodies()[m.STATUS]
    body["slots"][0]["empty"] = {"est": 40, "lo": 22, "hi": 38}
    assert code_of(build, m.STATUS, body) == "out-of-range"


def test_enumerations_and_bounded_collections():
    body = example_bodies()[m.APPROVAL]
    body["decision"] = "maybe"
    assert code_of(build, m.APPROVAL, body) == "bad-value"
    body = example_bodies()[m.CANCEL]
    body["by"] = "courier"
    assert code_of(build, m.CANCEL, body) == "bad-value"
    body = example_bodies()[m.SUPPORT_REQUEST]
    body["diag"]["ratio"] = 0.5
    assert code_of(build, m.SUPPORT_REQUEST, body) == "bad-type"
    body = example_bodies()[m.SUPPORT_REQUEST]
    body["diag"] = {"k%d" % i: i for i in range(33)}
    assert code_of(build, m.SUPPORT_REQUEST, body) == "bad-size"
    body = example_bodies()[m.SUPPORT_REPLY]
    body["steps"] = []
    assert code_of(build, m.SUPPORT_REPLY, body, _id(12)) == "bad-size"


def test_mandate_claims_structure():
    claims = example_claims()
    assert m.check_claims(claims) is claims
    claims[-65538].append(["acme:eco-mode", {"level": 2, "until": [TS, 1.5]}])
    m.check_claims(claims)  # extension kinds pass the schema; policy must fail closed on them


def test_mandate_claims_rejections():
    def bad(mutate):
        claims = example_claims()
        mutate(claims)
        return code_of(m.check_claims, claims)

    assert bad(lambda c: c.update({2: "3F1C9A0B5E7D2A61"})) == "bad-value"
    assert bad(lambda c: c.update({5: c[4]})) == "out-of-range"
    assert bad(lambda c: c.update({7: _id(1)})) == "unknown-field"
    assert bad(lambda c: c[8][1].update({-1: 1})) == "bad-value"
    assert bad(lambda c: c[8][1].update({-2: bytes(31)})) == "bad-size"
    assert bad(lambda c: c[-65538][2][1].pop("window")) == "missing-field"
    assert bad(lambda c: c[-65538][1][1].update({"window": 60})) == "unknown-field"
    assert bad(lambda c: c[-65538][0][1].update({"min": 7000})) == "out-of-range"
    assert bad(lambda c: c[-65538][8][1].update({"zone": "UTC"})) == "exclusive"
    assert bad(lambda c: c[-65538][8][1].update({"tz": -721})) == "out-of-range"
    assert bad(lambda c: c[-65538][10][1].update({"on": True})) == "unknown-field"
    assert bad(lambda c: c[-65538].append(["budget"])) == "bad-size"
    assert bad(lambda c: c[-65538].append([7, {}])) == "bad-type"
    assert bad(lambda c: c[-65538].append(["execution-date", {}])) == "bad-value"
    assert bad(lambda c: c[-65538].append(["acme:Eco", {}])) == "bad-value"
    assert bad(lambda c: c[-65538].append(["acme:eco", []])) == "bad-type"
