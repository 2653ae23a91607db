/**
 * Wall-time estimate of a plan on the chosen backend, printed by `--dry-run` and at the start
 * of every run (stderr; the plan lines on stdout are untouched).
 *
 * A plan's runs group into distinct step configurations: (method, hyper-parameters, training
 * patch, batch composition, channels, classes). For each, the seconds per training step and
 * the seconds per sliding window of the evaluation come from, in order:
 * - rates stored in `<out>/.rates.json` for this machine (backend, device, CPU model, native
 *   kernel library, oneDNN threads), written by earlier probes and by every finished run of at
 *   least {@link MIN_RUN_ITERATIONS} iterations (its measured train seconds per iteration and
 *   eval seconds per window, metrics and loading included);
 * - else a probe: the method is built and trained on a random batch of the right shape for a
 *   few steps taken at the run's middle iteration (one warm-up step, then up to
 *   {@link PROBE_STEPS} timed steps within {@link PROBE_BUDGET_S} s; a warm-up step slower than
 *   {@link SLOW_STEP_S} s is used as the measurement itself), then timed on a batch of
 *   evaluation windows the same way after one untimed call (the fused forward's plan is built
 *   and checked on the first).
 * A run costs `iterations x step + windows x window` (+ the best-val validation passes); the
 * wall time with `--jobs N` is that of N workers claiming the runs longest first (parallel.ts).
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { join } from "node:path";
import { getMethod } from "../../methods/mod.ts";
import type { Method, TrainBatch } from "../../methods/types.ts";
import type { Provenance } from "../../methods/nn/backend.ts";
import { hashOf } from "../../methods/nn/canonical.ts";
import { Rng } from "../../methods/nn/rng.ts";
import { caseWindows, EVAL_BATCH, windowPredictor } from "./evaluate.ts";
import { cpuModel } from "./machine.ts";
import type { PlannedRun } from "./plan.ts";
import { claimedWallSeconds } from "./parallel.ts";
import type { BenchmarkSpec } from "./spec.ts";
import { writeAtomic } from "./store.ts";
import {
  gcLimitBytes,
  memoryGuard,
  peakRssBytes,
  resetPeakRss,
  WORKER_BASE_BYTES,
  workerPeakBytes,
} from "./memory.ts";
import { poolLimitBytes } from "../../methods/nn/native/pool.ts";

/** Timed probe steps after the warm-up, at most. */
export const PROBE_STEPS = 3;
/** Seconds of timed probe steps per configuration, at most (at least one step is timed). */
export const PROBE_BUDGET_S = 3;
/** A warm-up step at least this slow is the measurement (no further steps). */
export const SLOW_STEP_S = 2;
/** Runs shorter than this do not update the stored rates (their first-step warm-up dominates). */
export const MIN_RUN_ITERATIONS = 5;

/** A measured rate and where it came from. */
export interface Rate {
  seconds: number;
  /** "probe: 3 steps", "run <id> (6000 it)", ... */
  source: string;
  at: string;
}

/** Measured memory: a step configuration's working set, or a dataset split's cases. */
export interface MemoryRate {
  bytes: number;
  source: string;
  at: string;
}

interface MachineRates {
  train: Record<string, Rate>;
  forward: Record<string, Rate>;
  /** By {@link memoryKey} (steps) or {@link casesKey} (cases held by a worker). */
  memory?: Record<string, MemoryRate>;
}

interface RatesFile {
  version: 1;
  machines: Record<string, MachineRates>;
}

/** Where the stored rates live. */
export function ratesPath(outRoot: string): string {
  return join(outRoot, ".rates.json");
}

/** The machine part of a rate's key: backend, device, CPU, native library, threads. */
export function machineKey(p: Provenance): string {
  const native = p.details["nativeKernels"];
  return [
    p.backend,
    p.device,
    cpuModel(),
    native === undefined ? "" : native.startsWith("none") ? "pure-JS" : native,
    `omp=${p.details["ompThreads"] ?? "default"}`,
  ].join(" | ");
}

/** Shape facts of the dataset the probe batch needs. */
export interface DataFacts {
  channels: number;
  nClasses: number;
  /** Where they come from ("dataset" or an assumption). */
  source: string;
}

