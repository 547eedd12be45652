"""The owner's verbs of the `thingsdk` command, end to end with real keys: mandate create, sign
and show; owner approve and decline; log."""

import re
import time

import pytest

from thingsdk import codec
from thingsdk.audit import AuditLog
from thingsdk.cli import main
from thingsdk.core import approval, envelope, messages
from thingsdk.core import mandate as md
from thingsdk.core.consumable import DAY, Consumable
from thingsdk.core.decide import Decision, decide
from thingsdk.core.ledger import Ledger
from thingsdk.crypto import Ed25519Verifier, load_signer

ANY_PRICE = 10 ** 12
ANY_QTY = 10 ** 6


@pytest.fixture
def keys(tmp_path, capsys):
    """Key files for an owner, a fridge and a vendor; signers by name."""
    for name in ("owner", "fridge", "vendor"):
        assert main(["keygen", "--out", str(tmp_path), "--name", name]) == 0
    capsys.readouterr()
    return {name: load_signer(tmp_path / (name + ".key")) for name in ("owner", "fridge", "vendor")}


def create(tmp_path, *options, version="3"):
    return main(["mandate", "create", "--out", str(tmp_path / "m.cwt"), "--device-pub",
                 str(tmp_path / "fridge.pub"), "--owner-key", str(tmp_path / "owner.key"),
                 "--version", version, *options])


def verified(tmp_path, keys, now=None):
    token = (tmp_path / "m.cwt").read_bytes()
    now = int(time.time()) if now is None else now
    return md.verify(token, Ed25519Verifier(keys["owner"].public_key), codec, keys["fridge"].kid,
                     now)


def test_create_turns_each_option_into_its_constraint(tmp_path, keys, capsys):
    vendor = keys["vendor"]
    assert create(tmp_path, "--valid-days", "30", "--amount-range", "1-60.00EUR",
                  "--budget", "50.00EUR/month", "--budget", "200EUR/rolling:90d",
                  "--max-orders", "2/month", "--vendor", vendor.kid.hex(),
                  "--vendor", str(tmp_path / "vendor.pub"), "--vendor", "a04be1f2c3d49587",
                  "--item", "WF-300:30.00EUR:2", "--item", "AQ:9", "--category", "coffee:12.5EUR",
                  "--approval-above", "40EUR", "--cancel-window", "1h30m",
                  "--quiet-hours", "22:00-07:30@+60", "--test-mode") == 0
    m = verified(tmp_path, keys)
    assert m.version == 3 and m.expires - m.not_before == 30 * DAY
    assert m.constraints == [
        ("amount-range", {"cur": "EUR", "min": 100, "max": 6000}),
        ("budget", {"cur": "EUR", "max": 5000, "period": "month"}),
        ("budget", {"cur": "EUR", "max": 20000, "period": "rolling", "window": 90 * DAY}),
        ("recurrence", {"max": 2, "period": "month"}),
        ("vendors", {"kids": [vendor.kid, bytes.fromhex("a04be1f2c3d49587")]}),
        ("approval-above", {"cur": "EUR", "amount": 4000}),
        ("items", {"allow": [
            {"sku": "WF-300", "max-price": [3000, "EUR"], "max-qty": 2},
            {"sku": "AQ", "max-price": [ANY_PRICE, "EUR"], "max-qty": 9},
            {"cat": "coffee", "max-price": [1250, "EUR"], "max-qty": ANY_QTY}]}),
        ("cancel-window", {"seconds": 5400}),
        ("quiet-hours", {"tz": 60, "start": 1320, "end": 450}),
        ("test-mode", {})]
    out = capsys.readouterr().out
    assert "signature    valid: signed by the owner %s" % keys["owner"].kid.hex() in out
    assert "written to   %s" % (tmp_path / "m.cwt") in out


@pytest.mark.parametrize("text, amount, currency", [
    ("24.9EUR", 2490, "EUR"), ("24.90 eur", 2490, "EUR"), ("1000JPY", 1000, "JPY"),
    ("1.234KWD", 1234, "KWD"), ("0.05USD", 5, "USD"), ("7KWD", 7000, "KWD")])
