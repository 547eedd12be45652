"""The simulated years (bench/year.py) keep their books: both policies face the same demand, stock
never goes negative or appears from nowhere, spend is what the orders placed cost, the forecast
policy keeps to its mandate, and the report states every target as met or NOT met."""

import importlib.util
from pathlib import Path

import pytest

from thingsdk.core.ledger import month_start

ROOT = Path(__file__).resolve().parent.parent
DAYS = 120
SEEDS = (7, 8)


def load_year():
    spec = importlib.util.spec_from_file_location("bench_year", ROOT / "bench" / "year.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


year = load_year()


@pytest.fixture(scope="module")
def runs():
    return {seed: year.simulate(seed=seed, days=DAYS) for seed in SEEDS}


@pytest.mark.parametrize("spec", year.SPECS, ids=lambda s: s.slot)
def test_both_policies_face_the_same_demand(runs, spec):
    forecast, threshold = runs[7][spec.slot]["forecast"], runs[7][spec.slot]["threshold"]
    home = year.household(7, spec)
    use, _ = year.demand(spec, 7, DAYS, home)
    assert forecast.demand == threshold.demand == use and len(use) == DAYS and sum(use) > 0
    assert all(use[day] == 0 for day in home.away if day < DAYS)
    draws = year.leads(spec, 7, DAYS, home)
    for out in (forecast, threshold):  # an order placed on a day takes that day's draw
        assert all(days == draws[day][vendor][1] for day, _, _, days, vendor in out.orders)


@pytest.mark.parametrize("policy", ["forecast", "threshold"])
@pytest.mark.parametrize("spec", year.SPECS, ids=lambda s: s.slot)
def test_stock_is_never_negative_and_adds_up(runs, spec, policy):
    for seed in SEEDS:
        out = runs[seed][spec.slot][policy]
        assert all(0 <= got <= asked for got, asked in zip(out.served, out.demand))
        assert min(out.on_hand) >= 0 and out.left >= out.on_hand[-1]
        # the slot starts full; every unit bought is used, thrown away stale, or still here
        assert spec.capacity + out.bought(spec.pack) == sum(out.served) + out.expired + out.left


@pytest.mark.parametrize("policy", ["forecast", "threshold"])
@pytest.mark.parametrize("spec", year.SPECS, ids=lambda s: s.slot)
def test_spend_is_the_sum_of_the_orders_placed(runs, spec, policy):
    out = runs[7][spec.slot][policy]
    assert out.orders, "120 days see at least one order of each consumable"
    prices = (spec.price, spec.price * (100 - year.B_DISCOUNT) // 100)
    assert all(total == prices[vendor] * items + spec.ship
               for _, items, total, _, vendor in out.orders)
    assert out.spend == sum(order[2] for order in out.orders)
    if policy == "threshold":
        assert {order[4] for order in out.orders} == {0}  # vendor A only


@pytest.mark.parametrize("spec", year.SPECS, ids=lambda s: s.slot)
def test_the_forecast_policy_keeps_to_its_mandate(runs, spec):
    for seed in SEEDS:
        out = runs[seed][spec.slot]["forecast"]
        months = {}
        for day, items, total, _, _ in out.orders:
            month = months.setdefault(month_start(year.START + day * year.DAY), [0, 0])
            month[0] += total
            month[1] += 1
            assert items <= spec.most
        assert all(spend <= spec.budget and n <= spec.orders for spend, n in months.values())
        assert out.quantity_refused == 0


def test_the_run_is_deterministic_and_reported(runs):
    again = year.simulate(seed=7, days=DAYS)
    for spec in year.SPECS:
        for policy in ("forecast", "threshold"):
            a, b = runs[7][spec.slot][policy], again[spec.slot][policy]
            assert (a.served, a.on_hand, a.orders, a.expired) == (b.served, b.on_hand, b.orders,
                                                                  b.expired)
    text, met = year.report(runs, DAYS)
    assert "thingsdk forecast" in text and "20 % threshold" in text
    assert "2 seeds (7..8)" in text
    targets = [line for line in text.splitlines() if line.startswith("  ") and ": " in line
               and line.endswith("met")]
    assert len(targets) == len(met) and sum(t.endswith("NOT met") for t in targets) == \
        len(met) - sum(met.values())
    assert len(met) == 3 * 3 + 1 + 2  # three per consumable, expiry of the perishable, totals
    verdict = text.splitlines()[-1]
    assert verdict.startswith("%d of %d targets met" % (sum(met.values()), len(met)))
    assert verdict.endswith(": met" if all(met.values()) else ": NOT met")


def test_bad_arguments_are_refused_without_a_traceback(capsys, monkeypatch):
    for argv in (["--days", "0"], ["--seeds", "0"], ["--days", "x"]):
        monkeypatch.setattr("sys.argv", ["year.py"] + argv)
        with pytest.raises(SystemExit) as exc:
            year.main()
        assert exc.value.code == 2 and "Traceback" not in capsys.readouterr().err
