# Runs every test_* function of the portable scenario modules named on its command line, on
# MicroPython, and prints one line per test: "PASS name" or "FAIL name: error"; the last line is
# the tally. The harness says where things are, as options before the module names:
#   --path DIR      the portable scenarios (added to sys.path)
#   --vectors DIR   the shared third-party test vectors
#   --scratch DIR   a folder the scenarios may make their own folders in
# The WebAssembly port's harness passes its words as the global ARGV (its sys has no argv).
import sys

try:
    words = list(ARGV)  # noqa: F821 (set by the WebAssembly harness)
except NameError:
    words = sys.argv[1:]
roots = {}
while words and words[0].startswith("--"):
    roots[words[0][2:]] = words[1]
    words = words[2:]
sys.path.insert(0, roots.pop("path"))
import check  # noqa: E402

check.ROOTS.update(roots)
passed = failed = 0
for module_name in words:
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
