"""The test rig: a MicroPython board driven through its raw REPL (`repl`), `thingsdk firmware
deploy` (`deploy`) and the pytest plugin for hardware-in-the-loop tests (`plugin`)."""
