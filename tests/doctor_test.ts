/**
 * `deno task doctor`: one line per capability in a fixed shape, exit code 0, fast; its cpu
 * native line matches the oneDNN this machine has (and says "missing" with the fix when
 * SEMISEG_DNNL_PATH points nowhere); a bad flag is one line without a stack trace.
 * @module
 */
import assert from "node:assert/strict";
import { Dnnl } from "../methods/nn/native/dnnl.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const DOCTOR = new URL("../benchmarks/doctor.ts", import.meta.url).pathname;
const LA = new URL("../../shared/data/la", import.meta.url).pathname;
const dec = new TextDecoder();

async function doctor(args: string[], env: Record<string, string> = {}) {
  const t0 = performance.now();
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", DOCTOR, ...args],
    env,
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: out.code,
    seconds: (performance.now() - t0) / 1000,
    lines: dec.decode(out.stdout).split("\n").filter((l) => l !== ""),
    stderr: dec.decode(out.stderr),
  };
}

const NAMES = [
  "deno",
  "cpu",
  "backend node-gpu",
  "backend node",
  "backend webgpu",
  "backend cpu",
  "pytorch",
  "chromium",
  "sbatch",
  "xz",
  "git",
  "dataset la",
  "dataset brats19",
  "dataset brats18",
  "dataset wmh",
  "dataset lits",
  "dataset synthetic",
];

function byName(lines: string[]): Map<string, string> {
  const m = new Map<string, string>();
  for (const l of lines) {
    const hit = /^\[(ok|missing|info)\] ([a-z0-9 -]+): (.+)$/.exec(l);
    assert.ok(hit, `line shape: ${l}`);
    if (hit[1] === "missing") assert.match(l, /; fix: \S/, `a missing one names its fix: ${l}`);
    m.set(hit[2]!, l);
  }
  return m;
}

function installedDnnl(): string | null {
  try {
    return Dnnl.open("libdnnl.so.2").version;
  } catch {
    return null;
  }
}

Deno.test("doctor: one line per capability, exit 0, under 10 s; cpu line = what is installed", async () => {
  const r = await doctor([]);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(r.seconds < 10, `took ${r.seconds.toFixed(1)} s`);
  const m = byName(r.lines);
  assert.deepEqual([...m.keys()], NAMES);
  assert.match(
    m.get("deno")!,
    new RegExp(`^\\[(ok|info)\\] deno: ${Deno.version.deno.replaceAll(".", "\\.")} `),
  );
  const version = installedDnnl();
  const cpu = m.get("backend cpu")!;
  if (version === null) {
    assert.match(cpu, /^\[missing\] backend cpu: native kernels unavailable/);
  } else {
    assert.ok(
      cpu.startsWith(`[ok] backend cpu: native kernels: oneDNN ${version} (libdnnl.so.2`),
      cpu,
    );
  }
  assert.match(
    m.get("backend webgpu")!,
    /^\[(ok|missing)\] backend webgpu: (hardware adapter|only a software adapter|no WebGPU adapter|navigator\.gpu|requestAdapter)/,
  );
  assert.match(m.get("dataset synthetic")!, /^\[ok\]/);
});

Deno.test("doctor: without libdnnl (SEMISEG_DNNL_PATH=/nonexistent) the cpu line says so and the fix", async () => {
  const r = await doctor([], { SEMISEG_DNNL_PATH: "/nonexistent/libdnnl.so.2" });
  assert.equal(r.code, 0, r.stderr);
  const cpu = byName(r.lines).get("backend cpu")!;
  assert.match(
    cpu,
    /^\[missing\] backend cpu: native kernels unavailable \(\/nonexistent\/libdnnl\.so\.2/,
  );
  assert.match(cpu, /~60x slower/);
  assert.match(cpu, /fix: sudo apt-get install libdnnl2/);
  assert.match(cpu, /SEMISEG_DNNL_PATH=/);
});

Deno.test("doctor: --data-dir finds a dataset root; bad flags are one line", async () => {
  let hasLa = false;
  try {
    hasLa = Deno.statSync(LA).isDirectory;
  } catch {
    // no shared LA cases here
  }
  if (hasLa) {
    const r = await doctor(["--data-dir", LA]);
    assert.equal(r.code, 0, r.stderr);
    const m = byName(r.lines);
    assert.match(
      m.get("dataset la")!,
      /^\[ok\] dataset la: .*: 3 cases \(split ua-mt: train 2\/80, test 1\/20\)/,
    );
    assert.match(
      m.get("dataset wmh")!,
      /^\[missing\] dataset wmh: no data\/wmh\/ \(and .* is not a wmh root\)/,
    );
  }
  for (
    const [args, want] of [
      [["--bogus"], "doctor: unknown flag --bogus (see --help for the flags)"],
      [["--data-dir"], "doctor: flag --data-dir needs a value"],
      [["extra"], "doctor: unexpected argument 'extra' (flags take the form --name value)"],
    ] as const
  ) {
    const r = await doctor([...args]);
    assert.equal(r.code, 2);
    assert.deepEqual(r.lines, []);
    assert.equal(r.stderr.trim(), want);
  }
});
