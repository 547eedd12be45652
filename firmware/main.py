# Runs after every boot: the device, until the power is cut or Ctrl-C on the console
# (firmware/README.md); a test rig holds it with rig.json.
import gc

# Loading the code leaves garbage among what stays; collected only once the heap is full, it
# would leave holes that only small objects fit. Collected every 4 KB while the code loads, it
# makes room for the code itself (app.main then has it collected every 8 KB as it runs).
gc.threshold(4096)
import app  # noqa: E402

app.boot()
