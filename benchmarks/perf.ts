/**
 * `deno task perf`: wall-clock of one V-Net training step (forward, 0.5*(CE+Dice), backward,
 * SGD momentum 0.9 / wd 1e-4) on the tfjs cpu backend, with the oneDNN native kernels
 * (`cpu`), optionally pure JS (`cpu-js`), and on `webgpu` with the project's WGSL kernels;
 * median of N timed steps after warm-up, GFLOP/s from an analytic conv FLOP count, the PyTorch
 * CPU time of the same step (`shared/perf/torch_vnet.py`, when python3 with torch is
 * installed) and their ratio, a per-kernel `tf.profile` of one step, and an optional
 * memory-growth check. The webgpu line ends with `max rel loss diff vs cpu X` (same seeds,
 * data and dropout masks over the timed steps); when webgpu is timed and PyTorch sees CUDA,
 * the comparator also runs on the GPU with TF32 off and on, and both ratios are printed.
 *
 * Flags: `--shapes 32x32x32,64x64x48` (D x H x W) `--batch 2` `--full` (adds the LA training
 * step, 112x112x80 batch 4) `--runs 5` `--warmup 1`
 * `--backends cpu,cpu-js,webgpu` (default cpu,cpu-js; cpu-js is slow: ~20 s per 32^3 step;
 * webgpu on a software adapter needs SEMISEG_WEBGPU_SOFTWARE=1) `--js-max-voxels 40000`
 * (skip cpu-js above this many voxels per sample) `--no-torch` `--torch-device auto|cpu|cuda`
 * (auto: CUDA comparator too when webgpu is timed) `--nf 16` `--no-profile`
 * `--mem-steps 0` (steps of the memory check; 200 for the acceptance check) `--json FILE`
 * `SEMISEG_TORCH_VNET=PATH` locates torch_vnet.py when ../shared is not beside the checkout.
 * `--compare FILE` (losses of an earlier `--json` run, e.g. cpu computed here and carried to
 * a GPU machine: same seeds and steps, so the curves must agree)
 * `--threads N` (oneDNN and PyTorch threads; default $OMP_NUM_THREADS or 2).
 * `--infer` (also in `--full`): the evaluator's inference forward at 112x112x80 (or
 * `--infer-shape DxHxW`), batch 1 and the evaluator's batch (`EVAL_BATCH`): the fused native
 * forward (`methods/nn/native/infer.ts`: BN folded, ReLU/skip-add post-ops, oneDNN layouts
 * throughout) vs the unfused tfjs cpu + oneDNN path (`softmax(net.forward(x, eval))`) vs
 * PyTorch `torch_vnet.py infer` (`no_grad`, eval mode), with the fused/unfused max probability
 * difference, a per-primitive profile of the fused forward and its memory over the timed calls.
 * `--infer-only` runs just that case.
 * Timings on a shared 2-core VM are noisy: compare medians only.
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { initBackend, type Provenance } from "../methods/nn/backend.ts";
import { Rng } from "../methods/nn/rng.ts";
import { VNet } from "../methods/nn/vnet.ts";
import { ceDiceLoss } from "../methods/nn/losses.ts";
import { disposeGrads, lossAndGrads, Sgd } from "../methods/nn/optim.ts";
import { nativeLibrary } from "../methods/nn/native/install.ts";
import { poolLimitBytes, poolStats } from "../methods/nn/native/pool.ts";
import { InferenceRunner, type InferStepTime } from "../methods/nn/native/infer.ts";
import { EVAL_BATCH } from "./harness/evaluate.ts";
import { cpuModel } from "./harness/machine.ts";

const enc = new TextEncoder();
function say(line: string): void {
  Deno.stdout.writeSync(enc.encode(line + "\n"));
}

/** Backends perf can time. */
export type PerfBackend = "cpu" | "cpu-js" | "webgpu";
const PERF_BACKENDS: readonly PerfBackend[] = ["cpu", "cpu-js", "webgpu"];

/** Command-line options of the perf task. */
export interface PerfOptions {
  shapes: [number, number, number][];
  /** Also time the LA training configuration, 112x112x80 batch 4. */
  full: boolean;
  batch: number;
  runs: number;
  warmup: number;
  backends: PerfBackend[];
  jsMaxVoxels: number;
  torch: boolean;
  /** PyTorch comparator device: cpu, cuda, or auto (cuda too when webgpu is timed and CUDA works). */
  torchDevice: "cpu" | "cuda" | "auto";
  profile: boolean;
  memSteps: number;
  json: string | null;
  /** A `--json` file of an earlier run (e.g. cpu on another machine) to compare losses with. */
  compare: string | null;
  nFilters: number;
  threads: number;
  /** Time the inference forward (fused native vs unfused tfjs vs PyTorch). */
  infer: boolean;
  /** Skip the training-step cases. */
  inferOnly: boolean;
  /** Window of the inference case (the LA evaluation patch by default). */
  inferShape: [number, number, number];
}