/** The batch a run trains on: labeled and unlabeled samples per step. */
export function runBatch(
  spec: BenchmarkSpec,
  run: PlannedRun,
): { labeled: number; unlabeled: number } {
  const { labeled: lbs, unlabeled: ubs } = spec.batch;
  // As makeBatchSource: supervised-only rows fill the whole batch with labeled cases (at most L).
  return run.labeledOnly
    ? { labeled: Math.min(lbs + ubs, run.labeled), unlabeled: 0 }
    : { labeled: lbs, unlabeled: ubs };
}

/** Key of a run's training step configuration. */
export function trainKey(spec: BenchmarkSpec, run: PlannedRun, facts: DataFacts): string {
  const b = runBatch(spec, run);
  return `${run.method} hp=${hashOf(run.hyperParams).slice(0, 12)} patch=${
    run.patch.join("x")
  } batch=${b.labeled}+${b.unlabeled} in=${facts.channels} k=${facts.nClasses}`;
}

/** Key of a run's step memory: as {@link trainKey} without the dataset facts. */
export function memoryKey(spec: BenchmarkSpec, run: PlannedRun): string {
  const b = runBatch(spec, run);
  return `${run.method} hp=${hashOf(run.hyperParams).slice(0, 12)} patch=${
    run.patch.join("x")
  } batch=${b.labeled}+${b.unlabeled}`;
}

/** Key of the cases a worker of `spec` loads (its dataset, options and split names). */
export function casesKey(spec: BenchmarkSpec): string {
  return `cases ${spec.dataset.id} ${hashOf(spec.dataset).slice(0, 12)}`;
}

/** Key of a run's evaluation forward configuration. */
export function forwardKey(spec: BenchmarkSpec, run: PlannedRun, facts: DataFacts): string {
  return `${run.method} hp=${hashOf(run.hyperParams).slice(0, 12)} window=${
    spec.eval.patch.join("x")
  } batch=${EVAL_BATCH} in=${facts.channels} k=${facts.nClasses}`;
}

/**
 * Test volumes assumed when a dataset is not on disk (`--dry-run` before downloading). LA: the
 * UA-MT test list, 20 volumes. Under the DTC protocol every LA benchmark uses (112x112x80
 * windows, stride 18/4) they are 1,128 windows, counted on the real volumes (issue 19); for any
 * other protocol they are taken at the shape of the first test case (UPT6DX9IQY9JAZ7HJKA7,
 * 175x132x88: 45 windows under the DTC protocol, 56 on average for the real 20).
 */
export const NOMINAL_TEST_VOLUMES: Record<string, {
  cases: number;
  shape: [number, number, number];
  counted?: { patch: [number, number, number]; strideXY: number; strideZ: number; windows: number };
  note: string;
}> = {
  la: {
    cases: 20,
    shape: [175, 132, 88],
    counted: { patch: [112, 112, 80], strideXY: 18, strideZ: 4, windows: 1128 },
    note: "data/la not on disk: its 20 UA-MT test volumes assumed",
  },
};

/** Test windows of a dataset that is not on disk, or null when nothing is assumed for it. */
export function nominalTestWindows(
  datasetId: string,
  protocol: BenchmarkSpec["eval"],
): { windows: number; note: string } | null {
  const n = NOMINAL_TEST_VOLUMES[datasetId];
  if (!n) return null;
  const c = n.counted;
  if (
    c && protocol.window === "ua-mt" && c.patch.join() === protocol.patch.join() &&
    c.strideXY === protocol.strideXY && c.strideZ === protocol.strideZ
  ) {
    return {
      windows: c.windows,
      note: `${n.note} (${c.windows} windows, counted on the real ones)`,
    };
  }
  const w = n.cases * caseWindows(n.shape, protocol);
  return { windows: w, note: `${n.note} at ${n.shape.join("x")}` };
}

/** Windows a run evaluates: the test cases once, the validation cases per best-val pass. */
export interface RunWindows {
  test: number;
  val: number;
}

/** Everything {@link estimatePlan} needs. */
export interface EstimateInput {
  spec: BenchmarkSpec;
  /** The runs of the plan (this process's shard of it, with --shard). */
  runs: PlannedRun[];
  /** Ids of the runs that finished earlier (skipped by the run, left out of the estimate). */
  finished: Set<string>;
  provenance: Provenance;
  /** Results root (`--out`), where `.rates.json` lives. */
  outRoot: string;
  /** Worker processes the plan will run as. */
  jobs: number;
  facts: DataFacts;
  /** Sliding windows per run, or null when the test volumes' shapes are unknown. */
  windows: (run: PlannedRun) => RunWindows | null;
  /** Where the window counts come from, for the summary line. */
  windowsSource: string;
  /** Bytes of the cases one worker loads and keeps (the split's, on disk), null if unknown. */
  caseBytes?: number | null;
  print: (line: string) => void;
}

