# Runs every test_* function of the portable scenario modules given in ARGV on MicroPython and
# prints one line per test: "PASS name" or "FAIL name: error". The last line is the tally.
import sys

sys.path.insert(0, "/lib/portable")
passed = failed = 0
for module_name in ARGV:  # noqa: F821 (set by the harness)
    module = __import__(module_name)
    for name in sorted(dir(module)):
        if not name.startswith("test_"):
            continue
        fn = getattr(module, name)
        try:
            fn()
        except Exception as exc:
            failed += 1
            sys.print_exception(exc)
            print("FAIL %s.%s: %s: %s" % (module_name, name, type(exc).__name__, exc))
        else:
            passed += 1
            print("PASS %s.%s" % (module_name, name))
print("micropython: %d passed, %d failed" % (passed, failed))
