// The virtual board: the official MicroPython WebAssembly port behind a raw REPL on TCP, so a rig
// drives it like a real board behind a serial port (pyserial's socket://), plus a control channel
// that plays the world around the board (pins, ADC, HX711, clock, network, power).
//
//   node hil/virtual/board.mjs --port N [--control M] [--flash DIR] [--heap BYTES]
//
// Once both ports listen it prints one JSON line on stdout: {"repl": N, "control": M} (port 0 picks
// a free port). The control channel takes JSON lines and answers one line each, see `control()`.
//
// The interpreter runs in a worker thread, one worker per boot: a reset terminates the worker and
// starts a new one. That is the only clean reload: the port keeps its proxies in globals, so a
// second interpreter in the same thread would get the first one's pending timers and finalizers,
// and a worker can be cut off even while Python spins in a loop (a power cut, at any time).
// The flash is a host folder (--flash DIR, else a temporary one): each boot copies it into the
// interpreter's root, and files are written back as they are closed, renamed or removed, so what
// was written survives any reset and whatever lived only in RAM does not.
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { Worker, isMainThread, parentPort, workerData } from "node:worker_threads";
import { fileURLToPath } from "node:url";

const RAW_BANNER = "raw REPL; CTRL-B to exit\r\n>";

// What the rig set about the world, which outlives resets: the host keeps it, each board gets a copy
// and reports the changes it makes itself (machine.RTC).
function applyWorld(world, req) {
  const int = (v, name, min = -Infinity, max = Infinity) => {
    if (!Number.isInteger(v) || v < min || v > max) throw new Error(`${name} must be an integer in [${min}, ${max}]`);
    return v;
  };
  switch (req.op) {
    case "adc": world.adc[int(req.pin, "pin")] = int(req.value, "value", 0, 0xffff); break;
    case "pin": world.pins[int(req.pin, "pin")] = req.value ? 1 : 0; break;
    case "hx711":
      world.hx711[int(req.dout, "dout")] = { sck: int(req.sck, "sck"), value: int(req.value, "value", -0x800000, 0x7fffff) };
      break;
    case "clock":
      if (typeof req.offset !== "number") throw new Error("offset must be a number of seconds");
      world.clock = req.offset;
      break;
    case "net": world.net = !!req.up; break;
    case "pulses": int(req.pin, "pin"); int(req.count, "count", 0, 1000000); break;
    case "state": break;
    default: throw new Error(`unknown op: ${req.op}`);
  }
}

if (isMainThread) await host();
else await board();

// ---------------------------------------------------------------------------------------------
// The host side: TCP servers, the flash folder, one worker per boot.

async function host() {
  const args = { port: 0, control: 0, flash: null, heap: 2 * 1024 * 1024 };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    const key = argv[i].replace(/^--/, "");
    if (!(key in args) || i + 1 >= argv.length) {
      console.error("usage: board.mjs --port N [--control M] [--flash DIR] [--heap BYTES]");
      process.exit(2);
    }
    args[key] = key === "flash" ? argv[++i] : parseInt(argv[++i], 10);
  }
  const scratch = args.flash ? null : fs.mkdtempSync(path.join(os.tmpdir(), "vboard-"));
  const flash = path.resolve(args.flash || scratch);
  fs.mkdirSync(flash, { recursive: true });

  const world = { adc: {}, pins: {}, hx711: {}, clock: 0, net: true };
  let worker = null, client = null, nextId = 0;
  const pending = new Map(); // request id -> reply callback

  function boot(kind, raw = false) {
    if (worker) worker.terminate(); // no goodbye: RAM is lost, closed files are on the flash
    for (const reply of pending.values()) reply({ ok: false, error: "board reset" });
    pending.clear();
    const me = fileURLToPath(import.meta.url);
    const w = new Worker(me, {
      workerData: { flash, heap: args.heap, world, kind, raw: kind === "soft" && raw, lib: path.join(path.dirname(me), "lib") },
    });
    worker = w;
    w.on("message", (m) => {
      if (w !== worker) return; // a dying board's last words are never heard
      if (m.t === "out") client?.write(m.data);
      else if (m.t === "reply") { pending.get(m.id)?.(m.res); pending.delete(m.id); }
      else if (m.t === "clock") world.clock = m.offset;
      else if (m.t === "reset") boot(m.kind, m.raw);
    });
    w.on("error", (err) => {
      if (w !== worker) return;
      // A bug of the bridge, not the board's: say so and stay down until the rig's hard_reset,
      // rather than crash and restart in a loop.
      process.stderr.write(`virtual board crashed: ${err.stack || err}\n`);
      client?.write(`\r\nvirtual board crashed: ${err.message}\r\n`);
      worker = null;
    });
  }

  async function control(req) {
    if (req.op === "hard_reset") { boot("power"); return { ok: true }; }
    applyWorld(world, req);
    const id = nextId++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => { pending.delete(id); resolve({ ok: false, error: "board busy" }); }, 10000);
      pending.set(id, (res) => { clearTimeout(timer); resolve(res); });
      if (worker) worker.postMessage({ t: "op", id, req });
      else pending.get(id)({ ok: false, error: "board crashed: hard_reset restarts it" });
    });
  }

  const repl = net.createServer((sock) => {
    client?.destroy(); // one serial port: a new client takes it over
    client = sock;
    sock.setNoDelay(true);
    sock.on("data", (data) => { if (client === sock) worker?.postMessage({ t: "in", data }); });
    sock.on("close", () => { if (client === sock) client = null; });
    sock.on("error", () => {});
  });
  const ctl = net.createServer((sock) => {
    let buf = "", replies = Promise.resolve(); // one reply per line, in order
    const answer = async (line) => {
      let res;
      try { res = await control(JSON.parse(line)); } catch (err) { res = { ok: false, error: err.message }; }
      if (!sock.destroyed) sock.write(JSON.stringify(res) + "\n");
    };
    sock.setEncoding("utf8");
    sock.on("error", () => {});
    sock.on("data", (chunk) => {
      const lines = (buf + chunk).split("\n");
      buf = lines.pop();
      for (const line of lines) if (line.trim()) replies = replies.then(() => answer(line));
    });
  });
  const listen = (server, port) => new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve(server.address().port));
  });
  const ports = { repl: await listen(repl, args.port), control: await listen(ctl, args.control) };
  boot("power");
  process.stdout.write(JSON.stringify(ports) + "\n");

  const stop = () => {
    if (scratch) fs.rmSync(scratch, { recursive: true, force: true });
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  // A rig that dies without stopping us leaves no board behind: we notice being orphaned.
  const parent = process.ppid;
  setInterval(() => { if (process.ppid !== parent) stop(); }, 2000).unref();
}