/** Result of {@link estimatePlan}. */
export interface PlanEstimate {
  /** Estimated wall seconds with `jobs` workers (NaN when a configuration has no rate). */
  wallSeconds: number;
  serialSeconds: number;
  trainSeconds: number;
  evalSeconds: number;
  /** Seconds per step and per window by configuration key. */
  train: Map<string, Rate>;
  forward: Map<string, Rate>;
  probed: number;
  stored: number;
  /** Seconds the probes took. */
  probeSeconds: number;
  /** Each unfinished run's training + evaluation seconds (NaN: no rate), in plan order. */
  runSeconds: number[];
}

/** `45 s`, `12 min`, `5.2 h`, `83 days (2,000 h)`. */
export function humanDuration(s: number): string {
  if (!Number.isFinite(s)) return "unknown";
  if (s < 90) return `${Math.round(s)} s`;
  if (s < 90 * 60) return `${Math.round(s / 60)} min`;
  const h = s / 3600;
  if (h < 48) return `${h.toFixed(1)} h`;
  return `${Math.round(h / 24).toLocaleString("en-US")} days (${
    Math.round(h).toLocaleString("en-US")
  } h)`;
}

function seconds(s: number): string {
  return s >= 10
    ? `${s.toFixed(1)} s`
    : s >= 0.1
    ? `${s.toFixed(2)} s`
    : `${(s * 1000).toFixed(1)} ms`;
}

async function readRates(outRoot: string): Promise<RatesFile> {
  try {
    const r = JSON.parse(await Deno.readTextFile(ratesPath(outRoot))) as RatesFile;
    if (r.version === 1 && typeof r.machines === "object" && r.machines !== null) return r;
  } catch {
    // absent or unreadable: start afresh
  }
  return { version: 1, machines: {} };
}

/** Merge rates into `<out>/.rates.json` (read, merge, atomic write: a lost race loses a rate). */
export async function storeRates(
  outRoot: string,
  machine: string,
  train: Record<string, Rate>,
  forward: Record<string, Rate>,
  memory?: Record<string, MemoryRate>,
): Promise<void> {
  if (
    Object.keys(train).length === 0 && Object.keys(forward).length === 0 &&
    Object.keys(memory ?? {}).length === 0
  ) return;
  const file = await readRates(outRoot);
  const m = file.machines[machine] ??= { train: {}, forward: {} };
  Object.assign(m.train, train);
  Object.assign(m.forward, forward);
  if (memory && Object.keys(memory).length > 0) Object.assign(m.memory ??= {}, memory);
  await writeAtomic(ratesPath(outRoot), new TextEncoder().encode(JSON.stringify(file, null, 1)));
}

function probeBatch(
  shape: [number, number, number],
  b: { labeled: number; unlabeled: number },
  facts: DataFacts,
  rng: Rng,
): TrainBatch {
  const [x, y, z] = shape;
  const vox = x * y * z;
  const img = (n: number) =>
    tf.tensor5d(rng.fillNormal(new Float32Array(n * vox * facts.channels)), [
      n,
      x,
      y,
      z,
      facts.channels,
    ]);
  // A centred ball of class 1 (and a smaller one of the last class when there are more), so
  // losses that need foreground and background (SDF, Dice) do their full work.
  const labels = new Int32Array(b.labeled * vox);
  const r2 = (Math.min(x, y, z) / 4) ** 2;
  for (let n = 0; n < b.labeled; n++) {
    for (let i = 0; i < x; i++) {
      for (let j = 0; j < y; j++) {
        for (let k = 0; k < z; k++) {
          const d = (i - x / 2) ** 2 + (j - y / 2) ** 2 + (k - z / 2) ** 2;
          labels[((n * x + i) * y + j) * z + k] = d < r2 / 4 && facts.nClasses > 2
            ? facts.nClasses - 1
            : d < r2
            ? 1
            : 0;
        }
      }
    }
  }
  return {
    labeledImages: img(b.labeled),
    labels: tf.tensor4d(labels, [b.labeled, x, y, z], "int32"),
    unlabeledImages: b.unlabeled > 0 ? img(b.unlabeled) : null,
  };
}

