"""docs/architecture.md's table of the order lifecycle's states is the table the code checks."""

import re
from pathlib import Path

from thingsdk.core import lifecycle

ROOT = Path(__file__).resolve().parent.parent


def test_the_documented_state_table_is_the_code_s():
    page = (ROOT / "docs" / "architecture.md").read_text()
    section = page[page.index("## The order lifecycle's states"):]
    section = section[:section.index("\n## ")]
    rows = re.findall(r"^\| ([a-z]+) \| ([^|]+) \|$", section, re.M)
    documented = [(state, tuple(re.findall(r"\b(?!none\b|the\b|end\b)[a-z]+\b", following)))
                  for state, following in rows if state != "state"]  # not the header
    assert documented == [(state, tuple(following)) for state, following in lifecycle.NEXT]