def test_money_is_parsed_by_the_currencys_decimals(tmp_path, keys, text, amount, currency):
    assert create(tmp_path, "--approval-above", text) == 0
    assert verified(tmp_path, keys).constraints == [
        ("approval-above", {"cur": currency, "amount": amount})]


@pytest.mark.parametrize("option, text", [
    ("--approval-above", "24.999EUR"), ("--approval-above", "1.5JPY"),
    ("--approval-above", "24,90EUR"), ("--approval-above", "EUR24"),
    ("--approval-above", "-5EUR"), ("--approval-above", "12.50"),
    ("--approval-above", "1e3EUR"), ("--approval-above", "10000000000.01EUR"),
    ("--budget", "50EUR"), ("--budget", "50EUR/week"), ("--budget", "50EUR/rolling:3x"),
    ("--max-orders", "0/month"), ("--amount-range", "60-1EUR"),
    ("--amount-range", "1USD-60EUR"), ("--quiet-hours", "25:00-07:00"),
    ("--quiet-hours", "22:00-07:00@+900"), ("--cancel-window", "soon"),
    ("--item", "WF-300"), ("--vendor", "a04b"), ("--category", "Coffee:1EUR")])
def test_bad_options_are_a_one_line_error(tmp_path, keys, capsys, option, text):
    assert create(tmp_path, "%s=%s" % (option, text)) == 2
    err = capsys.readouterr().err
    assert err.startswith("thingsdk mandate: error: ") and err.count("\n") == 1
    assert not (tmp_path / "m.cwt").exists()


def test_sign_a_mandate_written_as_toml(tmp_path, keys, capsys):
    (tmp_path / "m.toml").write_text(
        'device-pub = "%s"\nversion = 4\nvalid-days = 7\nbudget = "25.00EUR/month"\n'
        'vendor = ["%s"]\nitem = ["WF-300:24.90EUR"]\ntest-mode = true\n'
        % (keys["fridge"].public_key.hex(), keys["vendor"].kid.hex()))
    assert main(["mandate", "sign", str(tmp_path / "m.toml"), "--owner-key",
                 str(tmp_path / "owner.key"), "--out", str(tmp_path / "m.cwt")]) == 0
    m = verified(tmp_path, keys)
    assert (m.version, m.expires - m.not_before) == (4, 7 * DAY)
    assert [kind for kind, _ in m.constraints] == ["budget", "vendors", "items", "test-mode"]
    assert m.of_kind("items")[0]["allow"] == [{"sku": "WF-300", "max-price": [2490, "EUR"],
                                               "max-qty": ANY_QTY}]
    (tmp_path / "bad.toml").write_text('version = 4\nbudjet = "25.00EUR/month"\n')
    assert main(["mandate", "sign", str(tmp_path / "bad.toml"), "--owner-key",
                 str(tmp_path / "owner.key"), "--out", str(tmp_path / "x.cwt")]) == 2
    assert "unknown keys budjet" in capsys.readouterr().err
    (tmp_path / "bad.toml").write_text('version = 4\nbudget = 25\n')
    assert main(["mandate", "sign", str(tmp_path / "bad.toml"), "--owner-key",
                 str(tmp_path / "owner.key"), "--out", str(tmp_path / "x.cwt")]) == 2
    assert "budget must be text" in capsys.readouterr().err


