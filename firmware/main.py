# Runs after every boot: the device, until power is cut or Ctrl-C on the console (firmware/README.md).
import app

app.boot()