/** Parse the flags listed in the module doc. */
export function parseArgs(args: string[]): PerfOptions {
  const o: PerfOptions = {
    shapes: [[32, 32, 32], [64, 64, 48]],
    full: false,
    batch: 2,
    runs: 5,
    warmup: 1,
    backends: ["cpu", "cpu-js"],
    jsMaxVoxels: 40000,
    torch: true,
    torchDevice: "auto",
    profile: true,
    memSteps: 0,
    json: null,
    compare: null,
    nFilters: 16,
    threads: Number(Deno.env.get("OMP_NUM_THREADS") ?? 2) || 2,
    infer: false,
    inferOnly: false,
    inferShape: [112, 112, 80],
  };
  const shapeOf = (flag: string, s: string): [number, number, number] => {
    const d = s.split("x").map(Number);
    if (d.length !== 3 || d.some((n) => !(n > 0 && n % 16 === 0))) {
      throw new Error(`${flag}: '${s}' is not DxHxW with multiples of 16`);
    }
    return d as [number, number, number];
  };
  /** A whole number >= min, or a one-line error naming the flag (Number('abc') is NaN). */
  const intOf = (flag: string, s: string, min: number): number => {
    const n = Number(s);
    if (!/^\d+$/.test(s) || !Number.isSafeInteger(n) || n < min) {
      throw new Error(
        `${flag}: expected ${min > 0 ? "a positive" : "a non-negative"} integer, got '${s}'`,
      );
    }
    return n;
  };
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const v = () => {
      const x = args[++i];
      if (x === undefined) throw new Error(`${a}: missing value`);
      return x;
    };
    if (a === "--shapes") {
      o.shapes = v().split(",").map((s) => shapeOf(a, s));
    } else if (a === "--infer") o.infer = true;
    else if (a === "--infer-only") o.infer = o.inferOnly = true;
    else if (a === "--infer-shape") o.inferShape = shapeOf(a, v());
    else if (a === "--batch") o.batch = intOf(a, v(), 1);
    else if (a === "--runs") o.runs = intOf(a, v(), 1);
    else if (a === "--warmup") o.warmup = intOf(a, v(), 0);
    else if (a === "--nf") o.nFilters = intOf(a, v(), 1);
    else if (a === "--threads") o.threads = intOf(a, v(), 1);
    else if (a === "--backends") {
      o.backends = v().split(",").map((b) => {
        if (!(PERF_BACKENDS as readonly string[]).includes(b)) {
          throw new Error(
            `--backends: unknown backend '${b}' (expected ${PERF_BACKENDS.join(", ")})`,
          );
        }
        return b as PerfBackend;
      });
      // cpu first: the webgpu line compares its losses with cpu's over the same steps.
      o.backends.sort((a, b) => PERF_BACKENDS.indexOf(a) - PERF_BACKENDS.indexOf(b));
    } else if (a === "--js-max-voxels") o.jsMaxVoxels = intOf(a, v(), 0);
    else if (a === "--no-torch") o.torch = false;
    else if (a === "--torch-device") {
      const d = v();
      if (d !== "cpu" && d !== "cuda" && d !== "auto") {
        throw new Error(`--torch-device: '${d}' (expected cpu, cuda or auto)`);
      }
      o.torchDevice = d;
    } else if (a === "--full") o.full = o.infer = true;
    else if (a === "--no-profile") o.profile = false;
    else if (a === "--mem-steps") o.memSteps = intOf(a, v(), 0);
    else if (a === "--json") o.json = v();
    else if (a === "--compare") o.compare = v();
    else throw new Error(`unknown flag ${a}`);
  }
  return o;
}

/**
 * Analytic FLOPs (2 x MACs) of the UA-MT V-Net training step's convolutions: forward, plus dW
 * for every layer and dX for every layer but the first. Transposed convs count as convs.
 */
