"""The simulated year (bench/year.py) keeps its books: both policies face the same demand, stock
never goes negative or appears from nowhere, and spend is what the orders placed cost."""

import importlib.util
from pathlib import Path

import pytest

from thingsdk.core.ledger import month_start

ROOT = Path(__file__).resolve().parent.parent
DAYS = 60


def load_year():
    spec = importlib.util.spec_from_file_location("bench_year", ROOT / "bench" / "year.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


year = load_year()


@pytest.fixture(scope="module")
def results():
    return year.simulate(seed=7, days=DAYS)


@pytest.mark.parametrize("spec", year.SPECS, ids=lambda s: s.slot)
def test_both_policies_face_the_same_demand(results, spec):
    forecast, threshold = results[spec.slot]["forecast"], results[spec.slot]["threshold"]
    use, _ = year.demand(spec, 7, DAYS, year.household(7))
    assert forecast.demand == threshold.demand == use and len(use) == DAYS and sum(use) > 0
    common = min(len(forecast.orders), len(threshold.orders))
    if not forecast.held_back:  # every lead time draw became an order: the n-th ones match
        assert [o[3] for o in forecast.orders[:common]] == [o[3] for o in threshold.orders[:common]]


@pytest.mark.parametrize("policy", ["forecast", "threshold"])
@pytest.mark.parametrize("spec", year.SPECS, ids=lambda s: s.slot)
def test_stock_is_never_negative_and_adds_up(results, spec, policy):
    out = results[spec.slot][policy]
    assert all(0 <= got <= asked for got, asked in zip(out.served, out.demand))
    assert min(out.on_hand) >= 0 and out.left >= out.on_hand[-1]
    # the slot starts full; every unit bought is used, or is still here or on its way
    assert spec.capacity + out.bought(spec.capacity) == sum(out.served) + out.left


@pytest.mark.parametrize("policy", ["forecast", "threshold"])
@pytest.mark.parametrize("spec", year.SPECS, ids=lambda s: s.slot)
def test_spend_is_the_sum_of_the_orders_placed(results, spec, policy):
    out = results[spec.slot][policy]
    assert out.orders, "60 days see at least one order of each consumable"
    assert out.spend == sum(spec.price * items + spec.ship for _, items, _, _ in out.orders)
    assert all(total == spec.price * items + spec.ship for _, items, total, _ in out.orders)


@pytest.mark.parametrize("spec", year.SPECS, ids=lambda s: s.slot)
def test_the_forecast_policy_keeps_to_its_mandate(results, spec):
    months = {}
    for day, _, total, _ in results[spec.slot]["forecast"].orders:
        month = months.setdefault(month_start(year.START + day * year.DAY), [0, 0])
        month[0] += total
        month[1] += 1
    assert all(spend <= spec.budget and count <= spec.orders for spend, count in months.values())


def test_the_run_is_deterministic_and_reported(results):
    again = year.simulate(seed=7, days=DAYS)
    for spec in year.SPECS:
        for policy in ("forecast", "threshold"):
            a, b = results[spec.slot][policy], again[spec.slot][policy]
            assert (a.served, a.on_hand, a.orders) == (b.served, b.on_hand, b.orders)
    text, met = year.report(results, 7, DAYS)
    assert "thingsdk forecast" in text and "20 % threshold" in text
    assert text.splitlines()[-1].endswith("met" if met else "NOT met")