def test_show_says_each_rule_and_checks_the_signature(tmp_path, keys, capsys):
    assert create(tmp_path, "--budget", "50.00EUR/month", "--max-orders", "3/rolling:30d",
                  "--category", "coffee:12.5EUR:2", "--approval-above", "40EUR",
                  "--cancel-window", "24h", "--quiet-hours", "22:00-07:00@Europe/Berlin") == 0
    capsys.readouterr()
    token = tmp_path / "m.cwt"
    assert main(["mandate", "show", str(token), "--owner-pub", str(tmp_path / "owner.pub")]) == 0
    out = capsys.readouterr().out
    assert "owner        %s" % keys["owner"].kid.hex() in out
    assert "device       %s" % keys["fridge"].kid.hex() in out
    assert re.search(r"valid now, 36[45] days left", out)
    for line in ("  1. Orders total at most 50.00 EUR per calendar month (UTC).",
                 "  2. At most 3 orders in any 30 days.",
                 "  3. Orders above 40.00 EUR need your approval.",
                 "  4. Only these items: anything of category coffee (at most 12.50 EUR each, up "
                 "to 2 per order).",
                 "  5. You may cancel an order for 1 day after the vendor accepts it.",
                 "  6. No orders or approval requests from 22:00 to 07:00 (Europe/Berlin)."):
        assert line + "\n" in out

    assert main(["mandate", "show", token.read_bytes().hex(), "--owner-pub",
                 keys["vendor"].public_key.hex()]) == 1
    assert "signature    INVALID (wrong-owner)" in capsys.readouterr().out
    assert main(["mandate", "show", str(token), "--owner-pub", str(tmp_path / "owner.pub"),
                 "--device", keys["vendor"].kid.hex()]) == 1
    assert "signature    INVALID (wrong-device" in capsys.readouterr().out
    assert main(["mandate", "show", str(token)]) == 0
    assert "signature    not checked" in capsys.readouterr().out
    later = int(time.time()) + 366 * DAY
    assert main(["mandate", "show", str(token), "--owner-pub", str(tmp_path / "owner.pub"),
                 "--now", str(later)]) == 1
    out = capsys.readouterr().out
    assert "EXPIRED 1 day ago" in out and "signature    valid" in out


