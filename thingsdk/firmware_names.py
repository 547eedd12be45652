"""Short private names for a board's build (`thingsdk firmware build`, stock .mpy files).

MicroPython interns every name a .mpy file uses when it loads it: the characters go into the
heap, once per name. A build renames the private names of the code it compiles (`_judge`,
`self._flight`: a leading underscore, not a dunder) to short ones (`_a`, `_b`, ..., `_ba`), one
mapping for the whole build so that a private name another module imports or reads as an
attribute is renamed alike on both sides. A name is kept as written when:

- the build does not bind it anywhere (a def, a class, an assignment, a parameter, an import
  alias): it belongs to MicroPython (`sys.implementation._mpy`);
- it appears in a string that is not a docstring: code could reach it by name (getattr, a
  namedtuple's fields); or in an f-string, which the tokenizer reads as one token;
- it is one of KEEP: a name code outside the build reaches (the benchmarks' and tests' scripts
  that import the build).

Public names are never renamed: they are the API a device maker's code calls, and the keys of
messages and of stored state are strings. The renaming is a token-for-token substitution, so the
compiled code is the same but for its names. Tracebacks on the board then name a renamed
function by its short name (`mapping()` says which); a build with line numbers (`thingsdk
firmware build --lines`) keeps every name as written.
"""

import ast
import io
import re
import tokenize

# Private names that code outside a build reaches on a board.
KEEP = frozenset({"_base_table"})
_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def _is_private(name):
    return name.startswith("_") and not name.startswith("__") and name != "_"


def _bound(tree):
    """The private names `tree` binds."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            found.add(node.name)
        elif isinstance(node, ast.arg):
            found.add(node.arg)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            found.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            found.add(node.attr)
        elif isinstance(node, ast.alias) and node.asname:  # an import binds what it names
            found.add(node.asname)  # only where that is bound, as the module may not be ours
    return {name for name in found if _is_private(name)}


def _in_strings(tree):
    """The private names written in `tree`'s strings, docstrings left out, and in its
    f-strings."""
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docstrings.add(id(body[0].value))
    words = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and id(node) not in docstrings:
            words.update(re.findall(r"\w+", node.value))
        elif isinstance(node, ast.JoinedStr):  # an f-string is one token before Python 3.12
            words.update(re.findall(r"\w+", ast.unparse(node)))
    return {word for word in words if _is_private(word)}


def _names(source):
    """The NAME tokens of `source`: [(token, (row, col), (row, col))]."""
    return [(t.string, t.start, t.end)
            for t in tokenize.generate_tokens(io.StringIO(source).readline)
            if t.type == tokenize.NAME]


def _short(n):
    """The n-th short private name: _a ... _9, then _aa, _ab, ..."""
    tail, n = "", n + 1
    while n:
        n -= 1
        tail = _CHARS[n % len(_CHARS)] + tail
        n //= len(_CHARS)
    return "_" + tail


def mapping(sources):
    """{private name: short name} for the build's `sources` (module texts): the names used in
    the most modules get the shortest."""
    bound, kept, used, files = set(), set(KEEP), set(), {}
    for source in sources:
        tree = ast.parse(source)
        bound |= _bound(tree)
        kept |= _in_strings(tree)
        names = {name for name, _, _ in _names(source)}
        used |= names
        for name in names:
            files[name] = files.get(name, 0) + 1
    renamed = sorted((name for name in bound - kept if len(name) > 2),
                     key=lambda name: (-files.get(name, 0), name))
    short, n = {}, 0
    for name in renamed:
        while _short(n) in used:  # a name the code has already
            n += 1
        short[name] = _short(n)
        n += 1
    return {name: new for name, new in short.items() if len(new) < len(name)}


def rename(source, short):
    """`source` with each NAME token that `short` maps replaced."""
    lines = source.splitlines(keepends=True)
    for name, start, end in reversed(_names(source)):
        new = short.get(name)
        if new is not None:
            row, line = start[0] - 1, lines[start[0] - 1]
            lines[row] = line[:start[1]] + new + line[end[1]:]
    return "".join(lines)
