"""The vendor's state: devices, offers, orders, support cases, last levels, the answers sent, and
the counter its messages are numbered by. In one SQLite file (WAL), the embedded default, or in
PostgreSQL (PostgresStore, psycopg 3) for workers on several hosts: one interface, the same SQL.

Several workers (threads or processes, each with its own Store) may share the database: the
service does each message's work inside `transaction()`, which holds the one write lock from the
first read (on SQLite the WriterLock, then `BEGIN IMMEDIATE`; on PostgreSQL an advisory lock),
so two workers never act on the same message or order at once, and the second one finds what
the first recorded. Because the lock is held, a transaction counts the message counter and the
order rows in memory, each read once and the message counter written back once (`next_seq`,
`next_order_row`), and the units that accepted orders hold are kept per sku (`held`), not
summed over the open orders. The schema's version is kept in `meta`; an older database is
brought up to date when opened, one from a newer vendor is refused. Structured state (replay
guard, spend ledger, bodies) is kept as CBOR, encoded and decoded with cbor2's C codec (see
`_dumps`).
"""

import contextlib
import fcntl
import functools
import os
import sqlite3
import time

import cbor2

from thingsdk import codec


SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS devices (
    {row_column}kid BLOB PRIMARY KEY, -- sha256(public_key)[:8]
    public_key BLOB NOT NULL,
    owner_key BLOB NOT NULL,          -- the key the device's mandates must be signed with
    mandate BLOB,                     -- the newest mandate token accepted
    mandate_version INTEGER,
    mandate_nbf INTEGER,
    revoked INTEGER NOT NULL DEFAULT 0,
    replay BLOB,                      -- ReplayGuard.to_state(), CBOR
    ledger BLOB,                      -- Ledger.to_state(), CBOR: the vendor's record of its spend
    registered INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS offers (
    device BLOB NOT NULL, id BLOB NOT NULL,
    sku TEXT NOT NULL, qty INTEGER NOT NULL,
    price INTEGER NOT NULL, total INTEGER NOT NULL, currency TEXT NOT NULL,  -- unit price, total
    until INTEGER NOT NULL, test INTEGER NOT NULL,
    body BLOB NOT NULL,               -- the offer body as signed, CBOR
    created INTEGER NOT NULL,
    PRIMARY KEY (device, id)
);
CREATE TABLE IF NOT EXISTS orders (
    device BLOB NOT NULL, id BLOB NOT NULL,  -- the idempotency key, scoped to the device
    digest BLOB NOT NULL,             -- sha256 of the order body's deterministic CBOR
    status TEXT NOT NULL,  -- accepted, rejected, duplicate, cancelled, shipped, delivered
    reason TEXT,
    receipt BLOB NOT NULL,            -- the first receipt body, CBOR: every answer repeats it
    offer BLOB NOT NULL, sku TEXT NOT NULL, qty INTEGER NOT NULL,
    total INTEGER NOT NULL, currency TEXT NOT NULL, test INTEGER NOT NULL,
    placed INTEGER NOT NULL, cancel_until INTEGER, ships_at INTEGER, arrives_at INTEGER,
    {row_column}PRIMARY KEY (device, id)
);
CREATE INDEX IF NOT EXISTS orders_open ON orders (status, ships_at);
CREATE TABLE IF NOT EXISTS held (   -- units of accepted non-test orders not yet shipped
    sku TEXT PRIMARY KEY, qty INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS orders_open_of ON orders (device, sku, test, status);
CREATE TABLE IF NOT EXISTS cases (
    device BLOB NOT NULL, id BLOB NOT NULL, fault TEXT NOT NULL, diag BLOB NOT NULL, text TEXT,
    opened INTEGER NOT NULL,
    reply BLOB NOT NULL,              -- the support-reply body, CBOR
    PRIMARY KEY (device, id)
);
CREATE TABLE IF NOT EXISTS levels (
    device BLOB NOT NULL, slot TEXT NOT NULL, sku TEXT, unit TEXT NOT NULL,
    level INTEGER NOT NULL, cap INTEGER NOT NULL, rate INTEGER NOT NULL, at INTEGER NOT NULL,
    PRIMARY KEY (device, slot)
);
CREATE TABLE IF NOT EXISTS replies (
    device BLOB NOT NULL, msg BLOB NOT NULL,  -- a message acted on
    data BLOB NOT NULL,               -- CBOR list of the answers, signed again for a redelivery
    at INTEGER NOT NULL,
    PRIMARY KEY (device, msg)
);
CREATE TABLE IF NOT EXISTS resyncs (   -- thingsdk.seller.resync: a device's way back
    device BLOB PRIMARY KEY,
    nonce BLOB, until INTEGER,        -- the nonce pending, if any, and when it stops counting
    epoch INTEGER NOT NULL DEFAULT 0, -- resyncs accepted
    at INTEGER                        -- when the last one was
);
CREATE TABLE IF NOT EXISTS credits (  -- credit toward a device's next orders (rewards)
    device BLOB NOT NULL, currency TEXT NOT NULL,
    amount INTEGER NOT NULL,          -- minor units of the currency, never below 0
    PRIMARY KEY (device, currency)
);
CREATE INDEX IF NOT EXISTS replies_at ON replies (at);
CREATE INDEX IF NOT EXISTS offers_until ON offers (until);
"""
KEEP = 30 * 86400  # answers and offers are kept as long as a message can be valid
SCHEMA_VERSION = 3  # of the tables above, recorded in meta; a change adds a step to _migrate
WRITE_LOCK = 0x7468696E  # PostgreSQL advisory lock key that serialises the vendor's writers
_UNREAD = object()  # a counter of a transaction before it is first read (see _issuing)


class StoreError(Exception):
    """A database this vendor cannot use."""


def _dumps(value):
    """A value (state, bodies, answers) as the store keeps it: plain CBOR from cbor2's C encoder.
    Nothing the store keeps is signed or compared as bytes (messages are sealed anew from the
    values; an answer kept for a redelivery is bytes the service encoded, given back as they
    are), so it needs neither the deterministic encoding nor the core decoder's checks. (A
    case's `diag`, as the device sent it, goes through the core codec, which can hold anything a
    message may.)"""
    return cbor2.dumps(value)


def _loads(data):
    """A value the store wrote, read back with cbor2's C decoder."""
    return cbor2.loads(data)


class Device:
    """A registered device: keys, mandate, revocation, replay and spend state (decoded when
    first read). `new_ledger` is a spend state that the work on a message set, to be kept with
    its replay state (Store.save_state)."""

    def __init__(self, row):
        (self.kid, self.public_key, self.owner_key, self.mandate, self.mandate_version,
         self.mandate_nbf, revoked, self.replay_bytes, self._ledger, self.registered) = row
        self.revoked = bool(revoked)
        self.new_ledger = None

    @functools.cached_property
    def replay(self):
        return _loads(self.replay_bytes) if self.replay_bytes else None

    @functools.cached_property
    def ledger(self):
        return _loads(self._ledger) if self._ledger else None


class Store:
    """The vendor's state: the SQL both backends run, written once. This class is SQLite's: one
    connection to the vendor's database file (created if missing); PostgresStore is the other
    backend. `db.execute(sql, args)` takes `?` placeholders and gives a DB-API cursor; rows are
    numbered by the `rowid` column (PostgreSQL's is called `n`: PostgresStore translates)."""

    def __init__(self, path, timeout=30.0):
        self.db = sqlite3.connect(str(path), timeout=timeout, isolation_level=None,
                                  check_same_thread=False)
        self._writers = WriterLock(path)
        self.lock_time = LockTime()
        self._seq = self._order_row = None  # counted in memory during a transaction (_issuing)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(SCHEMA.format(row_column=""))
        with self.transaction():  # one worker migrates; the others find it done
            self._migrate()

    def close(self):
        """Close the database connection and the file the writers take turns on."""
        self.db.close()
        self._writers.close()

    def _migrate(self):
        """Bring the schema to SCHEMA_VERSION (recorded in `meta`); refuse a newer database."""
        self.db.execute("INSERT INTO meta VALUES ('seq', 0) ON CONFLICT DO NOTHING")
        self.db.execute("INSERT INTO meta VALUES ('schema', ?) ON CONFLICT DO NOTHING",
                        (SCHEMA_VERSION,))
        found = self._one("SELECT value FROM meta WHERE key = 'schema'")[0]
        if found > SCHEMA_VERSION:
            raise StoreError("the database has schema version %d; this vendor knows up to %d"
                             % (found, SCHEMA_VERSION))
        if found < 2:  # version 2 counts the units held per sku in `held`
            self.db.execute("DROP INDEX IF EXISTS orders_held")
            self.db.execute("INSERT INTO held SELECT sku, CAST(SUM(qty) AS BIGINT) FROM orders "
                            "WHERE test = 0 AND status = 'accepted' GROUP BY sku")
        if found < 3:  # version 3 numbers the devices as they are registered (devices_after)
            self._number_devices()
        if found < SCHEMA_VERSION:
            self.db.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (SCHEMA_VERSION,))

    def _number_devices(self):
        """Number the devices of an older database in the order they were added. SQLite's
        `rowid` has always done it."""

    @contextlib.contextmanager
    def transaction(self):
        """All or nothing, holding the write lock throughout (the WriterLock, then BEGIN
        IMMEDIATE)."""
        with self.lock_time.waiting(), self._writers:
            self.db.execute("BEGIN IMMEDIATE")
            self.lock_time.taken()
            with self._issuing():
                try:
                    yield self
                    self._save_seq()
                except BaseException:
                    self.db.execute("ROLLBACK")
                    raise
            self.db.execute("COMMIT")

    @contextlib.contextmanager
    def savepoint(self):
        """Inside a transaction: all or nothing of what the block does, the rest kept."""
        self.db.execute("SAVEPOINT work")
        try:
            yield self
            self._sync()
        except BaseException:
            self._settle()
            self.db.execute("ROLLBACK TO work")
            self.db.execute("RELEASE work")
            raise
        self.db.execute("RELEASE work")

    def _sync(self):
        """Wait until the statements sent so far have run, raising the error of one that failed.
        SQLite runs each as it is executed; PostgresStore sends writes without waiting."""

    def _settle(self):
        """After a failure: wait for the statements sent so far, whatever their outcome."""

    def _changed(self, cursor):
        """The number of rows the statement of cursor changed."""
        self._sync()
        return cursor.rowcount

    def _one(self, sql, *args):
        return self.db.execute(sql, args).fetchone()

    def next_seq(self):
        """The next sequence number of the vendor's key. A transaction reads the counter when it
        first takes one and writes it back once, before it commits (its write lock keeps other
        workers out meanwhile); a number taken in a savepoint rolled back is skipped, never
        issued twice. Outside a transaction, one of its own."""
        if self._seq is None:
            with self.transaction():
                return self.next_seq()
        if self._seq is _UNREAD:
            self._seq = self._seq_read = self._one("SELECT value FROM meta WHERE key = 'seq'")[0]
        self._seq += 1
        return self._seq - 1

    @contextlib.contextmanager
    def _issuing(self):
        """Inside a transaction: sequence numbers and order rows are counted in memory (see
        next_seq and next_order_row)."""
        self._seq = self._order_row = _UNREAD
        try:
            yield
        finally:
            self._seq = self._order_row = None

    def _save_seq(self):
        if self._seq is not _UNREAD and self._seq != self._seq_read:
            self.db.execute("UPDATE meta SET value = ? WHERE key = 'seq'", (self._seq,))

    # Devices.

    def register(self, kid, public_key, owner_key, now):
        """Add a device, or renew one: revocation lifted; a new owner drops the mandate."""
        self.db.execute(
            "INSERT INTO devices (kid, public_key, owner_key, registered) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (kid) DO UPDATE SET revoked = 0, registered = excluded.registered, "
            "mandate = CASE WHEN devices.owner_key = excluded.owner_key THEN devices.mandate END, "
            "mandate_version = CASE WHEN devices.owner_key = excluded.owner_key "
            "THEN devices.mandate_version END, "
            "mandate_nbf = CASE WHEN devices.owner_key = excluded.owner_key "
            "THEN devices.mandate_nbf END, "
            "owner_key = excluded.owner_key", (kid, public_key, owner_key, now))

    def revoke(self, kid):
        """Mark a device deregistered; False if it is unknown."""
        return self._changed(self.db.execute("UPDATE devices SET revoked = 1 WHERE kid = ?",
                                             (kid,))) == 1

    def devices_after(self, number, limit=1000):
        """[(number, kid)] of the devices registered after the one of `number` (0: from the
        first), in the order they were registered, at most `limit`. A device's number is given
        when it is first registered and kept when it is renewed; registrations are numbered in
        the order they commit, as each takes the write lock (`register` in service.py), so a
        reader that goes on from the last number it saw misses none."""
        return [tuple(row) for row in self.db.execute(
            "SELECT rowid, kid FROM devices WHERE rowid > ? ORDER BY rowid LIMIT ?",
            (number, limit))]

    def device(self, kid):
        row = self._one("SELECT kid, public_key, owner_key, mandate, mandate_version, mandate_nbf,"
                        " revoked, replay, ledger, registered FROM devices WHERE kid = ?", kid)
        return Device(row) if row else None

    def public_key(self, kid):
        row = self._one("SELECT public_key FROM devices WHERE kid = ?", kid)
        return row[0] if row else None

    def save_state(self, device, replay):
        """Keep a device's replay guard state, and its `new_ledger` if the work on the message
        set one, in one write; the replay bytes kept (Device.replay_bytes)."""
        data = _dumps(replay)
        if device.new_ledger is None:
            self.db.execute("UPDATE devices SET replay = ? WHERE kid = ?", (data, device.kid))
        else:
            self.db.execute("UPDATE devices SET replay = ?, ledger = ? WHERE kid = ?",
                            (data, _dumps(device.new_ledger), device.kid))
        return data

    def save_mandate(self, kid, mandate):
        self.db.execute("UPDATE devices SET mandate = ?, mandate_version = ?, mandate_nbf = ? "
                        "WHERE kid = ?", (mandate.token, mandate.version, mandate.not_before, kid))

    # Offers.

    def add_offer(self, device, body, now):
        """Record an offer issued to device; False if it already has an offer of that id."""
        return self._changed(self.db.execute(
            "INSERT INTO offers VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (device, body["offer"], body["sku"], body["qty"], body["price"][0], body["total"][0],
             body["total"][1], body["until"], int(body["test"]), _dumps(body), now))) == 1

    def offer(self, device, offer_id):
        """The offer body issued to this device under that id, or None."""
        row = self._one("SELECT body FROM offers WHERE device = ? AND id = ?", device, offer_id)
        return _loads(row[0]) if row else None

    # Credit.

    def credit(self, device, currency):
        """Minor units of `currency` the device holds as credit toward its next orders."""
        row = self._one("SELECT amount FROM credits WHERE device = ? AND currency = ?", device,
                        currency)
        return row[0] if row else 0

    def add_credit(self, device, amount, currency):
        """Add `amount` to the device's credit; a negative amount takes off at most what is held."""
        self.db.execute("INSERT INTO credits VALUES (?, ?, 0) ON CONFLICT DO NOTHING",
                        (device, currency))
        self.db.execute("UPDATE credits SET amount = CASE WHEN amount + ? > 0 THEN amount + ? "
                        "ELSE 0 END WHERE device = ? AND currency = ?",
                        (amount, amount, device, currency))

    # Orders.

    def order_and_offer(self, device, order_id, offer_id):
        """((digest, status, receipt body) of the device's order `order_id` or None, the body of
        the offer `offer_id` issued to it or None), from one statement: an order's first two
        reads in one round trip to PostgreSQL, where each read waits for the server."""
        row = self._one("SELECT o.digest, o.status, o.receipt, f.body FROM (SELECT 1) AS one "
                        "LEFT JOIN orders o ON o.device = ? AND o.id = ? "
                        "LEFT JOIN offers f ON f.device = ? AND f.id = ?",
                        device, order_id, device, offer_id)
        known = None if row[0] is None else (row[0], row[1], _loads(row[2]))
        return known, None if row[3] is None else _loads(row[3])

    def next_order_row(self):
        """A row id for the next order, the base of its reference (inside a transaction). The
        highest is read when a transaction first asks, and counted on from there while its write
        lock keeps other workers out; a savepoint rolled back leaves its row unused."""
        if self._order_row is _UNREAD:
            self._order_row = self._one("SELECT COALESCE(MAX(rowid), 0) FROM orders")[0]
        self._order_row += 1
        return self._order_row

    def add_order(self, device, body, digest, row, receipt, now, schedule=(None, None, None)):
        """Record an order as first answered, under row (next_order_row); `receipt` is the body
        of its first receipt and `schedule` (cancel_until, ships_at, arrives_at) an accepted
        one's. An accepted order that is not a test holds its quantity (see held)."""
        status = receipt["status"]
        self.db.execute(
            "INSERT INTO orders (rowid, device, id, digest, status, reason, receipt, offer, sku, "
            "qty, total, currency, test, placed, cancel_until, ships_at, arrives_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (row, device, body["order"], digest, status, receipt.get("reason"), _dumps(receipt),
             body["offer"], body["sku"], body["qty"], body["total"][0], body["total"][1],
             int(body["test"]), now) + tuple(schedule))
        if status == "accepted" and not body["test"]:
            self._hold(body["sku"], body["qty"])

    def set_status(self, device, order_id, status):
        """Move an order on; one that leaves "accepted" releases what it held."""
        was = self._one("SELECT status, sku, qty, test FROM orders WHERE device = ? AND id = ?",
                        device, order_id)
        self.db.execute("UPDATE orders SET status = ? WHERE device = ? AND id = ?",
                        (status, device, order_id))
        if was and was[0] == "accepted" and status != "accepted" and not was[3]:
            self._hold(was[1], -was[2])

    def _hold(self, sku, qty):
        self.db.execute("INSERT INTO held VALUES (?, ?) ON CONFLICT (sku) "
                        "DO UPDATE SET qty = held.qty + excluded.qty", (sku, qty))

    def cancel_state(self, device, order_id):
        """(status, cancel_until, id of the offer ordered) of an order, or None."""
        return self._one("SELECT status, cancel_until, offer FROM orders WHERE device = ? AND "
                         "id = ?", device, order_id)

    def open_order_and_held(self, device, sku, test):
        """(the receipt reference of this device's open order for sku (a test order or not, as
        `test`) or None, `held(sku)`), from one statement: one round trip."""
        row = self._one("SELECT o.receipt, h.qty FROM (SELECT 1) AS one "
                        "LEFT JOIN orders o ON o.device = ? AND o.sku = ? AND o.test = ? "
                        "AND o.status IN ('accepted', 'shipped') "
                        "LEFT JOIN held h ON h.sku = ? LIMIT 1", device, sku, int(test), sku)
        return None if row[0] is None else _loads(row[0])["ref"], row[1] or 0

    def held(self, sku):
        """Units of sku held for accepted orders that have not shipped (test orders hold none):
        counted as orders are accepted and move on, not summed over the open orders each time."""
        row = self._one("SELECT qty FROM held WHERE sku = ?", sku)
        return row[0] if row else 0

    def due(self, status, column, now):
        """(device, order id, qty, arrives_at) of the non-test orders in status whose `column`
        time (ships_at or arrives_at) has come, oldest first."""
        return self.db.execute(
            "SELECT device, id, qty, arrives_at FROM orders WHERE status = ? AND test = 0 AND "
            "%s <= ? ORDER BY %s, rowid" % (column, column), (status, now)).fetchall()

    def order_ref(self, device, order_id):
        """The order's own reference (accepted orders carry it in their receipt)."""
        return _loads(self._one("SELECT receipt FROM orders WHERE device = ? AND id = ?",
                                     device, order_id)[0]).get("ref")

    def news(self, device, delivered_since):
        """(order id, status, qty, arrives_at) of a device's non-test orders on their way, and
        of those delivered since `delivered_since` (arrival time), oldest first."""
        return self.db.execute(
            "SELECT id, status, qty, arrives_at FROM orders WHERE device = ? AND test = 0 AND "
            "arrives_at IS NOT NULL AND "
            "(status = 'shipped' OR (status = 'delivered' AND arrives_at > ?)) ORDER BY rowid",
            (device, delivered_since)).fetchall()

    def orders(self, device):
        """Every order of a device as dicts, oldest first (for tools and tests)."""
        cursor = self.db.execute("SELECT * FROM orders WHERE device = ? ORDER BY rowid", (device,))
        rows = cursor.fetchall()  # first: in PostgreSQL's pipeline mode it brings the description
        names = [c[0] for c in cursor.description]
        return [{k: v for k, v in zip(names, row) if k != "n"} for row in rows]

    # Support cases and levels.

    def case_reply(self, device, case_id):
        row = self._one("SELECT reply FROM cases WHERE device = ? AND id = ?", device, case_id)
        return _loads(row[0]) if row else None

    def add_case(self, device, body, reply, now):
        self.db.execute("INSERT INTO cases VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (device, body["case"], body["fault"], codec.dumps(body["diag"]),
                         body.get("text"), now, _dumps(reply)))

    def save_levels(self, device, slots, now):
        for s in slots:
            self.db.execute("INSERT INTO levels VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                            "ON CONFLICT (device, slot) DO UPDATE SET sku = excluded.sku, "
                            "unit = excluded.unit, level = excluded.level, cap = excluded.cap, "
                            "rate = excluded.rate, at = excluded.at",
                            (device, s["slot"], s.get("sku"), s["unit"], s["level"], s["cap"],
                             s["rate"], now))

    def levels(self, device):
        """{slot: (level, cap, unit, at)} as last reported."""
        rows = self.db.execute("SELECT slot, level, cap, unit, at FROM levels WHERE device = ?",
                               (device,)).fetchall()
        return {row[0]: row[1:] for row in rows}

    # Answers, for redeliveries.

    def save_replies(self, device, msg_id, replies, now):
        self.db.execute("INSERT INTO replies VALUES (?, ?, ?, ?) ON CONFLICT (device, msg) "
                        "DO UPDATE SET data = excluded.data, at = excluded.at",
                        (device, msg_id, _dumps(list(replies)), now))

    def replies(self, device, msg_id):
        row = self._one("SELECT data FROM replies WHERE device = ? AND msg = ?", device, msg_id)
        return _loads(row[0]) if row else []

    def prune(self, now):
        """Forget answers and offers older than KEEP (orders and cases are kept)."""
        self.db.execute("DELETE FROM replies WHERE at < ?", (now - KEEP,))
        self.db.execute("DELETE FROM offers WHERE until < ?", (now - KEEP,))


