"""Replay protection: sequence windows, freshness, duplicate detection, sequence reservation.

Sans-IO: time comes in as an argument (`now`, unix seconds as an int) and state goes out and comes
back in as plain lists, ints and bytes (`to_state`, and thingsdk.core.restore), so it can be
stored as CBOR.
"""

import hashlib

from thingsdk.core.check import is_int

MAX_SEQ = 2**53 - 1
MAX_ID_LENGTH = 64
MAX_WINDOW = 1024
STATE_VERSION = 1

# Window statuses.
NEW = "new"
SEEN = "seen"
TOO_OLD = "too-old"

# Verdict outcomes.
ACCEPT = "accept"
DUPLICATE = "duplicate"
REJECT = "reject"

# Rejection reasons. MALFORMED: a header field of the wrong type or range, or exp not after ts.
MALFORMED = "malformed"
FROM_FUTURE = "from-future"
EXPIRED = "expired"
LIFETIME_TOO_LONG = "lifetime-too-long"
ID_CONFLICT = "id-conflict"
REPLAYED = "replayed"
REASONS = (MALFORMED, FROM_FUTURE, EXPIRED, LIFETIME_TOO_LONG, ID_CONFLICT, TOO_OLD, REPLAYED)


class StateError(ValueError):
    """Malformed replay state, or a setting or argument out of range."""


class SequenceExhausted(OverflowError):
    """Every sequence number up to MAX_SEQ has been issued."""


def _is_uint(value, limit=None):
    return is_int(value) and value >= 0 and (limit is None or value <= limit)


def _is_id(value):
    return isinstance(value, (bytes, bytearray)) and 0 < len(value) <= MAX_ID_LENGTH


def _require(ok, message):
    if not ok:
        raise StateError(message)


def _check_window_size(size):
    _require(_is_uint(size, MAX_WINDOW) and size > 0, "window size must be 1..%d" % MAX_WINDOW)


def _digest(data):
    return hashlib.sha256(bytes(data)).digest()


class SequenceWindow:
    """The sequence numbers seen from one sender: the highest, plus a bitmap of the `size` below it.

    Bit i of `bitmap` is set when `highest - i` was seen; `highest` is -1 before anything was seen.
    """

    def __init__(self, size=64, highest=-1, bitmap=0):
        _check_window_size(size)
        _require(is_int(highest) and -1 <= highest <= MAX_SEQ, "bad highest sequence number")
        _require(_is_uint(bitmap) and bitmap < (1 << min(size, highest + 1)), "bad window bitmap")
        _require(highest < 0 or bitmap & 1, "window bitmap must mark its highest sequence number")
        self.size = size
        self.highest = highest
        self.bitmap = bitmap

    def status(self, seq):
        """NEW, SEEN, or TOO_OLD (below the window, so it can no longer be told apart)."""
        if seq > self.highest:
            return NEW
        offset = self.highest - seq
        if offset >= self.size:
            return TOO_OLD
        return SEEN if (self.bitmap >> offset) & 1 else NEW

    def mark(self, seq):
        """Note seq as seen; the window slides forward when seq is the new highest."""
        _require(_is_uint(seq, MAX_SEQ), "sequence number must be 0..2**53-1")
        _require(self.status(seq) == NEW, "sequence number %d is not new" % seq)
        if seq > self.highest:
            shift = seq - self.highest
            kept = (self.bitmap << shift) & ((1 << self.size) - 1) if shift < self.size else 0
            self.bitmap = kept | 1
            self.highest = seq
        else:
            self.bitmap |= 1 << (self.highest - seq)


class _Sender:
    def __init__(self, window, stamp):
        self.window = window
        self.ids = {}  # message id -> (digest of the signed bytes, stamp)
        self.stamp = stamp  # when this sender last had a message recorded


