"""The stock firmware's sentences on flash (thingsdk/firmware_texts.py, firmware/lib/texts.py):
the rewritten code behaves as written, the reader gives every text back, and on MicroPython's
unix port a moved sentence is read from texts.bin, not from the code."""

import ast
import importlib
import sys

import pytest

from thingsdk.firmware_build import FIRMWARE_LIB, LINKS, code_bytes, compile_lib, sources
from thingsdk.firmware_texts import DATA, KEPT, Table, move_texts, sentences

SOURCE = '''"""A module of sentences."""

TABLE = {"a": "a sentence read at import"}


class Refused(ValueError):
    pass


def _require(ok, message):
    if not ok:
        raise Refused(message)


def _check_int(value, name):
    if type(value) is not int:
        raise Refused("%s is not an int" % name)
    return value


def greet(name: "the person's name") -> "a greeting":
    """A docstring stays a docstring."""
    "a bare string statement stays"
    short, code = "ten chars!", "no-space-reason-code"
    return ("Good morning, %s: " % name + short + code + f"{name} is well" + TABLE["a"]
            + " " * len("café au lait, s'il vous plaît"))


def checked(count, unit):
    _require(type(count) is int,
             "count must be an int, not %r" % (count,))
    if count < 0: _require(False, "counts never go below zero")
    return _check_int(count, "a count of " + unit)


def told(n):
    say = lambda: "said by a lambda"  # noqa: E731
    return [say(), "first " "and second line"
            " joined"][n]
'''


@pytest.fixture
def reader(tmp_path, monkeypatch):
    """firmware/lib/texts.py, fresh, finding texts.bin in tmp_path."""
    monkeypatch.syspath_prepend(str(FIRMWARE_LIB))
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("texts", None)
    texts = importlib.import_module("texts")
    yield texts
    sys.modules.pop("texts", None)


def load(source, name):
    module = type(sys)(name)
    exec(compile(source, name, "exec"), module.__dict__)
    return module


def test_the_rewritten_module_behaves_as_written(tmp_path, reader):
    table = Table()
    moved = move_texts(SOURCE, table)
    (tmp_path / "texts.bin").write_bytes(table.data())
    plain, lean = load(SOURCE, "plain"), load(moved, "lean")
    assert lean.__doc__ == plain.__doc__ == "A module of sentences."
    assert lean.greet.__doc__ == "A docstring stays a docstring."
    for module in (plain, lean):
        assert module.greet("Ana") == ("Good morning, Ana: ten chars!no-space-reason-code"
                                       "Ana is wella sentence read at import" + " " * 29)
        assert module.checked(3, "bags") == 3
        assert [module.told(0), module.told(1)] == ["said by a lambda",
                                                    "first and second line joined"]
        with pytest.raises(module.Refused, match="count must be an int, not 'x'"):
            module.checked("x", "bags")
        with pytest.raises(module.Refused, match="counts never go below zero"):
            module.checked(-1, "bags")
    # What moved and what stayed, by the rules in firmware_texts.sentences.
    assert sorted(table.texts) == sorted([
        "Good morning, %s: ", "count must be an int, not %r",
        "café au lait, s'il vous plaît", "said by a lambda", "first and second line joined",
        "%s is not an int"])
    for kept in ("a sentence read at import", "A docstring stays", "the person's name",
                 "a bare string statement stays", "a count of ",
                 "counts never go below zero"):  # _require not beginning its line: eager
        assert kept in moved
    assert "if not (type(count) is int): _require(0," in moved


def test_a_check_that_passes_reads_nothing_from_flash(tmp_path, reader):
    table = Table()
    lean = load(move_texts(SOURCE, table), "lean")
    (tmp_path / "texts.bin").write_bytes(table.data())
    lean.greet("Ana")  # finds texts.bin
    (tmp_path / "texts.bin").unlink()
    assert lean.checked(3, "bags") == 3
    with pytest.raises(OSError):  # the moved sentence of a failing check would be read
        lean.checked("x", "bags")


def test_a_source_without_sentences_is_left_as_it_is():
    source = '"""Nothing to move."""\n\nNAME = "a module-level sentence"\n\n\ndef f():\n' \
             '    return "short"\n'
    table = Table()
    assert move_texts(source, table) == source and table.texts == []


