/**
 * A machine without oneDNN, simulated with SEMISEG_DNNL_PATH=/nonexistent/libdnnl.so.2 in
 * subprocesses: the bench's first lines (a run and --dry-run) say the native kernels are
 * missing, how much slower that is and the one command that fixes it, once; the plan on stdout
 * is byte-identical to a machine with the library; SEMISEG_DNNL_PATH wins over its alias
 * SEMISEG_DNNL_LIB.
 * @module
 */
import assert from "node:assert/strict";
import { Dnnl } from "../methods/nn/native/dnnl.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const MAIN = new URL("../benchmarks/main.ts", import.meta.url).pathname;
const SCRIPT = new URL("./native_fallback_script.ts", import.meta.url).pathname;
const MISSING = "/nonexistent/libdnnl.so.2";
const dec = new TextDecoder();

function hasDnnl(): boolean {
  try {
    Dnnl.open("libdnnl.so.2");
    return true;
  } catch {
    return false;
  }
}

async function bench(args: string[], env: Record<string, string>) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    env: { OMP_NUM_THREADS: "1", ...env },
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** The one-line notice, checked for its content; returns its index among the stderr lines. */
function checkNotice(stderr: string): number {
  const lines = stderr.split("\n");
  const hits = lines.filter((l) => l.includes("native kernels unavailable"));
  assert.equal(hits.length, 1, stderr);
  const l = hits[0]!;
  assert.ok(l.includes(MISSING), l);
  assert.match(l, /~60x slower per V-Net training step \(24\.3 s vs 0\.39 s at 32\^3\)/);
  assert.match(l, /fix: sudo apt-get install libdnnl2/);
  assert.match(l, /SEMISEG_DNNL_PATH=/);
  return lines.indexOf(l);
}

Deno.test("no libdnnl: --dry-run says so at its start; the plan on stdout is unchanged", async () => {
  const args = ["--dry-run", "--no-estimate", "--benchmark", "ug_mcl_table3_la"];
  const without = await bench(args, { SEMISEG_DNNL_PATH: MISSING });
  assert.equal(without.code, 0, without.stderr);
  const at = checkNotice(without.stderr);
  // Only backend lines come before it (auto's fallbacks), nothing about the plan.
  for (const l of without.stderr.split("\n").slice(0, at)) assert.match(l, /^backend /, l);
  const withLib = await bench(args, {});
  assert.equal(withLib.code, 0, withLib.stderr);
  assert.equal(without.stdout, withLib.stdout);
  if (hasDnnl()) assert.ok(!withLib.stderr.includes("native kernels unavailable"));
  assert.match(without.stdout, /^Plan for ug_mcl_table3_la /);
});

Deno.test("no libdnnl: a run's first lines say so before any training", async () => {
  const out = await Deno.makeTempDir({ prefix: "native_missing_" });
  try {
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        MAIN,
        ...["--methods", "supervised", "--labeled", "2", "--seeds", "1", "--iterations", "1"],
        ...["--jobs", "1", "--backend", "cpu", "--out", out, "--no-estimate"],
      ],
      env: { OMP_NUM_THREADS: "1", SEMISEG_DNNL_PATH: MISSING },
      cwd: ROOT,
      stdout: "null",
      stderr: "piped",
    }).spawn();
    // Read stderr until the notice shows (then stop the run: the rest is pure-JS training).
    let text = "";
    const reader = child.stderr.getReader();
    const deadline = Date.now() + 120_000;
    while (!text.includes("native kernels unavailable") && Date.now() < deadline) {
      const { value, done } = await reader.read();
      if (done) break;
      text += dec.decode(value);
    }
    while (
      !text.includes("\n", text.indexOf("native kernels unavailable")) && Date.now() < deadline
    ) {
      const { value, done } = await reader.read();
      if (done) break;
      text += dec.decode(value);
    }
    child.kill("SIGTERM");
    await reader.cancel();
    await child.status;
    const at = checkNotice(text);
    assert.equal(at, 0, `the notice is the first line:\n${text}`);
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

async function fallbackStatus(env: Record<string, string>) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", SCRIPT],
    env,
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(out.success, dec.decode(out.stderr));
  const r = JSON.parse(dec.decode(out.stdout)) as {
    status: { active: boolean; reason: string };
    details: Record<string, string>;
  };
  return { ...r, stderr: dec.decode(out.stderr) };
}

Deno.test("SEMISEG_DNNL_PATH names the library; it wins over the alias SEMISEG_DNNL_LIB", async () => {
  const missing = await fallbackStatus({ SEMISEG_DNNL_PATH: MISSING });
  assert.equal(missing.status.active, false);
  assert.ok(missing.status.reason.startsWith(MISSING), missing.status.reason);
  assert.match(missing.details["nativeKernels"] ?? "", /^none/);
  checkNotice(missing.stderr);
  if (!hasDnnl()) return; // the remaining checks need a real libdnnl.so.2
  const found = await fallbackStatus({ SEMISEG_DNNL_PATH: "libdnnl.so.2" });
  assert.equal(found.status.active, true, found.status.reason);
  assert.match(found.details["nativeKernels"] ?? "", /^oneDNN 2\./);
  const both = await fallbackStatus({
    SEMISEG_DNNL_PATH: MISSING,
    SEMISEG_DNNL_LIB: "libdnnl.so.2",
  });
  assert.equal(both.status.active, false);
  const alias = await fallbackStatus({ SEMISEG_DNNL_LIB: MISSING });
  assert.equal(alias.status.active, false);
  assert.ok(alias.status.reason.startsWith(MISSING));
});
