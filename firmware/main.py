# Runs after every boot: the device, until the power is cut or Ctrl-C on the console
# (firmware/README.md); a test rig holds it with rig.json.
import app

app.boot()
