"""The vendor's answer to a device's counter-proposal: a quote-request that names one of the
offers this vendor made to that device, with the quantity, the latest arrival (`need`) and the
highest unit price (`price`) the device would take. The answer is a new offer, by the catalog's
rules and nothing else (catalog.example.toml, `tiers`, `slow_shipping`, `slow_lead_hours`):

- the unit price of a quantity is its tier's (`Sku.unit_price`);
- when the device would pay less per item than that, the bundle: the fewest items, more than it
  asked for, whose tier price is within what it would pay (when they are in stock);
- else, with `reward_percent`, the quantity asked for at its tier price and a reward: that
  percent of the items' price back as credit toward the device's next order. The vendor keeps
  credit per device and currency (the store's `credits`), earned when an order of the offer is
  accepted and spent by the next order's offer, which shows it (`credit`) taken off its total;
  a cancel undoes both. Whether credit later is worth more than a lower price now is the
  device's to judge (it discounts it by when its next order comes);
- when the device lets the delivery come at or after the slow lead time, slow shipping.

Whether the answer is worth taking is the device's to judge. A counter-proposal to an offer this
vendor did not make to this device, to one that expired, for another item or in another currency
is answered with an error (`unknown-offer`, `offer-expired`, `offer-mismatch`); a quantity out of
stock with `out-of-stock`. A counter-proposal repeated as the same message gets the same answer
(the service keeps answers by message id).
"""

from thingsdk.seller.ordering import error


def answer(service, device, msg, now):
    """The answers [(type, body)] to a counter-proposal `msg` (an opened quote-request)."""
    b = msg.body
    offer = service.store.offer(device.kid, b["offer"])
    if offer is None:
        return [error("unknown-offer", "We made this device no offer with that id.", b["offer"])]
    if now >= offer["until"]:
        return [error("offer-expired", "The offer has expired; ask for a new one.", b["offer"])]
    item = service.catalog.skus.get(offer["sku"])
    if item is None or b.get("sku") != offer["sku"] or b["price"][1] != offer["price"][1]:
        return [error("offer-mismatch", "The counter-proposal is not about our offer's item "
                      "and currency.", b["offer"])]
    qty, price = b["qty"], item.unit_price(b["qty"])
    reward = None
    if b["price"][0] < price[0]:
        for least, tier in item.tiers:
            if least > qty and tier[0] <= b["price"][0]:
                qty, price = least, tier
                break
        else:
            back = price[0] * qty * item.reward // 100
            reward = [back, price[1]] if back > 0 else None
    if not offer["test"] and item.stock - service.store.held(item.sku) < qty:
        return [error("out-of-stock", "We do not have %d in stock." % qty, b["offer"])]
    ship, lead = item.shipping, item.lead
    if item.slow is not None and b.get("need", 0) >= now + item.slow[1]:
        ship, lead = item.slow
    return service.make_offer(device, item, qty, price, ship, lead, offer["test"], now, reward)
