"""Money for people: integer minor units shown with their currency's decimals, never via float."""

# ISO 4217 currencies whose minor unit is not 1/100; every other code has 2 decimals.
DECIMALS = {"JPY": 0, "KRW": 0, "ISK": 0, "CLP": 0, "VND": 0, "UGX": 0, "XAF": 0, "XOF": 0,
            "BHD": 3, "JOD": 3, "KWD": 3, "OMR": 3, "TND": 3, "IQD": 3, "LYD": 3}


def text(amount, currency):
    """`amount` minor units of `currency` as a person writes it: 2490, "EUR" -> "24.90 EUR"."""
    decimals = DECIMALS.get(currency, 2)
    if not decimals:
        return "%d %s" % (amount, currency)
    unit = 10 ** decimals
    fraction = str(amount % unit)
    return "%d.%s %s" % (amount // unit, "0" * (decimals - len(fraction)) + fraction, currency)