export function vnetStepFlops(shape: [number, number, number], batch: number, nf = 16): {
  forward: number;
  step: number;
} {
  let fwd = 0, bwd = 0, first = true;
  const conv = (vox: number, k3: number, ci: number, co: number) => {
    const f = 2 * batch * vox * k3 * ci * co;
    fwd += f;
    bwd += first ? f : 2 * f;
    first = false;
  };
  const v0 = shape[0] * shape[1] * shape[2];
  const vox = (level: number) => v0 / 8 ** level;
  const stages = [1, 2, 3, 3, 3];
  let ci = 1;
  for (let l = 0; l < 5; l++) {
    const c = nf * 2 ** l;
    for (let s = 0; s < stages[l]!; s++) {
      conv(vox(l), 27, s === 0 ? ci : c, c);
    }
    if (l < 4) conv(vox(l + 1), 8, c, 2 * c); // 2x2x2 stride-2 down: output voxels
    ci = 2 * c;
  }
  const dec = [3, 3, 2, 1];
  for (let l = 3; l >= 0; l--) {
    const c = nf * 2 ** l;
    conv(vox(l + 1), 8, 2 * c, c); // 2x2x2 stride-2 up: input voxels x 8 taps
    for (let s = 0; s < dec[3 - l]!; s++) conv(vox(l), 27, c, c);
  }
  conv(v0, 1, nf, 2); // 1x1x1 head
  return { forward: fwd, step: fwd + bwd };
}

/** One V-Net training set-up (network, optimiser, fixed batch). */
class Trainer {
  readonly net: VNet;
  readonly opt: Sgd;
  readonly x: tf.Tensor5D;
  readonly y: tf.Tensor;
  readonly rng: Rng;

  constructor(shape: [number, number, number], batch: number, nf: number) {
    this.rng = new Rng(1337);
    this.net = new VNet({ inChannels: 1, nFilters: nf }, this.rng);
    this.opt = new Sgd(this.net.params, { momentum: 0.9, weightDecay: 1e-4 });
    const n = batch * shape[0] * shape[1] * shape[2];
    this.x = tf.tensor5d(this.rng.fillNormal(new Float32Array(n)), [batch, ...shape, 1]);
    const lab = new Int32Array(n);
    for (let i = 0; i < n; i++) lab[i] = this.rng.uniform() < 0.5 ? 1 : 0;
    this.y = tf.tensor(lab, [batch, ...shape], "int32");
  }

  /** One step; resolves to the loss after it is read back. */
  async step(): Promise<number> {
    const { value, grads } = lossAndGrads(() => {
      const [logits] = this.net.forward(this.x, { training: true, dropoutRng: this.rng });
      return ceDiceLoss(logits!, this.y).loss;
    }, this.net.params);
    this.opt.step(grads, 0.01);
    disposeGrads(grads);
    const loss = (await value.data())[0]!;
    value.dispose();
    return loss;
  }

