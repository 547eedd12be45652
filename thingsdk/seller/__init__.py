"""The reference vendor service (`thingsdk vendor serve`): what device makers and vendors develop
and test against.

catalog   the TOML catalog: skus, promotions, support steps
store     the SQLite state: devices, offers, orders, cases, levels, answers sent
service   the transport-independent handler: `Service.handle`, `advance`, `promote`
ordering  orders and cancels: idempotency, offer checks, the mandate re-checked with the
          vendor's own ledger
serve     the Service on MQTT (thingsdk.mqtt.Transport)
"""