class ReplayGuard:
    """Decides whether a verified message is new, a duplicate delivery, or to be refused.

    Memory is bounded: at most `max_senders` senders, each with one window and at most
    `ids_per_sender` cached message ids (each up to 64 bytes, with a 32-byte SHA-256 digest). When
    full, the sender or id whose last record is oldest is forgotten. A forgotten sender starts a
    fresh window, so `max_senders` must cover every sender whose messages can still be fresh.

    Call `check` first; it changes nothing but the `rejections` counters. Call `record` once the
    message was processed, so a crash in between lets a redelivery be processed again.
    """

    def __init__(self, window=64, max_senders=8, ids_per_sender=32, skew=300, max_lifetime=86400):
        _check_window_size(window)
        for name, value in (("max_senders", max_senders), ("ids_per_sender", ids_per_sender)):
            _require(_is_uint(value) and value > 0, "%s must be a positive int" % name)
        for name, value in (("skew", skew), ("max_lifetime", max_lifetime)):
            _require(_is_uint(value), "%s must be a non-negative int of seconds" % name)
        self.window = window
        self.max_senders = max_senders
        self.ids_per_sender = ids_per_sender
        self.skew = skew
        self.max_lifetime = max_lifetime
        self.rejections = {reason: 0 for reason in REASONS}
        self._senders = {}
        self._tick = 0

    def check(self, kid, seq, mid, ts, exp, data, now):
        """Return (outcome, reason): (ACCEPT, None), (DUPLICATE, None) or (REJECT, reason).

        data is the exact signed bytes; now is unix seconds as an int. A rejection is counted.
        """
        verdict = self._judge(kid, seq, mid, ts, exp, data, now)
        if verdict[0] == REJECT:
            self.rejections[verdict[1]] += 1
        return verdict

    def record(self, kid, seq, mid, data):
        """Commit a message that `check` accepted. Returns False if it was recorded already.

        Raises StateError for a message the guard would refuse (its seq or id is taken).
        """
        _require(_is_message(kid, seq, mid, data), "malformed message header")
        kid, mid = bytes(kid), bytes(mid)
        sender = self._senders.get(kid)
        digest = _digest(data)
        verdict = _known_id(sender, mid, digest) or _window_verdict(sender, seq)
        if verdict[0] == DUPLICATE:
            return False
        _require(verdict[0] == ACCEPT, "cannot record a refused message: %s" % verdict[1])
        self._tick += 1
        if sender is None:
            sender = self._add_sender(kid, SequenceWindow(self.window))
        sender.window.mark(seq)
        sender.stamp = self._tick
        _add_id(sender, mid, digest, self._tick, self.ids_per_sender)
        return True

    def _judge(self, kid, seq, mid, ts, exp, data, now):
        _require(_is_uint(now), "now must be unix seconds as a non-negative int")
        if not (_is_message(kid, seq, mid, data) and _is_uint(ts) and _is_uint(exp) and exp > ts):
            return REJECT, MALFORMED
        sender = self._senders.get(bytes(kid))
        verdict = _known_id(sender, bytes(mid), _digest(data))
        if verdict:
            return verdict
        if ts > now + self.skew:
            return REJECT, FROM_FUTURE
        if now >= exp:
            return REJECT, EXPIRED
        if exp - ts > self.max_lifetime:
            return REJECT, LIFETIME_TOO_LONG
        return _window_verdict(sender, seq)

    def highest(self, kid):
        """The highest sequence number recorded from kid, or -1."""
        sender = self._senders.get(bytes(kid))
        return sender.window.highest if sender else -1

    def _add_sender(self, kid, window):
        if len(self._senders) >= self.max_senders:
            oldest = min(self._senders.items(), key=lambda item: item[1].stamp)[0]
            del self._senders[oldest]
        sender = self._senders[kid] = _Sender(window, self._tick)
        return sender

    def to_state(self):
        """The whole state as plain data: oldest senders and ids first."""
        senders = []
        for kid, sender in sorted(self._senders.items(), key=lambda item: item[1].stamp):
            ids = sorted(sender.ids.items(), key=lambda item: item[1][1])
            w = sender.window
            senders.append([kid, w.highest, w.bitmap, [[mid, entry[0]] for mid, entry in ids]])
        rejections = {reason: self.rejections[reason] for reason in REASONS}
        return {"v": STATE_VERSION, "window": self.window, "senders": senders,
                "rejections": rejections}