class LockTime:
    """How long a Store's transactions waited for the write lock and held it (seconds, from
    asking for it to its commit or rollback): what bounds how far workers can share the work."""

    def __init__(self):
        self.waited = self.held = 0.0
        self.transactions = 0
        self._asked = self._taken = None

    @contextlib.contextmanager
    def waiting(self):
        self._asked = self._taken = time.perf_counter()
        try:
            yield
        finally:
            now = time.perf_counter()
            self.waited += self._taken - self._asked
            self.held += now - self._taken
            self.transactions += 1

    def taken(self):
        self._taken = time.perf_counter()

    def __str__(self):
        return "%d transactions held the write lock %.3f s and waited %.3f s for it" % (
            self.transactions, self.held, self.waited)


class WriterLock:
    """The vendor's writers to one SQLite file take turns on an flock of `<file>.lock` before
    they begin: a writer waiting for SQLite's own lock polls it, sleeping up to 100 ms between
    tries, which adds tens of milliseconds to a message whenever two workers meet, while a
    waiter on the flock wakes as soon as it is released. The kernel releases it when a process
    dies. Other programs writing the file still meet SQLite's lock and its busy timeout. An
    in-memory database has no lock file and needs none. The file is open while the lock lives:
    `close` closes it, and so does letting go of the lock (a file object, not a bare descriptor,
    which leaked one a store opened: 1,400 in one test that read the vendor's orders in a
    loop, until select() refused the descriptors past 1024)."""

    def __init__(self, path):
        text = str(path)
        self._file = None
        if text and text != ":memory:" and not text.startswith("file:"):
            fd = os.open(text + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self._file = os.fdopen(fd, "r+b", buffering=0)

    def __enter__(self):
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)

    def close(self):
        if self._file is not None:
            self._file.close()