/** Time `fn` as the probe rule says; returns seconds per call and how many were timed. */
async function timeCalls(fn: () => Promise<void>): Promise<{ seconds: number; timed: number }> {
  let t = performance.now();
  await fn();
  const first = (performance.now() - t) / 1000;
  if (first >= SLOW_STEP_S) return { seconds: first, timed: 1 };
  const times: number[] = [];
  while (times.length < PROBE_STEPS && times.reduce((a, b) => a + b, 0) < PROBE_BUDGET_S) {
    t = performance.now();
    await fn();
    times.push((performance.now() - t) / 1000);
  }
  return { seconds: times.reduce((a, b) => a + b, 0) / times.length, timed: times.length };
}

/** Train and predict a few times with `run`'s method; one-line error on failure. */
async function probe(
  spec: BenchmarkSpec,
  run: PlannedRun,
  facts: DataFacts,
  needForward: boolean,
): Promise<{ step: Rate; forward: Rate | null; memory: MemoryRate | null }> {
  const at = new Date().toISOString();
  const def = getMethod(run.method);
  const rng = new Rng(12345);
  let method: Method | null = null;
  const b = runBatch(spec, run);
  const batch = probeBatch(run.patch, b, facts, rng);
  try {
    method = def.create(run.hyperParams, {
      initSeed: 1,
      inChannels: facts.channels,
      nClasses: facts.nClasses,
    });
    const m = method;
    const iterations = run.spec["iterations"] as number;
    let it = Math.floor(iterations / 2);
    const random = { noise: new Rng(2), dropout: new Rng(3) };
    // The step's working set: the peak resident size over the probe steps above what was
    // resident after a collection (the runtime, the method, the batch, loaded cases).
    memoryGuard().collect();
    const resident = Deno.memoryUsage().rss;
    const peakKnown = resetPeakRss();
    const step = await timeCalls(async () => {
      await m.trainStep(batch, { iteration: it, totalIterations: iterations, random });
      it = Math.min(it + 1, iterations - 1);
      memoryGuard().check();
    });
    const working = peakKnown ? peakRssBytes() - resident : NaN;
    let forward: Rate | null = null;
    if (needForward) {
      const [px, py, pz] = spec.eval.patch;
      const windows = new Float32Array(EVAL_BATCH * px * py * pz * facts.channels);
      rng.fillNormal(windows);
      const predict = windowPredictor(m);
      // One untimed call first: it builds the fused forward's plan and checks it against
      // method.predict (evaluate.ts), once per run, not per window.
      await predict(windows, [EVAL_BATCH, px, py, pz, facts.channels]);
      const f = await timeCalls(async () => {
        await predict(windows, [EVAL_BATCH, px, py, pz, facts.channels]);
      });
      forward = {
        seconds: f.seconds / EVAL_BATCH,
        source: `probe: ${f.timed} call${f.timed === 1 ? "" : "s"} of ${EVAL_BATCH} windows`,
        at,
      };
    }
    return {
      step: {
        seconds: step.seconds,
        source: `probe: ${step.timed} step${step.timed === 1 ? "" : "s"}`,
        at,
      },
      forward,
      memory: Number.isFinite(working)
        ? { bytes: Math.max(0, working), source: `probe: peak RSS of ${step.timed + 1} steps`, at }
        : null,
    };
  } finally {
    batch.labeledImages.dispose();
    batch.labels.dispose();
    batch.unlabeledImages?.dispose();
    method?.dispose();
  }
}

/** A run's training and evaluation seconds from the rates by configuration key (NaN: no rate). */
function runCost(
  spec: BenchmarkSpec,
  r: PlannedRun,
  facts: DataFacts,
  train: Readonly<Record<string, Rate>>,
  forward: Readonly<Record<string, Rate>>,
  w: RunWindows | null,
): { train: number; eval: number } {
  const step = train[trainKey(spec, r, facts)];
  const fwd = forward[forwardKey(spec, r, facts)];
  const its = r.spec["iterations"] as number;
  const valPasses = spec.selection.kind === "best-val" ? Math.floor(its / spec.selection.every) : 0;
  return {
    train: step ? its * step.seconds : NaN,
    eval: w === null ? 0 : fwd ? (w.test + valPasses * w.val) * fwd.seconds : NaN,
  };
}