def asking_device(keys, now):
    """A fridge whose mandate makes it ask the owner for a 24.90 EUR filter: the decision, the
    approval-request body, its sealed message, the mandate and the ledger."""
    claims = md.make_claims(keys["owner"].kid, keys["fridge"].public_key, 1, now - DAY,
                            now + 30 * DAY, [["approval-above", {"cur": "EUR", "amount": 2000}]])
    mandate = md.Mandate(claims, None)
    slot = Consumable("water-filter", "l", 300, sku="WF-300")
    for i in range(17):
        slot.read(now - (16 - i) * 6 * 3600, 48 + 12 * (16 - i) // 4)
    offer = {"offer": b"\x03" * 16, "sku": "WF-300", "title": "Fridge water filter", "qty": 1,
             "price": [2490, "EUR"], "ship": [0, "EUR"], "total": [2490, "EUR"],
             "lead": 3 * DAY, "arrive": now + 3 * DAY, "until": now + DAY, "test": False}
    ledger = Ledger(mandate.limits())
    decision = decide(slot, slot.forecast(now), mandate, ledger, [(keys["vendor"].kid, offer)], now)
    assert decision.action == "ask"
    body = approval.request(decision, b"\x09" * 16, now)
    sealed = envelope.seal(messages.APPROVAL_REQUEST, body, keys["fridge"], keys["owner"].kid, 7,
                           now, b"\x0a" * 16, codec)
    return decision, body, sealed, mandate, ledger


def answer(tmp_path, verb, request, *extra):
    out = tmp_path / (verb + ".cose")
    code = main(["owner", verb, request, "--owner-key", str(tmp_path / "owner.key"),
                 "--out", str(out), *extra])
    return code, out


def test_approve_and_decline_are_answers_the_device_accepts(tmp_path, keys, capsys):
    now = int(time.time())
    decision, sent, sealed, mandate, ledger = asking_device(keys, now)
    (tmp_path / "req.cose").write_bytes(sealed)
    device_inbox = envelope.Inbox(keys["fridge"].kid, {keys["owner"].kid: keys["owner"].verifier()},
                                  codec)
    seqs = []
    for verb, request in (("approve", str(tmp_path / "req.cose")), ("decline", sealed.hex())):
        code, out = answer(tmp_path, verb, request, "--device-pub", str(tmp_path / "fridge.pub"))
        assert code == 0
        printed = capsys.readouterr().out
        assert "1 x Fridge water filter (WF-300) for 24.90 EUR from vendor %s" % (
            keys["vendor"].kid.hex()) in printed
        assert "  why        " + sent["why"] in printed and "(signature valid)" in printed
        opened = device_inbox.open(out.read_bytes(), now + 60)
        assert opened.status == envelope.ACCEPT, opened
        device_inbox.commit(opened)
        msg = opened.message
        assert (msg.re, msg.to, msg.body["req"]) == (b"\x0a" * 16, keys["fridge"].kid, sent["req"])
        seqs.append(msg.seq)
        final = approval.resolve(decision, sent, msg, mandate, ledger, now + 60)
        assert isinstance(final, Decision)
        if verb == "approve":
            assert (final.action, final.reason, final.approval) == ("buy", "approved", msg.id)
        else:
            assert (final.action, final.reason) == ("refuse", "declined")
    assert seqs == [0, 1] and (tmp_path / "owner.seq").exists()


def test_answers_refuse_what_is_not_a_live_request_for_this_owner(tmp_path, keys, capsys):
    now = int(time.time())
    _, _, sealed, _, _ = asking_device(keys, now)
    request = sealed.hex()
    code, out = answer(tmp_path, "approve", request, "--device-pub",
                       keys["vendor"].public_key.hex())
    assert code == 2 and "not signed by the device key given" in capsys.readouterr().err
    assert main(["owner", "approve", request, "--owner-key", str(tmp_path / "vendor.key")]) == 2
    assert "addressed to another key" in capsys.readouterr().err
    order = envelope.seal(messages.ERROR, {"code": "internal", "text": "Oops."}, keys["fridge"],
                          keys["owner"].kid, 8, now, b"\x0b" * 16, codec)
    assert answer(tmp_path, "decline", order.hex())[0] == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not an approval request" in err
    assert not out.exists() and not (tmp_path / "owner.seq").exists()
    code, _ = answer(tmp_path, "approve", request)  # no device key: read, but not checked
    assert code == 0 and "signature not checked" in capsys.readouterr().out


def test_log_prints_one_decision_per_line_and_flags_a_torn_tail(tmp_path, capsys):
    path = tmp_path / "audit.log"
    log = AuditLog(path)
    log.append(Decision("buy", "within-policy", "Filter has ~6 days left.", 1767225600)
               .to_record())
    log.append({"ignored": "late-receipt", "what": "receipt"})
    log.append(Decision("wait", "enough-stock", "Beans have ~9 days left.", 1767312000)
               .to_record())
    assert main(["log", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split(None, 3) == ["2026-01-01T00:00:00Z", "buy", "within-policy",
                                       "Filter has ~6 days left."]
    assert sorted(lines[1].split()) == ["-", "ignored=late-receipt", "what=receipt"]
    assert lines[2].startswith("2026-01-02T00:00:00Z  wait") and len(lines) == 3
    assert main(["log", str(path), "--last", "1"]) == 0
    assert capsys.readouterr().out.splitlines() == [lines[2]]

    with open(path, "ab") as f:
        f.write(b"\x00\x00\x01")  # a frame cut short by a power cut
    assert main(["log", str(path)]) == 0
    assert "the last record is torn" in capsys.readouterr().out.splitlines()[-1]


def test_log_says_when_it_is_corrupt(tmp_path, capsys):
    path = tmp_path / "audit.log"
    log = AuditLog(path)
    for i in range(3):
        log.append({"at": 1767225600 + i, "action": "wait", "reason": "enough-stock",
                    "text": "Record %d." % i})
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    assert main(["log", str(path)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("Record 0.") and out[1].endswith("Record 2.")
    assert out[-1] == ("WARNING: %s: 1 damaged record failed its check and was skipped; the 2 "
                       "others are shown" % path)
    assert main(["log", str(tmp_path / "missing.log")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_log_shows_ids_in_hex_and_times_in_utc(tmp_path, capsys):
    path = tmp_path / "audit.log"
    log = AuditLog(path)
    need = bytes.fromhex("879a7900") + bytes(12)
    log.append({"at": 1767225600, "need": need, "from": "placed", "state": "shipped",
                "due": 1767312000, "ids": [need, 2], "share": 0.125})
    assert main(["log", str(path)]) == 0
    line = capsys.readouterr().out.strip()
    assert line == ("2026-01-01T00:00:00Z  due=2026-01-02T00:00:00Z ids=[879a7900, 2] "
                    "from=placed need=879a7900 share=0.125 state=shipped")
