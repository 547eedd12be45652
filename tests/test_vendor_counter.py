"""The vendor's answers to counter-proposals, from the example catalog's rules, on both stores."""

from pathlib import Path

import pytest

from test_vendor import HOUR, T, backend, eur, postgres, world  # noqa: F401 (the fixtures)
from thingsdk.core import messages as m
from thingsdk.seller import catalog


def counter(world, offer, qty, price, device=None, now=T, **extra):
    """Send a counter-proposal to `offer`: the vendor's answers as Messages."""
    body = dict(slot="s", sku=offer["sku"], qty=qty, offer=offer["offer"], price=eur(price),
                **extra)
    return world.send(device or world.a, m.QUOTE_REQUEST, body, now)[1]


def test_more_items_get_the_tier_price_and_a_later_delivery_slow_shipping(world):
    offer = world.quote(world.a, "BEANS-1KG", qty=2)
    assert offer["price"] == eur(1890) and offer["ship"] == eur(390)
    [answer] = counter(world, offer, 4, 1890)
    assert answer.type == m.OFFER and answer.body["qty"] == 4
    assert answer.body["price"] == eur(1790) and answer.body["ship"] == eur(390)
    assert answer.body["total"] == eur(4 * 1790 + 390) and answer.body["offer"] != offer["offer"]
    [later] = counter(world, offer, 2, 1890, need=T + 120 * HOUR)
    assert later.body["price"] == eur(1890) and later.body["ship"] == eur(0)
    assert later.body["lead"] == 120 * HOUR and later.body["arrive"] == T + 120 * HOUR
    [soon] = counter(world, offer, 2, 1890, need=T + 119 * HOUR)  # not late enough
    assert soon.body["ship"] == eur(390) and soon.body["arrive"] == T + 48 * HOUR


def test_a_price_below_the_tier_gets_the_bundle_that_meets_it(world):
    offer = world.quote(world.a, "BEANS-1KG", qty=2)
    [bundle] = counter(world, offer, 2, 1700)  # 17.00 EUR is met from 6 bags on
    assert bundle.body["qty"] == 6 and bundle.body["price"] == eur(1690)
    [none] = counter(world, offer, 2, 1000)  # no tier goes that low: the asked quantity's price
    assert none.body["qty"] == 2 and none.body["price"] == eur(1890)