  dispose(): void {
    this.net.dispose();
    this.opt.dispose();
    this.x.dispose();
    this.y.dispose();
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

interface StepTiming {
  backend: string;
  shape: number[];
  batch: number;
  medianS: number;
  runsS: number[];
  gflops: number;
  losses: number[];
}

async function timeSteps(
  tr: Trainer,
  o: PerfOptions,
  backend: string,
  shape: [number, number, number],
): Promise<StepTiming> {
  const losses: number[] = [];
  for (let i = 0; i < o.warmup; i++) losses.push(await tr.step());
  const runs: number[] = [];
  for (let i = 0; i < o.runs; i++) {
    const t = performance.now();
    losses.push(await tr.step());
    runs.push((performance.now() - t) / 1000);
  }
  const med = median(runs);
  return {
    backend,
    shape: [o.batch, ...shape, 1],
    batch: o.batch,
    medianS: med,
    runsS: runs,
    gflops: vnetStepFlops(shape, o.batch, o.nFilters).step / med / 1e9,
    losses,
  };
}

async function profileStep(tr: Trainer): Promise<{ name: string; ms: number; n: number }[]> {
  const info = await tf.profile(() => tr.step());
  const agg = new Map<string, { ms: number; n: number }>();
  for (const k of info.kernels) {
    const t = await k.kernelTimeMs;
    const ms = typeof t === "number" ? t : 0;
    const e = agg.get(k.name) ?? { ms: 0, n: 0 };
    e.ms += ms;
    e.n++;
    agg.set(k.name, e);
  }
  return [...agg].map(([name, e]) => ({ name, ...e })).sort((a, b) => b.ms - a.ms);
}

async function memCheck(tr: Trainer, steps: number): Promise<Record<string, number>> {
  await tr.step();
  const t0 = tf.memory().numTensors, b0 = tf.memory().numBytes;
  const r0 = Deno.memoryUsage().rss;
  let rMid = r0;
  for (let i = 0; i < steps; i++) {
    await tr.step();
    if (i === Math.floor(steps / 2)) rMid = Deno.memoryUsage().rss;
  }
  const m = tf.memory();
  return {
    steps,
    tensorsBefore: t0,
    tensorsAfter: m.numTensors,
    bytesBefore: b0,
    bytesAfter: m.numBytes,
    rssStartMiB: r0 / 2 ** 20,
    rssMidMiB: rMid / 2 ** 20,
    rssEndMiB: Deno.memoryUsage().rss / 2 ** 20,
  };
}

/** First of $SEMISEG_PYTHON, python3, /usr/bin/python3 that can import torch. */
async function findTorchPython(): Promise<string | null> {
  let env: string | undefined;
  try {
    env = Deno.env.get("SEMISEG_PYTHON");
  } catch { /* no --allow-env */ }
  for (const py of [env, "python3", "/usr/bin/python3"]) {
    if (!py) continue;
    try {
      const r = await new Deno.Command(py, {
        args: ["-c", "import torch"],
        stdout: "null",
        stderr: "null",
      }).output();
      if (r.success) return py;
    } catch { /* not installed */ }
  }
  return null;
}

async function torchStep(
  shape: [number, number, number],
  o: PerfOptions,
  device: "cpu" | "cuda",
  tf32: "on" | "off",
  mode: "step" | "infer" = "step",
): Promise<{ medianS: number; runsS: number[]; torch: string } | string> {
  // SEMISEG_TORCH_VNET: the comparator carried elsewhere (e.g. beside the offline executable
  // on a GPU machine, where ../shared is absent).
  let script = new URL("../../shared/perf/torch_vnet.py", import.meta.url).pathname;
  try {
    script = Deno.env.get("SEMISEG_TORCH_VNET") || script;
  } catch { /* no --allow-env */ }
  try {
    await Deno.stat(script);
  } catch {
    return `no ${script}`;
  }
  const python = await findTorchPython();
  if (python === null) return "no python3 with torch (apt-get install python3-torch)";
  if (device === "cuda") {
    const probe = await new Deno.Command(python, {
      args: ["-c", "import torch; print(torch.cuda.is_available())"],
      stdout: "piped",
      stderr: "null",
    }).output();
    if (new TextDecoder().decode(probe.stdout).trim() !== "True") {
      return `${python}'s PyTorch sees no CUDA device`;
    }
  }
  const args = [script, mode, "--patch", ...shape.map(String), "--batch", String(o.batch)];
  args.push("--runs", String(o.runs), "--threads", String(o.threads), "--nf", String(o.nFilters));
  if (device === "cuda") args.push("--device", "cuda", "--tf32", tf32);
  try {
    const out = await new Deno.Command(python, { args, stdout: "piped", stderr: "piped" })
      .output();
    const text = new TextDecoder().decode(out.stdout).trim().split("\n").pop() ?? "";
    if (!out.success) {
      const err = new TextDecoder().decode(out.stderr).trim().split("\n").pop() ?? "";
      return `python3 torch_vnet.py failed: ${err}`;
    }
    const j = JSON.parse(text) as { median_s: number; runs_s: number[]; torch: string };
    return { medianS: j.median_s, runsS: j.runs_s, torch: j.torch };
  } catch (e) {
    return `python3 unavailable: ${e instanceof Error ? e.message : String(e)}`;
  }
}

const fmt = (x: number, d = 3) => x.toFixed(d);

/** Losses per backend per input shape of a `--json` report, for `--compare`. */
type Carried = Map<string, Record<string, number[]>>;

async function readCarried(path: string): Promise<Carried> {
  let j: { report?: Record<string, unknown>[] };
  try {
    j = JSON.parse(await Deno.readTextFile(path));
  } catch (e) {
    throw new Error(
      `--compare ${path}: not a perf --json file (${e instanceof Error ? e.message : e})`,
    );
  }
  if (!Array.isArray(j.report)) throw new Error(`--compare ${path}: no 'report' array`);
  const out: Carried = new Map();
  for (const row of j.report) {
    const by: Record<string, number[]> = {};
    for (const [k, v] of Object.entries(row)) {
      const l = (v as { losses?: unknown } | null)?.losses;
      if (Array.isArray(l)) by[k] = l as number[];
    }
    out.set(JSON.stringify(row["shape"]), by);
  }
  return out;
}

/** One line per (backend timed now, backend in the carried file) with the loss difference. */
export function compareCarried(
  carried: Carried,
  shape: number[],
  now: Record<string, number[]>,
  file: string,
): string[] {
  const then = carried.get(JSON.stringify(shape));
  if (then === undefined) return [`  --compare: ${file} has no ${shape.join("x")} row`];
  const lines: string[] = [];
  for (const [b, l] of Object.entries(now)) {
    for (const [c, ref] of Object.entries(then)) {
      lines.push(
        `  ${b} vs ${c} of ${file}: max rel loss diff ${
          maxRelLossDiff(l, ref).toExponential(2)
        } over ${Math.min(l.length, ref.length)} steps`,
      );
    }
  }
  return lines;
}

/** max_i |a_i - b_i| / |b_i| over the steps both ran (the same seeds, data and dropout masks). */
export function maxRelLossDiff(a: readonly number[], b: readonly number[]): number {
  let m = 0;
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    m = Math.max(m, Math.abs(a[i]! - b[i]!) / Math.max(Math.abs(b[i]!), 1e-12));
  }
  return m;
}

/** Per-primitive times of one fused forward, summed by kind (and by layer for the top list). */
function summarise(prof: InferStepTime[]): {
  byKind: { kind: string; ms: number; n: number; impl: string }[];
  bySteps: InferStepTime[];
} {
  const agg = new Map<string, { ms: number; n: number; impl: Set<string> }>();
  for (const p of prof) {
    const e = agg.get(p.kind) ?? { ms: 0, n: 0, impl: new Set<string>() };
    e.ms += p.ms;
    e.n++;
    e.impl.add(p.impl);
    agg.set(p.kind, e);
  }
  const byKind = [...agg].map(([kind, e]) => ({
    kind,
    ms: e.ms,
    n: e.n,
    impl: [...e.impl].join(","),
  })).sort((a, b) => b.ms - a.ms);
  return { byKind, bySteps: [...prof].sort((a, b) => b.ms - a.ms) };
}

/**
 * The inference case: an eval-mode V-Net forward + softmax on `batch` windows of `shape`,
 * fused native vs unfused tfjs cpu (+ oneDNN kernels) vs PyTorch CPU in the same run.
 */
async function inferCase(
  shape: [number, number, number],
  batch: number,
  o: PerfOptions,
): Promise<Record<string, unknown>> {
  const fl = vnetStepFlops(shape, batch, o.nFilters).forward;
  const label = `${shape.join("x")} batch ${batch}`;
  say(`== V-Net inference ${label}: ${fmt(fl / 1e9, 2)} GFLOP (conv fwd)`);
  const row: Record<string, unknown> = {
    kind: "infer",
    shape: [batch, ...shape, 1],
    gflop: fl / 1e9,
  };
  await initBackend("cpu");
  const d = nativeLibrary();
  const rng = new Rng(1337);
  const net = new VNet({ inChannels: 1, nFilters: o.nFilters }, rng);
  // Non-trivial running statistics (as after training), so folding them is exercised.
  for (const [k, v] of net.buffers) {
    const var_ = k.endsWith("running_var");
    v.assign(
      tf.tensor(
        rng.fillUniform(new Float32Array(v.size), var_ ? 0.5 : -0.2, var_ ? 2 : 0.2),
        v.shape,
      ),
    );
  }
  const dims = [batch, ...shape, 1] as [number, number, number, number, number];
  const x = rng.fillNormal(new Float32Array(dims.reduce((a, b) => a * b, 1)));
  const timed = async (f: () => Float32Array | Promise<Float32Array>) => {
    let out: Float32Array = new Float32Array(0);
    for (let i = 0; i < o.warmup; i++) out = await f();
    const runs: number[] = [];
    for (let i = 0; i < o.runs; i++) {
      const t = performance.now();
      out = await f();
      runs.push((performance.now() - t) / 1000);
    }
    return { out, runs, medianS: median(runs) };
  };
  const line = (name: string, t: { runs: number[]; medianS: number }, extra = "") =>
    say(
      `  ${name.padEnd(8)} median ${fmt(t.medianS)} s over ${o.runs} (runs ${
        t.runs.map((r) => fmt(r, 2)).join(", ")
      }; warm-up ${o.warmup}) = ${fmt(fl / t.medianS / 1e9, 1)} GFLOP/s${extra}`,
    );
  const times: Record<string, number> = {};
  let fusedOut: Float32Array | null = null;
  const runner = d === null ? null : new InferenceRunner(d, net);
  try {
    if (runner === null) say("  fused: skipped (native kernels unavailable)");
    else {
      const t0 = performance.now();
      runner.run(x, dims);
      const buildS = (performance.now() - t0) / 1000;
      const tensors = tf.memory().numTensors, bytes = runner.bytes;
      const rss0 = Deno.memoryUsage().rss;
      const t = await timed(() => runner.run(x, dims));
      fusedOut = t.out.slice();
      times["fused"] = t.medianS;
      line("fused", t, `; first call (primitives + weights) ${fmt(buildS, 2)} s`);
      const mem = {
        tensorsBefore: tensors,
        tensorsAfter: tf.memory().numTensors,
        runnerMiBBefore: bytes / 2 ** 20,
        runnerMiBAfter: runner.bytes / 2 ** 20,
        rssStartMiB: rss0 / 2 ** 20,
        rssEndMiB: Deno.memoryUsage().rss / 2 ** 20,
      };
      say(
        `  memory (fused) over ${
          o.warmup + o.runs
        } calls: tensors ${mem.tensorsBefore} -> ${mem.tensorsAfter}, plan buffers ${
          fmt(mem.runnerMiBBefore, 0)
        } -> ${fmt(mem.runnerMiBAfter, 0)} MiB, RSS ${fmt(mem.rssStartMiB, 0)} -> ${
          fmt(mem.rssEndMiB, 0)
        } MiB`,
      );
      row["fused"] = { medianS: t.medianS, runsS: t.runs, buildS, memory: mem };
      if (o.profile) {
        const prof: InferStepTime[] = [];
        runner.run(x, dims, prof);
        const { byKind, bySteps } = summarise(prof);
        const total = prof.reduce((a, p) => a + p.ms, 0);
        say(`  profile (fused, one forward, primitive time ${fmt(total / 1000)} s):`);
        for (const k of byKind) {
          say(`    ${k.kind.padEnd(30)} ${fmt(k.ms, 1).padStart(9)} ms  x${k.n}  [${k.impl}]`);
        }
        say(`  slowest primitives:`);
        for (const p of bySteps.slice(0, 8)) {
          say(
            `    ${`${p.label} ${p.kind}`.padEnd(52)} ${fmt(p.ms, 1).padStart(9)} ms  [${p.impl}]`,
          );
        }
        row["profile_fused"] = prof;
      }
    }
    const t = await timed(() =>
      tf.tidy(() =>
        tf.softmax(net.forward(tf.tensor5d(x, dims), { training: false })[0]!, -1).dataSync()
      ) as Float32Array
    );
    times["unfused"] = t.medianS;
    let diff = "";
    if (fusedOut !== null) {
      let m = 0;
      for (let i = 0; i < t.out.length; i++) m = Math.max(m, Math.abs(t.out[i]! - fusedOut[i]!));
      diff = `; max |fused - unfused| probability ${m.toExponential(2)}`;
      row["maxProbDiff"] = m;
    }
    line("unfused", t, `; tfjs cpu, native: ${d === null ? "none" : "oneDNN"}${diff}`);
    row["unfused"] = { medianS: t.medianS, runsS: t.runs };
    if (times["fused"] !== undefined) {
      say(`  fused speed-up over unfused: ${fmt(times["unfused"] / times["fused"], 1)}x`);
    }
  } finally {
    runner?.dispose();
    net.dispose();
  }
  if (o.torch) {
    const tt = await torchStep(shape, { ...o, batch }, "cpu", "off", "infer");
    if (typeof tt === "string") say(`  pytorch: skipped (${tt})`);
    else {
      row["torch"] = tt;
      say(
        `  pytorch ${tt.torch} (${o.threads} threads, no_grad, eval) median ${
          fmt(tt.medianS)
        } s (runs ${tt.runsS.map((r) => fmt(r, 2)).join(", ")}) = ${
          fmt(fl / tt.medianS / 1e9, 1)
        } GFLOP/s`,
      );
      for (const k of ["fused", "unfused"]) {
        if (times[k] !== undefined) {
          say(`  ratio ${k} / pytorch = ${fmt(times[k] / tt.medianS, 2)}x`);
        }
      }
    }
  }
  return row;
}

/** `deno task perf --help`. */
export const PERF_HELP =
  `usage: deno task perf [flags]   (times one V-Net training step; PyTorch beside it)
  --shapes 32x32x32,64x64x48   training shapes D x H x W (multiples of 16)
  --batch 2                    batch of the training step
  --full                       also the LA step (112x112x80 batch 4) and the inference case
  --infer | --infer-only       the evaluator's forward at --infer-shape (default 112x112x80),
                               batch 1 and ${EVAL_BATCH}: fused native vs unfused vs torch_vnet.py infer
  --runs 5 --warmup 1          timed steps (median) and untimed ones first
  --backends cpu,cpu-js        any of cpu, cpu-js (pure JS, slow), webgpu
  --js-max-voxels 40000        skip cpu-js above this many voxels per sample
  --no-torch | --torch-device auto|cpu|cuda
  --threads N                  oneDNN and PyTorch threads (default $OMP_NUM_THREADS or 2)
  --nf 16 --no-profile --mem-steps N --json FILE --compare FILE
Environment: SEMISEG_TORCH_VNET=PATH (torch_vnet.py), SEMISEG_DNNL_PATH, SEMISEG_FUSED_INFER=0,
SEMISEG_POOL_MB (native output pool, default 1024; 0 off).`;

/** Entry point (also `semiseg perf` of the compiled executable, benchmarks/compiled_main.ts). */
export async function main(args: string[] = Deno.args): Promise<void> {
  if (args.includes("--help") || args.includes("-h")) {
    Deno.stdout.writeSync(new TextEncoder().encode(PERF_HELP + "\n"));
    return;
  }
  const o = parseArgs(args);
  // --json is written at the end: a folder that does not exist is one line now, not after.
  if (o.json !== null) {
    const dir = o.json.includes("/") ? o.json.slice(0, o.json.lastIndexOf("/")) || "/" : ".";
    const isDir = (() => {
      try {
        return Deno.statSync(dir).isDirectory;
      } catch {
        return false;
      }
    })();
    if (!isDir) throw new Error(`--json: '${o.json}': folder '${dir}' does not exist`);
  }
  // libgomp reads this when oneDNN is dlopen'ed (first initBackend("cpu")), so set it first.
  Deno.env.set("OMP_NUM_THREADS", String(o.threads));
  say(`machine: ${cpuModel()}, ${navigator.hardwareConcurrency} cores, Deno ${Deno.version.deno}`);
  say(`threads: ${o.threads} (oneDNN via OMP_NUM_THREADS, PyTorch via set_num_threads)`);
  const report: Record<string, unknown>[] = [];
  const carried = o.compare === null ? null : await readCarried(o.compare);
  let prov: Provenance | null = null;
  const cases: [[number, number, number], number][] = o.inferOnly
    ? []
    : o.shapes.map((s) => [s, o.batch]);
  if (o.full && !o.inferOnly) cases.push([[112, 112, 80], 4]);
  for (const [shape, batch] of cases) {
    const ob: PerfOptions = { ...o, batch };
    const fl = vnetStepFlops(shape, batch, o.nFilters);
    const label = `${shape.join("x")} batch ${batch}`;
    say(
      `== V-Net step ${label}: ${fmt(fl.step / 1e9, 2)} GFLOP (conv fwd ${
        fmt(fl.forward / 1e9, 2)
      })`,
    );
    const row: Record<string, unknown> = { shape: [batch, ...shape, 1], gflop: fl.step / 1e9 };
    const times: Record<string, number> = {};
    const losses: Record<string, number[]> = {};
    for (const b of o.backends) {
      const vox = shape[0] * shape[1] * shape[2];
      if (b === "cpu-js" && vox > o.jsMaxVoxels) {
        say(`  cpu-js: skipped (${vox} voxels > --js-max-voxels ${o.jsMaxVoxels})`);
        continue;
      }
      try {
        prov = await initBackend(b);
      } catch (e) {
        say(`  ${b}: skipped (${e instanceof Error ? e.message.split("\n")[0] : String(e)})`);
        continue;
      }
      const tr = new Trainer(shape, batch, o.nFilters);
      try {
        const t = await timeSteps(tr, ob, b, shape);
        times[b] = t.medianS;
        losses[b] = t.losses;
        const kernels = b === "webgpu"
          ? `adapter: ${prov.details["adapter"] ?? "?"}`
          : `native: ${prov.details["nativeKernels"] ?? "none"}`;
        row[b] = { ...t, native: prov.details["nativeKernels"] ?? "none", device: prov.device };
        const diff = b === "webgpu" && losses["cpu"] !== undefined
          ? `; max rel loss diff vs cpu ${maxRelLossDiff(t.losses, losses["cpu"]).toExponential(2)}`
          : "";
        say(
          `  ${b.padEnd(6)} median ${fmt(t.medianS)} s over ${o.runs} (runs ${
            t.runsS.map((r) => fmt(r, 2)).join(", ")
          }; warm-up ${o.warmup}) = ${fmt(t.gflops, 1)} GFLOP/s; ${kernels}; losses ${
            t.losses.map((l) => fmt(l, 4)).join(" ")
          }${diff}`,
        );
        if (b === "cpu") {
          const ps = poolStats();
          row["pool"] = ps;
          say(
            `  output pool (cpu): ${ps.reused} buffers reused, ${ps.fresh} allocated, ${ps.escaped} read out (never reused), ${
              fmt(ps.freeBytes / 2 ** 20, 0)
            } MiB free of ${fmt(poolLimitBytes() / 2 ** 20, 0)} (SEMISEG_POOL_MB)`,
          );
        }
        if (o.profile && b !== "cpu-js") {
          const prof = await profileStep(tr);
          const total = prof.reduce((s, k) => s + k.ms, 0);
          say(`  profile (${b}, one step, kernel time ${fmt(total / 1000)} s):`);
          for (const k of prof.slice(0, 14)) {
            say(`    ${k.name.padEnd(24)} ${fmt(k.ms, 1).padStart(9)} ms  x${k.n}`);
          }
          row[`profile_${b}`] = prof;
          if (b === "cpu") row["profile"] = prof;
        }
        if (o.memSteps > 0 && b !== "cpu-js") {
          const m = await memCheck(tr, o.memSteps);
          row[b === "cpu" ? "memory" : `memory_${b}`] = m;
          say(
            `  memory (${b}) over ${m["steps"]} steps: tensors ${m["tensorsBefore"]} -> ${
              m["tensorsAfter"]
            }, tfjs bytes ${m["bytesBefore"]} -> ${m["bytesAfter"]}, RSS ${
              fmt(m["rssStartMiB"]!, 0)
            } -> ${fmt(m["rssMidMiB"]!, 0)} -> ${fmt(m["rssEndMiB"]!, 0)} MiB`,
          );
        }
      } finally {
        tr.dispose();
      }
    }
    if (times["cpu"] !== undefined && times["cpu-js"] !== undefined) {
      say(`  native speed-up over pure JS: ${fmt(times["cpu-js"] / times["cpu"], 1)}x`);
    }
    if (o.torch) {
      const t = await torchStep(shape, ob, "cpu", "off");
      if (typeof t === "string") say(`  pytorch: skipped (${t})`);
      else {
        row["torch"] = t;
        say(
          `  pytorch ${t.torch} (${o.threads} threads) median ${fmt(t.medianS)} s (runs ${
            t.runsS.map((r) => fmt(r, 2)).join(", ")
          }) = ${fmt(fl.step / t.medianS / 1e9, 1)} GFLOP/s`,
        );
        if (times["cpu"] !== undefined) {
          say(`  ratio tfjs-cpu+oneDNN / pytorch = ${fmt(times["cpu"] / t.medianS, 2)}x`);
        }
      }
      const wantCuda = o.torchDevice === "cuda" ||
        (o.torchDevice === "auto" && times["webgpu"] !== undefined);
      if (wantCuda) {
        for (const tf32 of ["off", "on"] as const) {
          const c = await torchStep(shape, ob, "cuda", tf32);
          if (typeof c === "string") {
            say(`  pytorch cuda (tf32 ${tf32}): skipped (${c})`);
            break;
          }
          row[`torch_cuda_tf32_${tf32}`] = c;
          say(
            `  pytorch ${c.torch} cuda tf32 ${tf32} median ${fmt(c.medianS, 4)} s (runs ${
              c.runsS.map((r) => fmt(r, 4)).join(", ")
            }) = ${fmt(fl.step / c.medianS / 1e9, 1)} GFLOP/s`,
          );
          if (times["webgpu"] !== undefined) {
            say(
              `  ratio tfjs-webgpu / pytorch-cuda (tf32 ${tf32}) = ${
                fmt(times["webgpu"] / c.medianS, 2)
              }x`,
            );
          }
        }
      }
    }
    if (carried !== null) {
      for (const line of compareCarried(carried, [batch, ...shape, 1], losses, o.compare!)) {
        say(line);
      }
    }
    report.push(row);
  }
  if (o.infer) {
    for (const batch of [...new Set([1, EVAL_BATCH])]) {
      report.push(await inferCase(o.inferShape, batch, o));
    }
  }
  if (o.json !== null) {
    await Deno.writeTextFile(o.json, JSON.stringify({ provenance: prov, report }, null, 1));
  }
}

if (import.meta.main) {
  try {
    await main();
  } catch (e) {
    // Bad flags and unavailable back-ends: one line, no stack trace.
    Deno.stderr.writeSync(
      new TextEncoder().encode(`perf: ${e instanceof Error ? e.message.split("\n")[0] : e}\n`),
    );
    Deno.exit(2);
  }
}
