// Runs a Python file on the official MicroPython WebAssembly port, with host folders copied into
// the interpreter's file system first (the port cannot see the host's files).
//
//   node tests/mpy/run.mjs [--heap BYTES] [--mount HOSTDIR:MPYDIR]... SCRIPT [ARG]...
//
// SCRIPT's stdout and stderr pass through; ARGs are visible to it as the global ARGV (this port's sys
// has no argv). The exit code is
// 0 when the script finishes, 1 when it raises (the traceback is printed to stderr).
import fs from "node:fs";
import path from "node:path";
import { loadMicroPython } from "@micropython/micropython-webassembly-pyscript";

function parseArgs(argv) {
  const opts = { heap: 1024 * 1024, mounts: [], script: null, args: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (opts.script === null && a === "--heap") opts.heap = parseInt(argv[++i], 10);
    else if (opts.script === null && a === "--mount") {
      const [host, target] = argv[++i].split(":");
      opts.mounts.push({ host, target });
    } else if (opts.script === null) opts.script = a;
    else opts.args.push(a);
  }
  if (opts.script === null) throw new Error("usage: run.mjs [--heap N] [--mount HOST:MPY]... SCRIPT [ARG]...");
  return opts;
}

function copyTree(FS, host, target) {
  FS.mkdirTree(target);
  for (const entry of fs.readdirSync(host, { withFileTypes: true })) {
    const src = path.join(host, entry.name);
    const dst = target + "/" + entry.name;
    if (entry.isDirectory()) {
      if (entry.name !== "__pycache__") copyTree(FS, src, dst);
    } else if (entry.isFile()) {
      FS.writeFile(dst, fs.readFileSync(src));
    }
  }
}

const opts = parseArgs(process.argv.slice(2));
const mp = await loadMicroPython({
  heapsize: opts.heap,
  stdout: (line) => process.stdout.write(line + "\n"),
  stderr: (line) => process.stderr.write(line + "\n"),
  linebuffer: true,
});
for (const { host, target } of opts.mounts) copyTree(mp.FS, host, target);
try {
  mp.runPython(`import sys\nARGV = ${JSON.stringify(opts.args)}\nif '/lib' not in sys.path: sys.path.append('/lib')`);
  mp.runPython(fs.readFileSync(opts.script, "utf8"));
} catch (err) {
  process.stderr.write(String(err.message || err) + "\n");
  process.exitCode = 1;
}
