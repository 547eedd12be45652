import sys
from pathlib import Path

# Portable scenarios import their helper as a top-level module, as they do on MicroPython.
sys.path.insert(0, str(Path(__file__).parent / "portable"))
