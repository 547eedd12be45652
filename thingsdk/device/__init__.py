"""The CPython device runtime (a Raspberry Pi side): `thingsdk device run --config FILE`.

state     the crash-safe state folder: need records, outbox, ledger, consumables, inbox, audit
runtime   Device: carries out the order lifecycle's effects; sensors, messages, heartbeat
config    a Device from a TOML file: keys, broker, mandate, consumables and their sensors
status    the state folder read without the device running (`thingsdk status`)
cancel    the owner's cancel of an order, dropped into the state folder (`thingsdk owner cancel`)
"""