def _is_message(kid, seq, mid, data):
    ids_ok = _is_id(kid) and _is_id(mid)
    return ids_ok and _is_uint(seq, MAX_SEQ) and isinstance(data, (bytes, bytearray))


def _known_id(sender, mid, digest):
    """The verdict for a message id already recorded for this sender, or None."""
    entry = sender.ids.get(mid) if sender else None
    if entry is None:
        return None
    return (DUPLICATE, None) if entry[0] == digest else (REJECT, ID_CONFLICT)


def _window_verdict(sender, seq):
    status = sender.window.status(seq) if sender else NEW
    if status == NEW:
        return ACCEPT, None
    return REJECT, (TOO_OLD if status == TOO_OLD else REPLAYED)


def _add_id(sender, mid, digest, stamp, limit):
    if len(sender.ids) >= limit:
        oldest = min(sender.ids.items(), key=lambda item: item[1][1])[0]
        del sender.ids[oldest]
    sender.ids[mid] = (digest, stamp)


class SequenceCounter:
    """Issues this sender's sequence numbers, reserving them in blocks so flash is written rarely.

    `checkpoint` is the persisted value: every number below it may have been used. `take()` returns
    (seq, new_checkpoint_or_None); a new checkpoint MUST be persisted before seq is used. If that
    fails, discard this counter and build a new one from the checkpoint that is stored.
    """

    def __init__(self, checkpoint=0, block=64):
        _require(_is_uint(checkpoint, MAX_SEQ + 1), "checkpoint must be 0..2**53")
        _require(_is_uint(block) and block > 0, "block must be a positive int")
        self.block = block
        self.checkpoint = checkpoint
        self._next = checkpoint

    def take(self):
        """The next sequence number and the checkpoint to persist first (None if not needed)."""
        if self._next > MAX_SEQ:
            raise SequenceExhausted("all sequence numbers up to 2**53-1 are used: rotate the key")
        new_checkpoint = None
        if self._next >= self.checkpoint:
            new_checkpoint = self.checkpoint = min(self._next + self.block, MAX_SEQ + 1)
        seq = self._next
        self._next += 1
        return seq, new_checkpoint


class CheckpointError(Exception):
    """The stored sequence checkpoint is corrupt or cannot be read."""


class StoredSequence:
    """A SequenceCounter whose checkpoint lives in storage: a subclass gives `load()`, the
    checkpoint stored (0 if none; CheckpointError if it cannot be trusted: never restart at 0),
    and `save(checkpoint)`, which writes it durably. `take()` never issues a number whose
    reservation is not stored; after a failed save it reloads what is stored first."""

    def __init__(self, block=64):
        self.block = block
        self._counter = self._stored()

    def _stored(self):
        checkpoint = self.load()
        try:
            return SequenceCounter(checkpoint, self.block)
        except ValueError as exc:
            raise CheckpointError("sequence checkpoint: %s" % exc)

    def take(self):
        """The next sequence number, its reservation already stored."""
        if self._counter is None:
            self._counter = self._stored()
        seq, checkpoint = self._counter.take()
        if checkpoint is not None:
            try:
                self.save(checkpoint)
            except BaseException:
                self._counter = None
                raise
        return seq

    def skip_past(self, seq, gap=0):
        """A receiver has seen up to seq (this sender's counters were lost or restored from an
        old copy): unless the next number is above seq already (then False, nothing changed),
        jump past seq + gap, the jump stored before this returns."""
        _require(_is_uint(seq) and _is_uint(gap) and seq + gap < MAX_SEQ,
                 "seq + gap must be 0..2**53-2")
        if self._counter is None:
            self._counter = self._stored()
        if self._counter._next > seq:
            return False
        self._counter = None
        self.save(seq + gap + 1)  # the checkpoint: every number below it may have been used
        self._counter = SequenceCounter(seq + gap + 1, self.block)
        return True