def open_store(where):
    """The Store for `where`: a postgresql:// URL (or a libpq "key=value" string naming a
    `dbname`) opens PostgresStore, anything else is a SQLite file."""
    text = str(where)
    if text.startswith(("postgresql://", "postgres://")) or "dbname=" in text:
        return PostgresStore(text)
    return Store(where)


class _Translating:
    """A psycopg connection that takes the store's SQL: `?` placeholders become `%s` and the
    `rowid` column `n` (translations kept)."""

    def __init__(self, connection):
        self.connection = connection
        self._sql = {}

    def execute(self, sql, args=()):
        translated = self._sql.get(sql)
        if translated is None:
            translated = self._sql[sql] = sql.replace("?", "%s").replace("rowid", "n")
        return self.connection.execute(translated, args)

    def close(self):
        self.connection.close()


class PostgresStore(Store):
    """The same store on PostgreSQL (psycopg 3), for a vendor whose workers run on several
    hosts. Writers are serialised as SQLite's are: each transaction first takes one advisory lock
    (WRITE_LOCK), so two workers never act on the same message or order at once."""

    def __init__(self, conninfo):
        try:
            import psycopg
        except ImportError:
            raise StoreError("PostgreSQL needs psycopg: pip install 'thingsdk[postgres]'")

        self.db = _Translating(psycopg.connect(conninfo, autocommit=True))
        self._failed = psycopg.Error
        self._pipeline = None
        self.lock_time = LockTime()
        self._seq = self._order_row = None
        schema = SCHEMA.format(row_column="n BIGSERIAL UNIQUE, ")
        schema = schema.replace("BLOB", "BYTEA").replace("INTEGER", "BIGINT")
        with self.db.connection.transaction():  # one worker migrates; the others find it done
            self.db.execute("SELECT pg_advisory_xact_lock(?)", (WRITE_LOCK,))
            self.db.connection.execute(schema)
            self._migrate()

    def close(self):
        self.db.close()

    def _number_devices(self):
        """PostgreSQL has no `rowid`: a database from before version 3 is given the column `n`
        that numbers its devices (the rows it has are numbered as they lie)."""
        self.db.execute("ALTER TABLE devices ADD COLUMN IF NOT EXISTS n BIGSERIAL UNIQUE")

    @contextlib.contextmanager
    def transaction(self):
        """All or nothing, holding the vendor's write lock throughout. The statements go out in
        pipeline mode: a write is sent without waiting for its outcome, which comes back with
        the next read or at the end of its savepoint (_sync), so a message's writes cost no
        round trips of their own. The commit is waited for before this returns."""
        with self.lock_time.waiting(), self.db.connection.pipeline() as self._pipeline:
            try:
                self.db.execute("BEGIN")
                with self._issuing():
                    try:
                        self.db.execute("SELECT pg_advisory_xact_lock(?)", (WRITE_LOCK,))
                        self._sync()
                        self.lock_time.taken()
                        yield self
                        self._save_seq()
                    except BaseException:
                        self._settle()
                        self.db.execute("ROLLBACK")
                        raise
                self.db.execute("COMMIT")
                self._sync()
            finally:
                self._pipeline = None

    def _sync(self):
        if self._pipeline is not None:
            self._pipeline.sync()

    def _settle(self):
        try:
            self._sync()
        except self._failed:  # a write of the work that failed: it is being undone
            pass
