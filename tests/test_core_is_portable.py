"""The core stays sans-IO and portable: it imports only what MicroPython has, and no edge."""

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parent.parent / "thingsdk" / "core"
ALLOWED = {"hashlib", "struct", "binascii", "math", "sys"}  # sys: for sys.implementation


@pytest.mark.parametrize("module", sorted(p.name for p in CORE.glob("*.py")))
def test_core_module_imports_only_what_micropython_has(module):
    tree = ast.parse((CORE / module).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            continue
        for name in names:
            assert name in ALLOWED or name.startswith("thingsdk.core"), (module, name)
