"""The package's modules import each other without cycles, counting imports made inside
functions too (they only hide a cycle until the day both modules are loaded in the other order).
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "thingsdk"


def module_name(path):
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path, known):
    """The package modules `path` imports, anywhere in it."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from thingsdk.core import messages` imports the module thingsdk.core.messages and
            # uses the package only as its namespace; `from thingsdk.core.cbor import dumps`
            # imports the module thingsdk.core.cbor
            subs = ["%s.%s" % (node.module, a.name) for a in node.names]
            names = [n for n in subs if n in known]
            if len(names) < len(subs):
                names.append(node.module)
        else:
            continue
        found.update(n for n in names if n in known)
    return found


def graph():
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: imports(path, paths) - {name} for name, path in paths.items()}


def cycles(edges):
    """Each import cycle once, as a list of modules (Tarjan's strongly connected components)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_one():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    edges = graph()
    assert "thingsdk.gateway" in edges and "thingsdk.core.agent" in edges["thingsdk.device.runtime"]
    assert cycles(edges) == []
