"""The vendor's catalog: what it sells, its promotions and its support answers, from a TOML file.

Every value that goes on the wire is checked by building the message it will appear in, so the
catalog obeys exactly the protocol's rules (labels, tokens, sentences, money). Money is integer
minor units: `price = [2450, "EUR"]` is 24.50 EUR. See catalog.example.toml for the layout.
"""

import hashlib
import tomllib

from thingsdk.core import messages
from thingsdk.core.lifecycle import VISIT_SKU

HOUR = 3600
_NO_ID = bytes(messages.ID_SIZE)


class CatalogError(ValueError):
    """A catalog file that cannot be used; the text names the file and the place."""


class Sku:
    """One item for sale: `price` per unit and `shipping` per order ([amount, currency]), `lead`
    seconds from order to delivery, `stock` units on hand, `test`: offered for tests only.
    What a counter-proposal may get (thingsdk.seller.counter_offers): `tiers`, [(least items,
    unit price)] by least items, each cheaper than the one before; `slow`, (shipping, lead) for
    a delivery the device lets come later, or None; `reward`, the most credit toward the next
    order an answer may give, in percent of the items' price (0: none)."""

    def __init__(self, sku, title, category, price, shipping, lead, stock, test, tiers=(),
                 slow=None, reward=0):
        self.sku, self.title, self.category = sku, title, category
        self.price, self.shipping, self.lead = price, shipping, lead
        self.stock, self.test = stock, test
        self.tiers, self.slow, self.reward = list(tiers), slow, reward

    def unit_price(self, qty):
        """The unit price for qty items: the price of the largest tier qty reaches."""
        price = self.price
        for least, tier in self.tiers:
            if qty >= least:
                price = tier
        return price


class Promotion:
    """A price for a while; `id` (16 bytes) is derived from the name, so it survives restarts."""

    def __init__(self, name, sku, title, price, until, most):
        self.name, self.sku, self.title, self.price, self.until, self.max = (
            name, sku, title, price, until, most)
        self.id = hashlib.sha256(b"thingsdk promotion " + name.encode()).digest()[:messages.ID_SIZE]

    def body(self):
        """The promotion message body."""
        body = {"promo": self.id, "sku": self.sku, "price": self.price, "until": self.until}
        if self.title:
            body["title"] = self.title
        if self.max:
            body["max"] = self.max
        return body


class Catalog:
    """Skus by name, promotions by id, support steps by fault code, and how long quotes last."""

    def __init__(self, skus, promotions, faults, default_steps, offer_ttl, visit_ttl, name=None):
        self.name = name  # how people know this vendor: signed into every offer
        self.skus = skus
        self.promotions = promotions
        self.faults = faults  # fault code -> (steps, visit: bool)
        self.default_steps = default_steps
        self.offer_ttl = offer_ttl
        self.visit_ttl = visit_ttl

    def promotion(self, name):
        """The promotion called name; KeyError if there is none."""
        for promo in self.promotions.values():
            if promo.name == name:
                return promo
        raise KeyError(name)

    def support(self, fault):
        """(steps, visit) for a fault code; the default steps and no visit for an unknown one."""
        return self.faults.get(fault, (self.default_steps, False))


class _Reader:
    """Typed access to a TOML table, with errors naming the place."""

    def __init__(self, source, table, path):
        self.source, self.table, self.path = source, table, path
        if not isinstance(table, dict):
            self.fail("", "expected a table")

    def fail(self, key, text):
        place = ".".join(p for p in (self.path, key) if p)
        raise CatalogError("%s: %s: %s" % (self.source, place or "top level", text))

    def get(self, key, kind, default=None):
        if key not in self.table:
            if default is None:
                self.fail(key, "missing")
            return default
        value = self.table[key]
        if kind is int and isinstance(value, bool) or not isinstance(value, kind):
            self.fail(key, "expected %s" % {int: "an integer", str: "text", bool: "true or false",
                                            list: "a list", dict: "a table"}[kind])
        return value

    def money(self, key):
        value = self.get(key, list)
        if len(value) != 2 or isinstance(value[0], bool) or not isinstance(value[0], int):
            self.fail(key, "expected [amount in minor units, currency], e.g. [2450, \"EUR\"]")
        return value

    def sub(self, key, default=None):
        return _Reader(self.source, self.get(key, dict, default), ".".join(
            p for p in (self.path, key) if p))

    def unknown(self, known):
        for key in self.table:
            if key not in known:
                self.fail(key, "unknown setting")

    def message(self, msg_type, body, names=None):
        """Check body as a body of msg_type; refusals name the catalog setting."""
        try:
            messages.check_body(msg_type, body)
        except messages.MessageError as exc:
            field = exc.field.removeprefix("b.")
            head = field.split(".")[0].split("[")[0]
            self.fail((names or {}).get(head, head) + field[len(head):],
                      str(exc).split(": ", 1)[1])


def _tiers(r, price):
    """[(least items, unit price)] from `tiers = [{min = 6, price = [2290, "EUR"]}, ...]`: by
    least items, each more than 1 and cheaper than the tier (or price) before it."""
    tiers = []
    for i, table in enumerate(r.get("tiers", list, [])):
        t = _Reader(r.source, table, "%s.tiers[%d]" % (r.path, i))
        t.unknown(("min", "price"))
        least, tier = t.get("min", int), t.money("price")
        before = tiers[-1] if tiers else (1, price)
        if least <= before[0]:
            t.fail("min", "must be more than %d, the tier before's" % before[0])
        if tier[1] != price[1] or not 0 < tier[0] < before[1][0]:
            t.fail("price", "must be in %s and below %d, the price before" % (price[1],
                                                                              before[1][0]))
        tiers.append((least, tier))
    return tiers