def test_every_text_of_the_build_reads_back_and_is_gone_from_its_module(tmp_path, reader):
    code = compile_lib(tmp_path / "build", exclude=LINKS["mqtt"])
    data = (tmp_path / "build" / DATA).read_bytes()
    assert dict(code)[DATA] == len(data) and code_bytes(code) == sum(
        n for path, n in code if path.endswith(".mpy"))
    (tmp_path / "texts.bin").write_bytes(data)
    table = Table()
    for path, name in sources(LINKS["mqtt"]):
        if path.stem not in KEPT:
            before = len(table.texts)
            move_texts(path.read_text(), table)
            mpy = (tmp_path / "build" / (name + ".mpy")).read_bytes()
            for text in table.texts[before:]:
                assert (text if isinstance(text, bytes) else text.encode()) not in mpy, name
    assert len(table.texts) > 200
    assert [reader.text(n) if isinstance(text, str) else reader.Flash(n)[:]
            for n, text in enumerate(table.texts)] == table.texts
    from thingsdk.core.schemas import SCHEMAS  # the one large table of bytes, on flash

    assert SCHEMAS in table.texts
    # The modules that read unsigned bytes keep theirs: a rejection reads no flash.
    source = (FIRMWARE_LIB.parent.parent / "thingsdk" / "core" / "cbor.py").read_text()
    found, _ = sentences(ast.parse(source), source)
    cbor = (tmp_path / "build" / "lib" / "thingsdk" / "core" / "cbor.mpy").read_bytes()
    assert found and all(n.value.encode() in cbor for n in found)


WORDS = b"\n" + b"\n".join(b"word%03d is-%d" % (n, n * n) for n in range(120)) + b"\n"
TABLES = '''"""A module with a large table of bytes, read by position."""

RULES = b"x" * 2000
SMALL = b"\\nshort"
WORDS = %r


def definition(name):
    at = WORDS.find(b"\\n" + name + b" ")
    if at < 0:
        return None
    at += len(name) + 2
    end = at
    while WORDS[end] != 10:
        end += 1
    return WORDS[at:end], WORDS[at], len(WORDS), SMALL
''' % WORDS


def test_a_large_table_of_bytes_is_left_on_flash_and_read_through_a_window(tmp_path, reader):
    table = Table()
    source = move_texts(TABLES, table)
    # Only a literal of LARGEST bytes or more assigned at import moves; a computed one stays.
    assert "WORDS = _F(0)" in source and "from texts import Flash as _F" in source
    assert 'SMALL = b"\\nshort"' in source and "RULES = b" in source and len(table.texts) == 1
    (tmp_path / "texts.bin").write_bytes(table.data())
    written, lean = load(TABLES, "written"), load(source, "lean")
    assert isinstance(lean.WORDS, reader.Flash) and len(lean.WORDS) == len(written.WORDS)
    for name in (b"word000", b"word047", b"word063", b"word064", b"word119", b"word120", b"w"):
        assert lean.definition(name) == written.definition(name), name
    assert lean.definition(b"word119")[0] == b"is-14161"
    for at in (250, 508, 1020):  # matches across the edges of find's 256-byte reads
        part = written.WORDS[at:at + 12]
        assert lean.WORDS.find(part) == written.WORDS.find(part) <= at
    assert lean.WORDS.find(b"word120") == -1
    assert lean.WORDS[5:] == written.WORDS[5:] and lean.WORDS[:9] == written.WORDS[:9]
    with pytest.raises(IndexError):
        lean.WORDS[len(written.WORDS)]


def test_a_build_for_tracebacks_keeps_its_sentences_in_the_code(tmp_path):
    code = dict(compile_lib(tmp_path / "build", exclude=LINKS["mqtt"], lines=True))
    assert DATA not in code and not (tmp_path / "build" / DATA).exists()
    restore = (tmp_path / "build" / "lib/thingsdk/core/restore.mpy").read_bytes()
    assert b"unsupported ledger state" in restore


def test_on_micropython_a_refusal_reads_its_sentence_from_flash(unix32, tmp_path):
    import unix_port

    compile_lib(tmp_path / "build", "xtensawin", LINKS["mqtt"])
    lib = tmp_path / "build" / "lib"
    assert b"unsupported ledger state" not in (lib / "thingsdk/core/restore.mpy").read_bytes()
    script = tmp_path / "refuse.py"
    script.write_text(
        "from thingsdk.core import ledger, restore\n"
        "print(restore.ledger(ledger.Ledger().to_state()).to_state()['v'])\n"
        "try:\n"
        "    restore.ledger({'v': 99})\n"
        "except ledger.LedgerError as exc:\n"
        "    print('refused:', exc)\n")
    done = unix_port.run(unix32, script, path=[lib], heap="256k")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines() == ["2", "refused: unsupported ledger state"]
    (lib / "texts.bin").unlink()
    done = unix_port.run(unix32, script, path=[lib], heap="256k")
    assert "texts.bin is in no folder of sys.path" in done.stdout + done.stderr
