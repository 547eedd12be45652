"""docs/protocol.md's list of what the order lifecycle ignores is every reason the lifecycle
(with its rarer events, lifecycle_rare) gives, and no other."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_ignored_reason_is_documented_and_every_documented_one_is_given():
    code = "".join((ROOT / "thingsdk" / "core" / name).read_text()
                   for name in ("lifecycle.py", "lifecycle_rare.py"))
    given = set(re.findall(r'ignore\("([a-z-]+)"', code))
    given |= set(re.findall(r'\{"ignored": "([a-z-]+)"', code))
    assert {"closed", "duplicate", "unknown", "order-in-flight"} <= given
    page = (ROOT / "docs" / "protocol.md").read_text()
    section = page[page.index("## What the order lifecycle ignores"):]
    section = section[:section.index("\n## ")]
    documented = re.findall(r"^\| `([a-z-]+)` \|", section, re.M)
    assert len(documented) == len(set(documented))
    assert sorted(documented) == sorted(given)