def test_a_price_no_bundle_meets_gets_a_reward_credited_to_the_next_order(world):
    offer = world.quote(world.a, "WF-300", qty=2)
    assert offer["price"] == eur(2450) and "credit" not in offer
    [answer] = counter(world, offer, 2, 2200)  # no tier reaches 22.00 EUR: 5 % back instead
    assert answer.body["qty"] == 2 and answer.body["price"] == eur(2450)
    assert answer.body["reward"] == eur(2 * 2450 * 5 // 100)
    assert answer.body["total"] == eur(2 * 2450 + 498)
    store = world.service.store
    assert store.credit(world.a.kid, "EUR") == 0  # earned only by an order
    _, _, receipt = world.order(world.a, answer.body)
    assert receipt.body["status"] == "accepted" and store.credit(world.a.kid, "EUR") == 245
    assert "credit" not in world.quote(world.b, "WF-300")  # the credit is A's alone
    test = world.quote(world.a, "WF-300", test=True)
    assert "credit" not in test and test["total"] == eur(2450 + 498)
    cancel = {"order": receipt.body["order"], "by": "owner", "reason": "changed-mind"}
    world.send(world.a, m.CANCEL, cancel, T + HOUR)
    assert store.credit(world.a.kid, "EUR") == 0  # a cancel takes the reward back
    [again] = counter(world, offer, 2, 2200)
    world.order(world.a, again.body)
    next_offer = world.quote(world.a, "INK-XL-BK")  # any item, in the credit's currency
    assert next_offer["credit"] == eur(245) and next_offer["total"] == eur(3190 - 245)
    second = world.quote(world.a, "BEANS-1KG")  # shows the same credit until it is spent
    assert second["credit"] == eur(245) and second["total"] == eur(1890 + 390 - 245)
    _, _, receipt = world.order(world.a, next_offer)
    assert receipt.body["status"] == "accepted" and store.credit(world.a.kid, "EUR") == 0
    [row] = [r for r in store.orders(world.a.kid) if r["sku"] == "INK-XL-BK"]
    assert row["total"] == 3190 - 245
    _, _, receipt = world.order(world.a, second)
    assert receipt.body["reason"] == "credit-spent"
    assert "credit" not in world.quote(world.a, "INK-XL-BK")


def test_an_answer_is_an_offer_like_any_other_and_can_be_ordered(world):
    offer = world.quote(world.a, "BEANS-1KG", qty=2)
    [answer] = counter(world, offer, 3, 1800)
    _, _, receipt = world.order(world.a, answer.body)
    assert receipt.body["status"] == "accepted"
    [row] = world.service.store.orders(world.a.kid)
    assert row["total"] == 3 * 1790 + 390


def test_a_counter_to_an_offer_not_made_to_this_device_expired_or_for_another_item_errs(world):
    offer_to_b = world.quote(world.b, "BEANS-1KG", qty=2)
    [answer] = counter(world, offer_to_b, 4, 1800)
    assert answer.type == m.ERROR and answer.body["code"] == "unknown-offer"
    assert answer.body["ref"] == offer_to_b["offer"]
    offer = world.quote(world.a, "BEANS-1KG", qty=2)
    [answer] = counter(world, offer, 4, 1800, now=T + 24 * HOUR)
    assert answer.body["code"] == "offer-expired"
    [answer] = counter(world, dict(offer, sku="WF-300"), 4, 1800)
    assert answer.body["code"] == "offer-mismatch"
    body = dict(slot="s", sku="BEANS-1KG", qty=4, offer=offer["offer"], price=[1800, "USD"])
    [answer] = world.send(world.a, m.QUOTE_REQUEST, body)[1]
    assert answer.body["code"] == "offer-mismatch"
    [answer] = counter(world, offer, 500, 1800)
    assert answer.body["code"] == "out-of-stock"


def test_a_repeated_counter_gets_the_same_answer_byte_for_byte(world):
    offer = world.quote(world.a, "BEANS-1KG", qty=2)
    body = dict(slot="s", sku="BEANS-1KG", qty=4, offer=offer["offer"], price=eur(1800))
    data = world.a.seal(m.QUOTE_REQUEST, body, T)
    first = world.service.handle(data, world.a.kid, T)
    assert world.service.handle(data, world.a.kid, T + 5) == first


@pytest.mark.parametrize("tiers, fault", [
    ('[{ min = 1, price = [1000, "EUR"] }]', "more than 1"),
    ('[{ min = 3, price = [1000, "EUR"] }, { min = 3, price = [900, "EUR"] }]', "more than 3"),
    ('[{ min = 3, price = [2000, "EUR"] }]', "below 1890"),
    ('[{ min = 3, price = [1000, "USD"] }]', "must be in EUR"),
])
def test_tiers_that_do_not_step_down_are_refused_with_the_place_named(tmp_path, tiers, fault):
    text = Path(catalog.__file__).with_name("catalog.example.toml").read_text()
    text = text.replace('tiers = [{ min = 3, price = [1790, "EUR"] }, { min = 6, price = '
                        '[1690, "EUR"] }]', "tiers = " + tiers)
    with pytest.raises(catalog.CatalogError, match=r"skus\.BEANS-1KG\.tiers\[\d\]\.\w+: .*"
                       + fault):
        catalog.parse(text)


def test_slow_shipping_must_be_cheaper_and_later():
    text = Path(catalog.__file__).with_name("catalog.example.toml").read_text()
    with pytest.raises(catalog.CatalogError, match="slow_shipping"):
        catalog.parse(text.replace("slow_lead_hours = 120", "slow_lead_hours = 24"))