// ---------------------------------------------------------------------------------------------
// The board side: one interpreter, its REPL, its fake peripherals.

async function board() {
  const { loadMicroPython } = await import("@micropython/micropython-webassembly-pyscript");
  const { flash, heap, world, kind, lib } = workerData;
  let raw = workerData.raw, stopped = false; // stopped: a reset is asked for, the host ends us
  const inbox = [];
  let handle = (m) => inbox.push(m); // messages wait until the interpreter is up
  parentPort.on("message", (m) => handle(m));

  // The board's clock is the host's plus the skew the rig (or machine.RTC) set.
  const realNow = Date.now;
  Date.now = () => realNow() + world.clock * 1000;

  // Serial output: "\n" becomes "\r\n" as a board's UART writes it. Line ends and the raw REPL's
  // markers ("OK", \x04, ">") go out at once, so a host sees them even while Python then runs for
  // long; other bytes are gathered and sent when the current job is done.
  const MARKERS = new Set([10, 4, 62, 75]);
  let out = [], last = 0, muted = false, flushing = false;
  const flush = () => {
    flushing = false;
    if (out.length) parentPort.postMessage({ t: "out", data: Uint8Array.from(out) });
    out = [];
  };
  const emit = (bytes) => {
    if (muted) return;
    for (const c of bytes) {
      if (c === 10 && last !== 13) out.push(13);
      out.push(c);
      last = c;
    }
    if (MARKERS.has(last) || out.length >= 1024) flush();
    else if (!flushing) { flushing = true; setImmediate(flush); }
  };
  const mp = await loadMicroPython({ heapsize: heap, stdout: emit, stderr: emit, linebuffer: false });
  const FS = mp.FS;

  // Flash: host folder <-> interpreter root. Emscripten's own folders stay out of it.
  const outside = (p) => /^\/(dev|proc|\.virtual)(\/|$)/.test(p);
  const host = (p) => path.join(flash, p);
  const mirrorFile = (p) => {
    if (outside(p)) return;
    const tmp = host(p) + ".vboard-tmp"; // write then rename: a power cut never leaves half a file
    fs.writeFileSync(tmp, FS.readFile(p));
    fs.renameSync(tmp, host(p));
  };
  // Mirror each change after the interpreter's own file system made it. A host-side failure is
  // reported, not thrown: an exception in a call from the interpreter would kill it.
  const wrap = (name, after) => {
    const orig = FS[name];
    FS[name] = (...a) => {
      const r = orig.apply(FS, a);
      try { after(...a); } catch (err) { process.stderr.write(`flash mirror: ${name}: ${err.message}\n`); }
      return r;
    };
  };
  for (const dir of ["/tmp", "/home/web_user", "/home"]) try { FS.rmdir(dir); } catch {} // root = flash
  const load = (hostDir, target) => {
    FS.mkdirTree(target);
    for (const e of fs.readdirSync(hostDir, { withFileTypes: true })) {
      if (e.name.endsWith(".vboard-tmp")) continue;
      const t = (target === "/" ? "" : target) + "/" + e.name;
      if (e.isDirectory()) load(path.join(hostDir, e.name), t);
      else if (e.isFile()) FS.writeFile(t, fs.readFileSync(path.join(hostDir, e.name)));
    }
  };
  load(flash, "/");
  const norm = (p) => path.posix.normalize(p);
  wrap("close", (s) => { if (s.path && (s.flags & 3)) mirrorFile(norm(s.path)); });
  wrap("mkdir", (p) => { if (!outside(norm(p))) fs.mkdirSync(host(norm(p)), { recursive: true }); });
  wrap("unlink", (p) => { if (!outside(norm(p))) fs.rmSync(host(norm(p)), { force: true }); });
  wrap("rmdir", (p) => { if (!outside(norm(p))) fs.rmSync(host(norm(p)), { recursive: true, force: true }); });
  wrap("rename", (a, b) => { if (!outside(norm(a)) && !outside(norm(b))) fs.renameSync(host(norm(a)), host(norm(b))); });
  // A soft reset closes open files (their finalisers run) before the reboot: keep their data.
  const syncOpenFiles = () => {
    for (const s of FS.streams) if (s && s.path && (s.flags & 3) && FS.isFile(s.node.mode)) mirrorFile(norm(s.path));
  };

  // Pins: levels the rig sets (world.pins), levels the board drives, IRQ handlers, HX711s.
  const outputs = {}, irqs = {}, hx = {}; // hx: dout -> bits clocked out of the current reading
  const fire = (pin, edge) => {
    const irq = irqs[pin];
    if (irq && irq.trigger & edge) irq.handler();
  };
  const setInput = (pin, level) => {
    const old = world.pins[pin] ?? 0;
    world.pins[pin] = level;
    if (old !== level) fire(pin, level ? 1 : 2); // machine.Pin.IRQ_RISING = 1, IRQ_FALLING = 2
  };
  const hxBySck = (sck) => Object.keys(world.hx711).find((d) => world.hx711[d].sck === sck);
  const sockets = new Set();

  const api = {
    boot_kind: () => kind,
    adc: (pin) => world.adc[pin] ?? 0,
    pin_in: (pin) => {
      const cfg = world.hx711[pin];
      if (!cfg) return world.pins[pin] ?? null;
      const k = hx[pin] ?? 0; // 0: ready (data low); 1..24: data bit; 25+: gain pulses, done
      if (k === 0) return 0;
      if (k > 24) { hx[pin] = 0; return 0; } // polled for the next reading: a new one is ready
      return (cfg.value >> (24 - k)) & 1;
    },
    pin_out: (pin, level) => {
      const rising = level && !outputs[pin];
      outputs[pin] = level ? 1 : 0;
      const dout = rising ? hxBySck(pin) : undefined;
      if (dout !== undefined) hx[dout] = (hx[dout] ?? 0) + 1;
    },
    irq: (pin, handler, trigger) => {
      if (handler) irqs[pin] = { handler, trigger };
      else delete irqs[pin];
    },
    clock: () => world.clock,
    set_clock: (offset) => { world.clock = offset; parentPort.postMessage({ t: "clock", offset }); },
    reset: (hard) => {
      if (stopped) return;
      stopped = true;
      if (!hard) syncOpenFiles();
      flush();
      parentPort.postMessage({ t: "reset", kind: hard ? "power" : "soft", raw });
    },
    net_up: () => world.net,
    connect: (hostName, port) => new Promise((resolve, reject) => {
      if (!world.net) return reject(new Error("EHOSTUNREACH"));
      const s = net.connect({ host: hostName, port });
      const conn = new Conn(s);
      s.once("connect", () => { sockets.add(conn); resolve(conn); });
      s.once("error", (err) => reject(new Error(err.code || "ECONNREFUSED")));
    }),
  };

  // One TCP connection as the Python side sees it. ready() resolves once there is data, EOF or an
  // error (so awaiting data never blocks the event loop); take(n) then hands over up to n bytes at
  // once, synchronously, so a Python read cancelled while it waits loses nothing. (A JavaScript
  // exception thrown into a synchronous call from Python would kill the interpreter, so take()
  // returns the error's name instead.)
  class Conn {
    constructor(sock) {
      this.sock = sock;
      this.chunks = [];
      this.eof = false;
      this.error = null;
      this.waiters = [];
      sock.on("data", (d) => { this.chunks.push(d); this.wake(); });
      sock.on("end", () => { this.eof = true; this.wake(); });
      sock.on("error", (err) => { this.error = err.code || "ECONNRESET"; this.wake(); });
      sock.on("close", () => { this.eof = true; sockets.delete(this); this.wake(); });
      this.closedPromise = new Promise((r) => sock.once("close", r));
    }
    wake() { for (const w of this.waiters.splice(0)) w(); }
    ready(all) {
      if (this.eof || this.error || (this.chunks.length && !all)) return Promise.resolve();
      return new Promise((r) => this.waiters.push(r)).then(() => this.ready(all));
    }
    take(n) {
      if (!this.chunks.length && this.error) return this.error;
      const data = Buffer.concat(this.chunks);
      const size = n < 0 ? data.length : Math.min(n, data.length);
      this.chunks = size < data.length ? [data.subarray(size)] : [];
      return new Uint8Array(data.subarray(0, size));
    }
    write(data) {
      return new Promise((resolve, reject) => {
        if (this.error || this.sock.destroyed) return reject(new Error(this.error || "ECONNRESET"));
        this.sock.write(Buffer.from(data), (err) => (err ? reject(new Error(err.code || "ECONNRESET")) : resolve()));
      });
    }
    close() { this.sock.end(() => this.sock.destroy()); }
    closed() { return this.closedPromise; }
    cut() { this.error = "ECONNRESET"; this.sock.destroy(); this.wake(); }
  }

  mp.registerJsModule("_vboard_js", api);
  // The fake machine and network modules and the asyncio streams: imported from a folder outside
  // the flash, which is removed again so that the root lists only the board's own files.
  load(lib, "/.virtual");
  mp.runPython("import sys\nsys.path.insert(0, '/.virtual')\nimport _vboard, machine, network\nsys.path.pop(0)");
  const rm = (p) => { for (const n of FS.readdir(p)) if (n !== "." && n !== "..") { const q = p + "/" + n; FS.isDir(FS.stat(q).mode) ? rm(q) : FS.unlink(q); } FS.rmdir(p); };
  rm("/.virtual");
  const vboard = mp.pyimport("_vboard");

  // Control ops from the rig, on this board's copy of the world (the host keeps its own for the
  // next boot), with what the board sees happen: IRQ edges, links cut.
  const op = (req) => {
    const level = world.pins[req.pin] ?? 0;
    applyWorld(world, req);
    if (req.op === "pin") {
      world.pins[req.pin] = level;
      setInput(req.pin, req.value ? 1 : 0);
    } else if (req.op === "pulses") {
      for (let i = 0; i < req.count; i++) { setInput(req.pin, level ? 0 : 1); setInput(req.pin, level); }
    } else if (req.op === "net" && !req.up) {
      for (const c of [...sockets]) c.cut();
    } else if (req.op === "hx711") {
      hx[req.dout] = 0;
    } else if (req.op === "state") {
      return {
        ok: true, adc: world.adc, pins: world.pins, outputs, hx711: world.hx711, clock: world.clock,
        net: world.net, irqs: Object.keys(irqs).map(Number), raw, boot: kind,
      };
    }
    return { ok: true };
  };

  // Input bytes to the REPL, with this port's raw REPL quirks handled here.
  let held = []; // a raw-paste request in progress: \x05 A \x01
  const feed = (c) => {
    if (c === 1) raw = true;
    else if (c === 2) raw = false;
    if (mp.replProcessChar(c)) api.reset(false); // Ctrl-D on an empty line or sys.exit(): soft reset
  };
  const input = (data) => {
    for (const c of data) {
      if (stopped) return;
      if (held.length || (raw && c === 5)) {
        held.push(c);
        const want = [5, 65, 1];
        if (held.every((b, i) => b === want[i])) {
          if (held.length === 3) { emit([82, 0]); held = []; } // "R\x00": no raw-paste, use raw mode
          continue;
        }
        const replay = held; held = [];
        replay.forEach(feed);
        continue;
      }
      feed(c);
    }
  };

  // Boot as a board does: boot.py always, main.py unless a soft reset left the REPL in raw mode.
  if (kind === "soft") emit(Buffer.from("MPY: soft reboot\r\n"));
  vboard.run_file("boot.py");
  if (kind !== "soft" || !raw) vboard.run_file("main.py");
  muted = raw;
  mp.replInit();
  if (raw) { mp.replProcessChar(1); muted = false; emit(Buffer.from(RAW_BANNER)); }

  handle = (m) => {
    if (m.t === "in") input(m.data);
    else if (m.t === "op") {
      let res;
      try { res = op(m.req); } catch (err) { res = { ok: false, error: err.message }; }
      flush();
      parentPort.postMessage({ t: "reply", id: m.id, res });
    }
  };
  for (const m of inbox.splice(0)) handle(m);
}
