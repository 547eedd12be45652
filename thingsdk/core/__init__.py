"""The portable, sans-IO core: runs unmodified on CPython and MicroPython.

Nothing in here does I/O or imports beyond what MicroPython ships. Time, randomness, keys and
storage come in as arguments.
"""