/**
 * Seconds each run would take by the rates stored for this machine (NaN where none is stored):
 * no probing. `--jobs` workers claim runs in this order, longest first.
 */
export async function storedRunCosts(
  inp: Pick<EstimateInput, "spec" | "runs" | "provenance" | "outRoot" | "facts" | "windows">,
): Promise<Map<string, number>> {
  const stored = (await readRates(inp.outRoot)).machines[machineKey(inp.provenance)] ??
    { train: {}, forward: {} };
  const out = new Map<string, number>();
  for (const r of inp.runs) {
    const c = runCost(inp.spec, r, inp.facts, stored.train, stored.forward, inp.windows(r));
    out.set(r.runId, c.train + c.eval);
  }
  return out;
}

/**
 * What one worker of `runs` is expected to hold at its peak, from the memory stored for this
 * machine (step working sets measured by probes, the split's case bytes): NaN when a
 * configuration of the plan has not been measured.
 */
export async function storedWorkerBytes(
  spec: BenchmarkSpec,
  runs: readonly PlannedRun[],
  outRoot: string,
  provenance: Provenance,
): Promise<{ bytes: number; source: string }> {
  const mem = (await readRates(outRoot)).machines[machineKey(provenance)]?.memory ?? {};
  let step = 0;
  for (const r of runs) step = Math.max(step, mem[memoryKey(spec, r)]?.bytes ?? NaN);
  const cases = mem[casesKey(spec)]?.bytes ?? (spec.dataset.id === "synthetic" ? 0 : NaN);
  const gb = (b: number) => `${(b / 2 ** 30).toFixed(1)} GB`;
  return {
    bytes: Number.isNaN(step) || Number.isNaN(cases) ? NaN : workerPeakBytes(cases, step),
    source: `step working set ${gb(step)} measured, cases ${gb(cases)}, runtime ${
      gb(WORKER_BASE_BYTES)
    }, dead-buffer bound ${gb(gcLimitBytes())}, output pool ${gb(poolLimitBytes())}`,
  };
}

/**
 * Estimate the plan's wall time, printing one line per step configuration (as it is measured)
 * and a summary line; stores probed rates for the next time.
 */
