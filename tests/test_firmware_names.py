"""The short private names of a board's build (thingsdk/firmware_names.py)."""

import ast

from thingsdk import firmware_names as fn
from thingsdk.firmware_build import loaded_source, sources
from thingsdk.firmware_texts import Table

HOLDER = '''"""A module; _private in a docstring is no reason to keep it."""
import sys

_LIMIT = 3


def _helper(_count):
    return _count + _LIMIT


class Box:
    def __init__(self):
        self._items = []

    def _add(self, item):
        self._items.append(_helper(item))


def public(box):
    box._add(1)
    return getattr(box, "_items"), sys.implementation._mpy
'''
USER = '''from holder import _helper, public


def use():
    return _helper(_count=2), public
'''


def test_private_names_bound_in_the_build_are_renamed_alike_in_every_module():
    short = fn.mapping([HOLDER, USER])
    assert set(short) == {"_LIMIT", "_helper", "_count", "_add"}
    assert len(set(short.values())) == len(short)
    # the names two modules use get the shortest
    assert {short["_helper"], short["_count"]} == {"_a", "_b"}
    helper, count, add, limit = (short[n] for n in ("_helper", "_count", "_add", "_LIMIT"))
    holder, user = fn.rename(HOLDER, short), fn.rename(USER, short)
    assert "from holder import %s, public" % helper in user
    assert "%s(%s=2)" % (helper, count) in user
    assert "def %s(%s):" % (helper, count) in holder and "box.%s(1)" % add in holder
    assert "def %s(self, item)" % add in holder
    # kept: a name a string spells (getattr), one the build does not bind (MicroPython's), the
    # public ones, and docstrings as written
    assert 'self._items = []' in holder and 'getattr(box, "_items")' in holder
    assert "sys.implementation._mpy" in holder and "def public(box):" in holder
    assert "_private in a docstring" in holder
    assert ast.dump(ast.parse(holder)).count("Name(id='%s'" % limit) == 2  # stored and loaded


def test_short_names_avoid_names_the_code_already_has_and_never_grow():
    code = "_a = 1\n_b = 2\n\n\ndef _long_name():\n    return _a + _b\n"
    short = fn.mapping([code])
    assert short == {"_long_name": "_c"}  # _a and _b are taken, and cannot be shorter
    assert [fn._short(n) for n in (0, 61, 62, 63, 124)] == ["_a", "_9", "_aa", "_ab", "_ba"]


def test_names_in_f_strings_are_kept_as_the_tokenizer_does_not_see_them():
    code = 'def _shown(_n):\n    return f"{_n} {_other()}"\n\n\ndef _other():\n    return 1\n'
    assert set(fn.mapping([code])) == {"_shown"}


def test_names_outside_code_reach_are_kept():
    code = "def _base_table():\n    return 1\n\n\ndef _other():\n    return _base_table()\n"
    assert set(fn.mapping([code])) == {"_other"}


def test_the_build_renamed_still_parses_and_binds_the_same_public_names():
    table = Table()
    texts = [loaded_source(path, table) for path, _ in sources()]
    short = fn.mapping(texts)
    assert len(short) > 200
    for text in texts:
        before, after = ast.parse(text), ast.parse(fn.rename(text, short))
        public = {n.name for n in before.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))
                  and not n.name.startswith("_")}
        assert public <= {n.name for n in after.body
                          if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
        strings = [n.value for n in ast.walk(before) if isinstance(n, ast.Constant)]
        assert strings == [n.value for n in ast.walk(after) if isinstance(n, ast.Constant)]
