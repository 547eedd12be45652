"""The mandate a device holds once verified (`Mandate`), the error that refuses one, and the keys
of its claims. `thingsdk.core.mandate` issues and verifies mandates; this part is all a device
needs while it runs, so that a board can leave the rest out of its heap between the mandates it
receives (agent.STARTING). Portable and sans-IO."""

ISS, SUB, EXP, NBF, IAT, CNF = 1, 2, 4, 5, 6, 8
VERSION, CONSTRAINTS = -65537, -65538


class MandateError(ValueError):
    """A mandate refused; `.code`: malformed, bad-signature, wrong-owner, wrong-device,
    not-yet-valid, expired, stale-version or too-large."""

    def __init__(self, code, text):
        super().__init__("%s: %s" % (code, text))
        self.code = code


class Mandate:
    """A verified mandate: its claims as attributes, `constraints` a list of (kind, params)."""

    def __init__(self, claims, token):
        self.token = token
        self.owner, self.device = claims[ISS], claims[SUB]
        self.version = claims[VERSION]
        self.not_before, self.expires, self.issued_at = claims[NBF], claims[EXP], claims[IAT]
        self.constraints = [(c[0], c[1]) for c in claims[CONSTRAINTS]]

    def of_kind(self, kind):
        """The params of every constraint of this kind."""
        return [params for k, params in self.constraints if k == kind]

    def limits(self):
        """The budget and recurrence constraints: what a Ledger counts against."""
        return [[k, params] for k, params in self.constraints if k in ("budget", "recurrence")]

    def status(self, now):
        """None while valid (nbf <= now < exp), else "not-yet-valid" or "expired"."""
        if now < self.not_before:
            return "not-yet-valid"
        return "expired" if now >= self.expires else None
