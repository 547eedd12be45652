"""The CPython device runtime (a Raspberry Pi side): `thingsdk device run --config FILE`.

state     the crash-safe state folder: need records, outbox, ledger, consumables, inbox, audit
runtime   Device: carries out the order lifecycle's effects; sensors, messages, heartbeat
config    a Device from a TOML file: keys, broker, mandate, consumables and their sensors
"""