def _sku(r, name):
    r.unknown(("title", "category", "price", "shipping", "lead_hours", "stock", "test", "tiers",
               "slow_shipping", "slow_lead_hours", "reward_percent"))
    price = r.money("price")
    slow = None
    if "slow_shipping" in r.table or "slow_lead_hours" in r.table:
        slow = (r.money("slow_shipping"), r.get("slow_lead_hours", int) * HOUR)
    sku = Sku(name, r.get("title", str), r.get("category", str), price,
              r.money("shipping"), r.get("lead_hours", int) * HOUR, r.get("stock", int),
              r.get("test", bool, False), _tiers(r, price), slow, r.get("reward_percent", int, 0))
    if sku.stock < 0:
        r.fail("stock", "must be 0 or more")
    if not 0 <= sku.reward <= 100:
        r.fail("reward_percent", "must be 0..100")
    if sku.price[1] != sku.shipping[1]:
        r.fail("shipping", "must be in the price's currency %s" % sku.price[1])
    if slow and (slow[0][1] != sku.price[1] or slow[0][0] > sku.shipping[0] or
                 slow[1] <= sku.lead):
        r.fail("slow_shipping", "must be in %s, cost no more than shipping and come after "
               "lead_hours" % sku.price[1])
    total = [sku.price[0] + sku.shipping[0], sku.price[1]]
    r.message(messages.OFFER, {"offer": _NO_ID, "sku": name, "title": sku.title, "qty": 1,
                               "price": sku.price, "ship": sku.shipping, "total": total,
                               "lead": sku.lead, "arrive": 0, "until": 0, "test": sku.test},
              {"sku": "(name)", "ship": "shipping", "lead": "lead_hours"})
    r.message(messages.QUOTE_REQUEST, {"slot": "x", "cat": sku.category, "qty": 1},
              {"cat": "category"})
    return sku


def _promotion(r, skus):
    r.unknown(("name", "sku", "title", "price", "until", "max"))
    promo = Promotion(r.get("name", str), r.get("sku", str), r.get("title", str, ""),
                      r.money("price"), r.get("until", int), r.get("max", int, 0))
    if promo.sku not in skus:
        r.fail("sku", "no sku %r in the catalog" % promo.sku)
    if promo.price[1] != skus[promo.sku].price[1]:
        r.fail("price", "must be in the sku's currency %s" % skus[promo.sku].price[1])
    r.message(messages.PROMOTION, promo.body())
    return promo


def _steps(r, key="steps"):
    steps = r.get(key, list)
    r.message(messages.SUPPORT_REPLY, {"case": _NO_ID, "steps": steps})
    return steps


def parse(text, source="catalog"):
    """A Catalog from TOML text; CatalogError names what is wrong and where."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError("%s: not valid TOML: %s" % (source, exc)) from exc
    top = _Reader(source, data, "")
    top.unknown(("vendor", "skus", "promotions", "support"))
    settings = top.sub("vendor", {})
    settings.unknown(("name", "offer_hours", "visit_hours"))
    name = settings.get("name", str) if "name" in settings.table else None
    if name is not None and not 0 < len(name.encode()) <= 64:
        settings.fail("name", "1 to 64 bytes of UTF-8: it is signed into every offer")
    offer_ttl = settings.get("offer_hours", int, 24) * HOUR
    visit_ttl = settings.get("visit_hours", int, 7 * 24) * HOUR
    if offer_ttl <= 0 or visit_ttl <= 0:
        settings.fail("", "offer_hours and visit_hours must be positive")
    sku_table = top.sub("skus")
    skus = {name: _sku(sku_table.sub(name), name) for name in sku_table.table}
    if not skus:
        top.fail("skus", "the catalog sells nothing")
    promotions = {}
    for i, table in enumerate(top.get("promotions", list, [])):
        promo = _promotion(_Reader(source, table, "promotions[%d]" % i), skus)
        if any(p.name == promo.name for p in promotions.values()):
            top.fail("promotions[%d].name" % i, "%r is used twice" % promo.name)
        promotions[promo.id] = promo
    support = top.sub("support")
    support.unknown(("steps", "faults"))
    faults = {}
    fault_table = support.sub("faults", {})
    for fault in fault_table.table:
        r = fault_table.sub(fault)
        r.unknown(("steps", "visit"))
        r.message(messages.SUPPORT_REQUEST, {"case": _NO_ID, "fault": fault, "diag": {}},
                  {"fault": "(name)"})
        faults[fault] = (_steps(r), r.get("visit", bool, False))
        if faults[fault][1] and VISIT_SKU not in skus:
            r.fail("visit", "quoting a visit needs a %r sku in the catalog" % VISIT_SKU)
    return Catalog(skus, promotions, faults, _steps(support), offer_ttl, visit_ttl, name)


def load(path):
    """The Catalog in a TOML file."""
    with open(path, "rb") as f:
        raw = f.read()
    try:
        text = raw.decode()
    except UnicodeDecodeError as exc:
        raise CatalogError("%s: not UTF-8 text" % path) from exc
    return parse(text, str(path))
