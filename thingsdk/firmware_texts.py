"""The stock firmware's sentences on flash instead of in the heap.

A .mpy file's text constants longer than ten characters are objects of their own, loaded into
the heap with the code and kept there: the decision and audit sentences and the error messages
of the board's code take about 15 KB that way, for texts a board says a few times a day.
`firmware build` (without --lines) therefore writes every such sentence used inside a function
to lib/texts.bin and compiles each use as `_T(n)`: firmware/lib/texts.py reads text n from flash
when it is needed, and the string is garbage once said. Texts evaluated at import (module-level
tables) stay in the code, where they would take the heap anyway, and so do those of the modules
that read bytes before any signature is checked (KEPT): a flood of hostile bytes must not cost
a read of flash per rejection. A module's large table of bytes (LARGEST or more, assigned to a
name at import: schemas.SCHEMAS) moves there too, compiled as `_F(n)`: texts.Flash reads it
from flash through a small window when it is searched, indexed or sliced, which is all such a
table's code may do with it. CPython and frozen firmware run the sources as written.
"""

import ast
import struct

DATA = "lib/texts.bin"
READER = "texts"  # firmware/lib/texts.py
IMPORT = b"from texts import text as _T\n"
IMPORT_FLASH = b"from texts import Flash as _F\n"
# Shorter string literals are interned by MicroPython's compiler as names (qstrs), not loaded
# as objects of their own (MICROPY_ALLOC_PARSE_INTERN_STRING_LEN is 10).
SHORTEST = 11
LARGEST = 1024  # bytes: sha512's 640 B of round constants, read for every block, stay in code
KEPT = frozenset(("cbor", "cose", "envelope", "frames", "mqtt", "seriallink", READER))
# Helpers handed their error message on every call, needed or not: a text read from flash there
# would be read each time the check passes. A `_require(ok, message)` statement is compiled as
# `if not (ok): _require(0, message)`, which reads its message only to raise; the other uses of
# these helpers keep their texts.
EAGER = frozenset(("_require", "_check_int"))
GUARDED = "_require"


class Table:
    """The texts moved out of a build's code, each once, numbered in the order first met."""

    def __init__(self):
        self.texts = []
        self.numbers = {}

    def number(self, text):
        if text not in self.numbers:
            self.numbers[text] = len(self.texts)
            self.texts.append(text)
        return self.numbers[text]

    def data(self):
        """texts.bin: len+1 little-endian uint32 offsets from the file's start, then the texts
        (in UTF-8, or bytes as they are); text n is the bytes from offset n to offset n+1."""
        encoded = [t if isinstance(t, bytes) else t.encode() for t in self.texts]
        at = 4 * (len(encoded) + 1)
        offsets = []
        for blob in encoded:
            offsets.append(at)
            at += len(blob)
        offsets.append(at)
        return struct.pack("<%dI" % len(offsets), *offsets) + b"".join(encoded)


def _ids(nodes):
    return {id(n) for node in nodes for n in ast.walk(node)}


def _guards(tree, source):
    """The `_require(ok, message)` calls of `tree` that are statements of their own, each
    beginning its line of `source`: those that can be compiled as guarded."""
    lines = source.splitlines()
    for node in ast.walk(tree):
        if (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)
                and isinstance(node.value.func, ast.Name) and node.value.func.id == GUARDED
                and len(node.value.args) == 2 and not node.value.keywords
                and not lines[node.lineno - 1].encode()[:node.col_offset].strip()):
            yield node.value


def sentences(tree, source):
    """([the string literals of `tree` worth moving], [the calls to guard]). A literal is worth
    moving with a space in it (sentences, not reason codes or keys), at least SHORTEST bytes of
    UTF-8, run when a function is called (not at import), not a docstring or bare string
    statement, not part of an f-string, an annotation or const(), and not an argument of an
    EAGER helper but the message of a guarded call."""
    guards = list(_guards(tree, source))
    guarded = {id(call) for call in guards}
    inside, skipped = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            inside |= _ids(node.body)
            skipped |= _ids([a.annotation for a in ast.walk(node.args)
                             if isinstance(a, ast.arg) and a.annotation] +
                            ([node.returns] if node.returns else []))
        elif isinstance(node, ast.Lambda):
            inside |= _ids([node.body])
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            skipped.add(id(node.value))
        elif isinstance(node, ast.JoinedStr):
            skipped |= _ids(node.values)
        elif isinstance(node, ast.AnnAssign):
            skipped |= _ids([node.annotation])
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if id(node) in guarded:
                skipped |= _ids(node.args[:1])
            elif node.func.id == "const" or node.func.id in EAGER:
                skipped |= _ids(node.args)
    found = sorted((node for node in ast.walk(tree)
                    if isinstance(node, ast.Constant) and isinstance(node.value, str)
                    and " " in node.value and len(node.value.encode()) >= SHORTEST
                    and id(node) in inside and id(node) not in skipped),
                   key=lambda n: (n.lineno, n.col_offset))
    return found, guards


def tables(tree):
    """The bytes literals of LARGEST bytes or more that `tree` assigns to a name at import."""
    return [node.value for node in tree.body
            if isinstance(node, ast.Assign) and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name) and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, bytes) and len(node.value.value) >= LARGEST]


def move_texts(source, table):
    """`source` with each literal `sentences` finds replaced by `_T(n)` and each of its `tables`
    by `_F(n)`, n its number in `table`, each guard compiled as `if not (ok): _require(0,
    message)`, and the readers imported after the module's docstring. Unchanged where there are
    none of them."""
    tree = ast.parse(source)
    found, guards = sentences(tree, source)
    large = tables(tree)
    if not found and not large:
        return source
    data = source.encode()
    starts = [0]
    for line in data.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))

    def span(node):
        return (starts[node.lineno - 1] + node.col_offset,
                starts[node.end_lineno - 1] + node.end_col_offset)

    edits = [span(n) + (b"_T(%d)" % table.number(n.value),) for n in found]
    edits += [span(n) + (b"_F(%d)" % table.number(n.value),) for n in large]
    for call in guards:
        if any(begin >= span(call)[0] and end <= span(call)[1] for begin, end, _ in edits):
            ok = span(call.args[0])
            edits.append((span(call)[0], span(call)[0], b"if not (%s): " % data[ok[0]:ok[1]]))
            edits.append(ok + (b"0",))
    for begin, end, text in sorted(edits, reverse=True):  # from the end: earlier offsets hold
        data = data[:begin] + text + data[end:]
    body = tree.body
    docstring = (body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                 and isinstance(body[0].value.value, str))
    at = starts[body[0].end_lineno] if docstring else 0
    imports = (IMPORT if found else b"") + (IMPORT_FLASH if large else b"")
    return (data[:at] + imports + data[at:]).decode()