export async function estimatePlan(inp: EstimateInput): Promise<PlanEstimate> {
  const { spec, facts, print } = inp;
  const runs = inp.runs.filter((r) => !inp.finished.has(r.runId));
  const machine = machineKey(inp.provenance);
  const stored = (await readRates(inp.outRoot)).machines[machine] ?? { train: {}, forward: {} };
  // Distinct configurations, in plan order, with the runs using each.
  const groups = new Map<string, { run: PlannedRun; runs: PlannedRun[]; fkey: string }>();
  for (const r of runs) {
    const k = trainKey(spec, r, facts);
    const g = groups.get(k);
    if (g) g.runs.push(r);
    else groups.set(k, { run: r, runs: [r], fkey: forwardKey(spec, r, facts) });
  }
  const toProbe = [...groups.entries()].filter(([k, g]) =>
    stored.train[k] === undefined ||
    (inp.windows(g.run) !== null && stored.forward[g.fkey] === undefined)
  );
  const native = inp.provenance.details["nativeKernels"];
  const backend = `${inp.provenance.backend}${
    native === undefined
      ? ""
      : native.startsWith("none")
      ? " (pure-JS kernels)"
      : ` (${native.replace(/ \(.*$/, "")})`
  }`;
  print(
    `estimate: ${groups.size} step configuration${
      groups.size === 1 ? "" : "s"
    } on ${backend}, ${cpuModel()}: ${groups.size - toProbe.length} from stored rates (${
      ratesPath(inp.outRoot)
    }), ${toProbe.length} to measure (a warm-up step, then up to ${PROBE_STEPS} steps within ${PROBE_BUDGET_S} s, and as many forward calls; --no-estimate skips)`,
  );
  const train = new Map<string, Rate>();
  const forward = new Map<string, Rate>();
  const newTrain: Record<string, Rate> = {}, newForward: Record<string, Rate> = {};
  const newMemory: Record<string, MemoryRate> = {};
  if (inp.caseBytes != null && inp.caseBytes > 0) {
    newMemory[casesKey(spec)] = {
      bytes: inp.caseBytes,
      source: "the split's cases on disk",
      at: new Date().toISOString(),
    };
  }
  const t0 = performance.now();
  let probed = 0;
  const fresh = new Set<string>();
  for (const [k, g] of groups) {
    const needForward = inp.windows(g.run) !== null;
    let step = stored.train[k] ?? null;
    // A forward configuration shared by two step configurations is measured once.
    let fwd = forward.get(g.fkey) ?? stored.forward[g.fkey] ?? null;
    if (step === null || (needForward && fwd === null)) {
      try {
        const p = await probe(spec, g.run, facts, needForward && fwd === null);
        step = p.step;
        newTrain[k] = p.step;
        fresh.add(k);
        if (p.memory) newMemory[memoryKey(spec, g.run)] = p.memory;
        if (p.forward) {
          fwd = p.forward;
          newForward[g.fkey] = p.forward;
          fresh.add(g.fkey);
        }
        probed++;
      } catch (e) {
        print(
          `  ${g.run.rowKey}: probe failed: ${
            (e instanceof Error ? e.message : String(e)).split("\n")[0]
          }`,
        );
      }
    }
    if (step) train.set(k, step);
    if (fwd) forward.set(g.fkey, fwd);
    const b = runBatch(spec, g.run);
    const its = g.runs.reduce((s, r) => s + (r.spec["iterations"] as number), 0);
    const how = (r: Rate, key: string) =>
      fresh.has(key) ? ` (${r.source})` : ` (stored: ${r.source})`;
    print(
      `  ${g.run.rowKey.padEnd(18)} ${g.run.patch.join("x")} batch ${b.labeled}+${b.unlabeled}: ${
        step ? `${seconds(step.seconds)}/step${how(step, k)}` : "no rate"
      }${
        needForward
          ? `, ${fwd ? `${seconds(fwd.seconds)}/window${how(fwd, g.fkey)}` : "no forward rate"}`
          : ""
      }; ${g.runs.length} run${g.runs.length === 1 ? "" : "s"}, ${its} iterations`,
    );
  }
  const probeSeconds = (performance.now() - t0) / 1000;
  await storeRates(inp.outRoot, machine, newTrain, newForward, newMemory).catch(() => {});

  const trainRates = Object.fromEntries(train), forwardRates = Object.fromEntries(forward);
  const costs = new Map<string, { train: number; eval: number }>();
  let windowsKnown = true;
  for (const r of runs) {
    if (inp.windows(r) === null) windowsKnown = false;
    costs.set(r.runId, runCost(spec, r, facts, trainRates, forwardRates, inp.windows(r)));
  }
  const trainSeconds = runs.reduce((s, r) => s + costs.get(r.runId)!.train, 0);
  const evalSeconds = runs.reduce((s, r) => s + costs.get(r.runId)!.eval, 0);
  const serialSeconds = trainSeconds + evalSeconds;
  // --jobs workers claim the unfinished runs longest first (parallel.ts).
  const jobs = Math.max(1, Math.min(inp.jobs, inp.runs.length));
  const wallSeconds = jobs === 1 ? serialSeconds : claimedWallSeconds(
    runs.map((r) => costs.get(r.runId)!.train + costs.get(r.runId)!.eval),
    jobs,
  );
  const windowsAll = runs.reduce((s, r) => s + (inp.windows(r)?.test ?? 0), 0);
  print(
    `estimated wall time: ${humanDuration(wallSeconds)} for ${runs.length} run${
      runs.length === 1 ? "" : "s"
    }${inp.finished.size > 0 ? ` (${inp.finished.size} finished earlier, skipped)` : ""}${
      jobs > 1 ? ` as ${jobs} workers (serial ${humanDuration(serialSeconds)})` : ""
    }: training ${humanDuration(trainSeconds)}, evaluation ${
      windowsKnown
        ? `${humanDuration(evalSeconds)} (${
          windowsAll.toLocaleString("en-US")
        } test windows; ${inp.windowsSource})`
        : `not included (${inp.windowsSource})`
    }${probed > 0 ? `; measuring took ${humanDuration(probeSeconds)}` : ""}`,
  );
  return {
    wallSeconds,
    serialSeconds,
    trainSeconds,
    evalSeconds,
    train,
    forward,
    probed,
    stored: groups.size - toProbe.length,
    probeSeconds,
    runSeconds: runs.map((r) => costs.get(r.runId)!.train + costs.get(r.runId)!.eval),
  };
}
