/**
 * The runner: executes planned runs one by one. For each run it skips a finished result,
 * resumes from the latest checkpoint, trains with seeded streams, stops a diverging run with
 * one line naming the run and iteration, evaluates on the test cases with the benchmark's
 * protocol, and stores the result atomically.
 *
 * Seeds: the base seed is combined with the run identity per purpose (benchopt `get_seed`).
 * Weight init and the patch sampler use (seed, dataset, labeled) only, so at a given seed
 * every method sees the same batches and, where architectures coincide, the same initial
 * weights: common random numbers, which make paired comparisons between methods sharper.
 * Noise and dropout streams add the row key.
 *
 * Run state that can be trusted: every run file records the code that made it
 * (harness/code_hash.ts); a stored run made by other code is kept and reported, and rerun only
 * with `rerunStale` (its file replaced only when the rerun finishes). Checkpoints and run files
 * are verified by their SHA-256 on read (a bad one is set aside and its run restarts). Training
 * ends with a checkpoint at the final iteration, and the evaluation stores each test case's
 * metrics as it finishes (`checkpoints/<run-id>.eval.json`), so a run killed during its
 * evaluation resumes there: no training step, no finished case scored again.
 *
 * Test hook: `SEMISEG_TEST_KILL_AFTER_EVAL_CASES=k` makes the process SIGKILL itself once k
 * test cases were evaluated and stored in this process (the kill-during-evaluation test).
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { getMethod } from "../../methods/mod.ts";
import type { Method, MethodDefinition, StepLosses, TrainBatch } from "../../methods/types.ts";
import { deriveSeed, Rng, type RngState } from "../../methods/nn/rng.ts";
import { captureState } from "../../methods/nn/readback.ts";
import type { Provenance } from "../../methods/nn/backend.ts";
import type { Case, Dataset, Split } from "../../datasets/types.ts";
import type { BenchmarkSpec } from "./spec.ts";
import type { PlannedRun } from "./plan.ts";
import {
  type BestState,
  type CaseMetrics,
  type Checkpoint,
  ChecksumMismatchError,
  CorruptCheckpointError,
  type CurvePoint,
  type ResultStore,
  type RunRecord,
} from "./store.ts";
import {
  type CodeCheck,
  type CodeHash,
  CodeHasher,
  compareCode,
  describeChanged,
} from "./code_hash.ts";
import type { Progress } from "./progress.ts";
import { type EvalProgressUpdate, evaluateCases } from "./evaluate.ts";
import { type BatchSource, makeBatchSource } from "./batches.ts";
import { exportRunWeights, type RunWeights } from "./torch_weights.ts";
import { memoryGuard } from "./memory.ts";
import { disposeInferenceRunners } from "../../methods/nn/native/infer.ts";

/** A diverging loss or other training failure, with the iteration where it happened. */
export class RunFailure extends Error {
  constructor(message: string, readonly iteration: number | null) {
    super(message);
  }
}

/** Everything a run needs from outside: opened dataset, split, store, backend facts. */
export interface RunContext {
  spec: BenchmarkSpec;
  dataset: Dataset;
  split: Split;
  /** Splits by name, for cross-validated benchmarks (runs name their fold). */
  splits?: Map<string, Split>;
  store: ResultStore;
  provenance: Provenance;
  gitCommit: string;
  progress: Progress;
  /** Loaded cases by id (filled lazily, shared across runs). */
  cache: Map<string, Case>;
  /** Position of this run in the plan, for progress lines. */
  index: number;
  total: number;
  /** Hashes the code of each run (default: one hasher per process). */
  code?: CodeHasher;
  /** Rerun stored runs made by other code or without a code hash (`--rerun-stale`). */
  rerunStale?: boolean;
}

let processHasher: CodeHasher | null = null;
/** The process-wide {@link CodeHasher} (files read once, when first hashed). */
export function defaultCodeHasher(): CodeHasher {
  return processHasher ??= new CodeHasher();
}

/** Outcome of {@link executeRun}. */
export type RunOutcome =
  | { status: "skipped"; record: RunRecord; code: CodeCheck }
  | { status: "finished"; record: RunRecord }
  | { status: "failed"; error: string };

async function loadCases(ctx: RunContext, ids: string[]): Promise<Case[]> {
  const out: Case[] = [];
  for (const id of ids) {
    let c = ctx.cache.get(id);
    if (!c) {
      c = await ctx.dataset.load(id);
      ctx.cache.set(id, c);
    }
    out.push(c);
  }
  return out;
}

/** Current git commit of the checkout ("unknown" outside git). */
export async function gitCommit(): Promise<string> {
  try {
    const out = await new Deno.Command("git", {
      args: ["rev-parse", "--short=12", "HEAD"],
      stderr: "null",
    })
      .output();
    if (!out.success) return "unknown";
    const head = new TextDecoder().decode(out.stdout).trim();
    const dirty = await new Deno.Command("git", {
      args: ["status", "--porcelain", "--untracked-files=no"],
      stderr: "null",
    })
      .output();
    return head + (dirty.success && dirty.stdout.length > 0 ? "-dirty" : "");
  } catch {
    return "unknown";
  }
}

function finite(losses: StepLosses): string | null {
  for (const [k, v] of Object.entries(losses)) if (!Number.isFinite(v)) return `${k} is ${v}`;
  return null;
}

/** Loss-curve accumulator: means of each loss over fixed windows of iterations. */
interface CurveState {
  window: number;
  sums: Record<string, number>;
  count: number;
  points: CurvePoint[];
}

function curveAdd(c: CurveState, it: number, losses: StepLosses): void {
  for (const [k, v] of Object.entries(losses)) c.sums[k] = (c.sums[k] ?? 0) + v;
  c.count++;
  if (c.count === c.window) curveFlush(c, it + 1);
}

function curveFlush(c: CurveState, end: number): void {
  if (c.count === 0) return;
  c.points.push({
    iteration: end,
    values: Object.fromEntries(Object.entries(c.sums).map(([k, v]) => [k, v / c.count])),
  });
  c.sums = {};
  c.count = 0;
}

/** Mean validation Dice, the best-val selection criterion (never computed on test cases). */
async function validationDice(
  method: Method,
  cases: Case[],
  spec: BenchmarkSpec,
  nClasses: number,
  ignoreLabel: number | undefined,
  onProgress: (u: EvalProgressUpdate) => void,
): Promise<number> {
  const scores = await evaluateCases(
    method,
    cases,
    { ...spec.eval, lcc: false, metrics: ["dice"] },
    nClasses,
    ignoreLabel,
    onProgress,
  );
  return scores.reduce((s, c) => s + (c.values["dice"] ?? 0), 0) / Math.max(1, scores.length);
}

function toBatch(b: ReturnType<BatchSource["next"]>): TrainBatch {
  const [n, x, y, z, ch] = b.shape;
  const nl = b.nLabeled;
  const vox = x * y * z;
  const labeledImages = tf.tensor5d(b.images.subarray(0, nl * vox * ch), [nl, x, y, z, ch]);
  const labels = tf.tensor4d(b.labels.subarray(0, nl * vox), [nl, x, y, z], "int32");
  const unlabeledImages = n > nl
    ? tf.tensor5d(b.images.subarray(nl * vox * ch), [n - nl, x, y, z, ch])
    : null;
  return { labeledImages, labels, unlabeledImages };
}

function disposeBatch(b: TrainBatch): void {
  b.labeledImages.dispose();
  b.labels.dispose();
  b.unlabeledImages?.dispose();
}

/**
 * The run's checkpoint and its best-val state (null, null: start from iteration 0). A file of
 * the two that does not decode (a truncated copy, a full disk) is set aside as `<file>.bad`
 * with one line naming it, the other is removed, and the run restarts from iteration 0: its
 * seeded streams make the restarted run equal to an uninterrupted one.
 */
async function resumeState(
  ctx: RunContext,
  runId: string,
  where: string,
): Promise<{ ckpt: Checkpoint | null; best: BestState | null }> {
  try {
    const ckpt = await ctx.store.readCheckpoint(runId);
    return { ckpt, best: ckpt ? await ctx.store.readBest(runId) : null };
  } catch (e) {
    if (!(e instanceof CorruptCheckpointError)) throw e;
    const aside = await ctx.store.setAsideCheckpoints(runId, e.path);
    ctx.progress.line(`${where}: ${e.message}; set aside as ${aside}, restarting from iteration 0`);
    return { ckpt: null, best: null };
  }
}

/** "made by other code (a changed)" or "made by unknown code (no code hash)". */
function codeWords(c: CodeCheck, mixed: boolean): string {
  return c.state === "unknown"
    ? "made by unknown code (no code hash)"
    : `made by other code (${describeChanged(c.changed, mixed)})`;
}

/** One line for a finished run that was not run again ("finished earlier, skipped", and why it is stale). */
export function skippedLine(run: PlannedRun, out: { record: RunRecord; code: CodeCheck }): string {
  const base =
    `run ${run.runId} (${run.rowKey} L=${run.labeled} seed=${run.seed}): finished earlier, skipped`;
  if (out.code.state === "current") return base;
  return `${base} (${
    codeWords(out.code, out.record.code?.resumedFrom !== undefined)
  }; --rerun-stale reruns it)`;
}

const KILL_AFTER_EVAL_CASES = Number(Deno.env.get("SEMISEG_TEST_KILL_AFTER_EVAL_CASES") ?? "0");

/** One run being executed: its plan entry, its context, and the names its lines use. */
interface Job {
  run: PlannedRun;
  ctx: RunContext;
  spec: BenchmarkSpec;
  /** `<row key> L=<labeled> seed=<seed>`, for progress lines. */
  label: string;
  /** `run <id> (<label>)`, the prefix of every line about the run. */
  where: string;
  /** Training iterations of the run. */
  iterations: number;
}

/** What a run trains on: its labeled and unlabeled training cases. */
interface TrainingData {
  labeled: Case[];
  unlabeled: Case[];
  /** Ids of the unlabeled cases (none for a labeled-only row). */
  unlabeledIds: string[];
}

/**
 * The run's harness state besides the method's own: the patch stream, the seeded noise and
 * dropout streams, the loss curve and the training time (what a checkpoint stores as
 * `harness`), plus the iteration reached, the best-val state and the code to record.
 */
interface TrainState {
  iteration: number;
  source: BatchSource;
  noise: Rng;
  dropout: Rng;
  curve: CurveState;
  trainSeconds: number;
  /** The code recorded with the result: `resumedFrom` is set when a checkpoint of other code was resumed. */
  recordCode: CodeHash;
  best: BestState | null;
}

/** The `harness` part of a checkpoint of `st`. */
function harnessState(st: TrainState) {
  return {
    source: st.source.state(),
    noise: st.noise.state(),
    dropout: st.dropout.state(),
    curve: st.curve,
    trainSeconds: st.trainSeconds,
    code: st.recordCode,
  };
}

/** The progress callback of an evaluation phase ("val" during training, "eval" at the end). */
function evalProgress(job: Job, phase: "eval" | "val"): (u: EvalProgressUpdate) => void {
  const { ctx } = job;
  return (u) =>
    ctx.progress.evalUpdate({ run: ctx.index + 1, runs: ctx.total, label: job.label, phase, ...u });
}

/** The code hash of the run's method and dataset; a file that cannot be hashed is one line. */
async function runCode(job: Job): Promise<CodeHash> {
  try {
    return await (job.ctx.code ?? defaultCodeHasher()).forRun(job.run.method, job.spec.dataset.id);
  } catch (e) {
    throw new Error(`${job.where}: cannot hash its code: ${(e as Error).message.split("\n")[0]}`);
  }
}

/**
 * The outcome of a run already stored (`skipped`), or null when it is to run: none stored, a
 * stored file whose checksum fails (set aside with one line), or a stored result of other code
 * with `rerunStale` (one line: its file is replaced only when the rerun finishes).
 */
async function storedOutcome(job: Job, code: CodeHash): Promise<RunOutcome | null> {
  const { run, ctx, where } = job;
  let existing: RunRecord | null = null;
  try {
    existing = await ctx.store.readRun(run.runId);
  } catch (e) {
    if (!(e instanceof ChecksumMismatchError)) throw e;
    const aside = await ctx.store.setAsideRun(run.runId);
    ctx.progress.line(`${where}: ${e.message}; set aside as ${aside}, running it again`);
  }
  if (!existing) return null;
  const check = compareCode(existing.code, code);
  if (check.state === "current" || !ctx.rerunStale) {
    return { status: "skipped", record: existing, code: check };
  }
  ctx.progress.line(
    `${where}: stored result ${
      codeWords(check, existing.code?.resumedFrom !== undefined)
    }: rerunning (--rerun-stale); the stored file is replaced only when the rerun finishes`,
  );
  return null;
}

/** The run's training cases from its split (a split with too few is a {@link RunFailure}). */
async function trainingData(job: Job, split: Split): Promise<TrainingData> {
  const { run, ctx } = job;
  const labeledIds = split.train.slice(0, run.labeled);
  if (labeledIds.length < run.labeled) {
    throw new RunFailure(
      `${job.where}: split ${split.name} has only ${split.train.length} training cases`,
      null,
    );
  }
  const unlabeledIds = run.labeledOnly ? [] : split.train.slice(run.labeled);
  const [labeled, unlabeled] = [
    await loadCases(ctx, labeledIds),
    await loadCases(ctx, unlabeledIds),
  ];
  // The validation and test cases too (cached for later): a corrupt one fails the run now, in
  // one line naming its file, not after the whole training.
  if (job.spec.selection.kind === "best-val") await loadCases(ctx, split.val);
  await loadCases(ctx, split.test);
  return { labeled, unlabeled, unlabeledIds };
}

/** The state of a run at iteration 0: seeded patch, noise and dropout streams, empty curve. */
function freshState(job: Job, data: TrainingData, code: CodeHash): TrainState {
  const { run, spec } = job;
  return {
    iteration: 0,
    source: makeBatchSource({
      labeled: data.labeled,
      unlabeled: data.unlabeled,
      patch: run.patch,
      labeledBs: spec.batch.labeled,
      unlabeledBs: spec.batch.unlabeled,
      labeledOnly: run.labeledOnly,
      seed: deriveSeed(run.seed, spec.dataset.id, run.labeled, "sampler"),
    }),
    noise: new Rng(deriveSeed(run.seed, run.rowKey, run.labeled, "noise")),
    dropout: new Rng(deriveSeed(run.seed, run.rowKey, run.labeled, "dropout")),
    curve: {
      window: Math.max(1, Math.ceil(job.iterations / 50)),
      sums: {},
      count: 0,
      points: [],
    },
    trainSeconds: 0,
    recordCode: code,
    best: null,
  };
}

/**
 * Resume from the run's checkpoint, if it has one: the method, the streams, the curve and the
 * training time are restored and `st` moves to the checkpoint's iteration (one line). A
 * checkpoint of other or unknown code is resumed all the same and makes the result mixed
 * code (one line). A corrupt checkpoint restarts the run ({@link resumeState}).
 */
async function resume(job: Job, method: Method, st: TrainState, code: CodeHash): Promise<void> {
  const { ctx, where, iterations } = job;
  const resumed = await resumeState(ctx, job.run.runId, where);
  const ckpt = resumed.ckpt;
  if (ckpt) {
    method.restore(ckpt.method);
    const h = ckpt.harness as {
      source: unknown;
      noise: RngState;
      dropout: RngState;
      curve: CurveState;
      trainSeconds: number;
      code?: CodeHash;
    };
    st.source.restore(h.source);
    st.noise.restore(h.noise);
    st.dropout.restore(h.dropout);
    Object.assign(st.curve, h.curve);
    st.trainSeconds = h.trainSeconds;
    st.iteration = ckpt.iteration;
    ctx.progress.line(
      `${where}: resuming at iteration ${st.iteration}${
        st.iteration >= iterations ? ` of ${iterations} (training finished; evaluating)` : ""
      }`,
    );
    // A checkpoint of other code (or of unknown code: written before code hashes) makes the
    // result mixed: resumed all the same (no work lost), and recorded as such, so that it is
    // reported as stale and --rerun-stale reruns it.
    const was = h.code;
    const from = was?.resumedFrom ??
      (was === undefined ? "unknown" : was.hash !== code.hash ? was.hash : undefined);
    if (from !== undefined) {
      st.recordCode = { ...code, resumedFrom: from };
      ctx.progress.line(
        `${where}: its checkpoint was written by ${
          was === undefined
            ? "unknown code (no code hash)"
            : `other code (${describeChanged(compareCode(was, code).changed, true)})`
        }: resuming; the result is recorded as mixed code (--rerun-stale reruns it)`,
      );
    }
  }
  st.best = resumed.best;
}

/**
 * Train from `st.iteration` to the run's iterations: one seeded step at a time (a non-finite
 * loss is a {@link RunFailure} naming the iteration), progress after each, the best-val
 * state every `selection.every` iterations, a checkpoint every `checkpointEvery` (not at the
 * end: {@link endOfTrainingCheckpoint} writes that one). Returns whether it trained at all.
 */
async function trainLoop(
  job: Job,
  method: Method,
  st: TrainState,
  split: Split,
  nClasses: number,
): Promise<boolean> {
  const { run, ctx, spec, iterations } = job;
  let t0 = performance.now();
  let lastLoss = NaN;
  const startedAt = st.iteration;
  while (st.iteration < iterations) {
    const batch = toBatch(st.source.next());
    let losses: StepLosses;
    try {
      losses = await method.trainStep(batch, {
        iteration: st.iteration,
        totalIterations: iterations,
        random: { noise: st.noise, dropout: st.dropout },
      });
    } finally {
      disposeBatch(batch);
    }
    // The step's dead buffers, handed back once they pass the bound (memory.ts).
    memoryGuard().check();
    const bad = finite(losses);
    if (bad) {
      throw new RunFailure(
        `${job.where}: loss diverged at iteration ${st.iteration} (${bad})`,
        st.iteration,
      );
    }
    curveAdd(st.curve, st.iteration, losses);
    lastLoss = losses.loss;
    st.iteration++;
    const elapsed = st.trainSeconds + (performance.now() - t0) / 1000;
    ctx.progress.update({
      run: ctx.index + 1,
      runs: ctx.total,
      label: job.label,
      iteration: st.iteration,
      iterations,
      loss: lastLoss,
      itPerSec: st.iteration / Math.max(elapsed, 1e-9),
    });
    if (spec.selection.kind === "best-val" && st.iteration % spec.selection.every === 0) {
      const score = await validationDice(
        method,
        await loadCases(ctx, split.val),
        spec,
        nClasses,
        ctx.dataset.ignoreLabel,
        evalProgress(job, "val"),
      );
      if (!st.best || score > st.best.score) {
        st.best = { iteration: st.iteration, score, state: await captureState(method) };
        await ctx.store.writeBest(run.runId, st.best);
      }
    }
    if (st.iteration % spec.checkpointEvery === 0 && st.iteration < iterations) {
      st.trainSeconds += (performance.now() - t0) / 1000;
      t0 = performance.now();
      await ctx.store.writeCheckpoint(run.runId, {
        iteration: st.iteration,
        method: await captureState(method),
        harness: harnessState(st),
      });
    }
  }
  if (st.iteration === startedAt) return false;
  st.trainSeconds += (performance.now() - t0) / 1000;
  return true;
}

/** The final state as a checkpoint, so that a run stopped during its evaluation never trains again. */
async function endOfTrainingCheckpoint(job: Job, method: Method, st: TrainState): Promise<void> {
  await job.ctx.store.writeCheckpoint(job.run.runId, {
    iteration: st.iteration,
    method: await captureState(method),
    harness: harnessState(st),
  });
}

/**
 * The run's weights after training: `.pth` files of the final and the selected weights in
 * `weights/` (reference names, for PyTorch tools; a failed write logs one line and never
 * loses the run's results), then, under best-val selection, the method restored to the
 * iteration that was best on the validation split (one line).
 */
async function selectWeights(
  job: Job,
  method: Method,
  st: TrainState,
): Promise<RunWeights> {
  const { ctx, where } = job;
  const best = st.best;
  const weights = await exportRunWeights(
    ctx.store.dir,
    job.run.runId,
    () => captureState(method),
    best,
    (l) => ctx.progress.line(l),
    where,
  );
  if (best) {
    // best-val selection: score the checkpoint that was best on the validation split.
    method.restore(best.state);
    ctx.progress.line(
      `${where}: selected iteration ${best.iteration} (validation Dice ${best.score.toFixed(4)})`,
    );
  }
  return weights;
}

/**
 * Score the test cases under the benchmark's protocol, storing each case's metrics as it
 * finishes (`checkpoints/<run-id>.eval.json`). The cases of an earlier, interrupted
 * evaluation of the same trained state and code are reused (one line each way); stored
 * per-case results that do not decode or belong to another state are set aside or ignored.
 */
async function evaluateRun(
  job: Job,
  method: Method,
  st: TrainState,
  split: Split,
  nClasses: number,
): Promise<{ cases: CaseMetrics[]; evalSeconds: number }> {
  const { run, ctx, spec, where } = job;
  const te = performance.now();
  const testCases = await loadCases(ctx, split.test);
  // Per-case results stored as they finish; those of an earlier, interrupted evaluation of
  // the same trained state and code are reused.
  const evalKey = {
    iteration: st.iteration,
    selected: st.best?.iteration ?? null,
    code: st.recordCode.hash,
  };
  const earlier = await ctx.store.readEvalProgress(run.runId);
  if (earlier.aside) {
    ctx.progress.line(
      `${where}: ${earlier.why}; set aside as ${earlier.aside}, evaluating every case`,
    );
  }
  let before = earlier.progress;
  if (before && JSON.stringify(before.key) !== JSON.stringify(evalKey)) {
    ctx.progress.line(
      `${where}: stored per-case results belong to another trained state or code: evaluating every case`,
    );
    before = null;
  }
  const done = new Map((before?.cases ?? []).map((c) => [c.id, c] as [string, CaseMetrics]));
  const reused = testCases.filter((c) => done.has(c.id)).length;
  if (reused > 0) {
    ctx.progress.line(
      `${where}: evaluation resumed: ${reused} of ${testCases.length} cases scored earlier, ${
        testCases.length - reused
      } to go`,
    );
  }
  const evalBefore = before?.evalSeconds ?? 0;
  let evaluatedHere = 0;
  const cases = await evaluateCases(
    method,
    testCases,
    spec.eval,
    nClasses,
    ctx.dataset.ignoreLabel,
    evalProgress(job, "eval"),
    {
      done,
      onCase: async (finished) => {
        await ctx.store.writeEvalProgress({
          runId: run.runId,
          key: evalKey,
          cases: finished,
          evalSeconds: evalBefore + (performance.now() - te) / 1000,
        });
        evaluatedHere++;
        if (KILL_AFTER_EVAL_CASES > 0 && evaluatedHere >= KILL_AFTER_EVAL_CASES) {
          Deno.kill(Deno.pid, "SIGKILL");
        }
      },
    },
  );
  const evalSeconds = evalBefore + (performance.now() - te) / 1000;
  if (reused > 0) {
    ctx.progress.line(
      `${where}: evaluation done: ${evaluatedHere} cases evaluated now, ${reused} reused`,
    );
  }
  return { cases, evalSeconds };
}

/** The run's result file: spec, split, provenance, timing, curve, per-case and mean metrics. */
function runRecord(
  job: Job,
  def: MethodDefinition,
  split: Split,
  data: TrainingData,
  st: TrainState,
  scored: { cases: CaseMetrics[]; evalSeconds: number },
  weights: RunWeights,
): RunRecord {
  const { run, ctx, spec } = job;
  const { cases, evalSeconds } = scored;
  const metricNames = Object.keys(cases[0]?.values ?? {});
  const mean: Record<string, number> = {};
  for (const m of metricNames) {
    mean[m] = cases.reduce((s, c) => s + (c.values[m] ?? NaN), 0) / cases.length;
  }
  return {
    runId: run.runId,
    benchmark: run.benchmark,
    rowKey: run.rowKey,
    method: run.method,
    labeled: run.labeled,
    seed: run.seed,
    hyperParams: run.hyperParams,
    spec: {
      ...run.spec,
      unlabeledCount: data.unlabeledIds.length,
      reconstructed: def.meta.reconstructed,
      label: spec.methods.find((m) => (m.key ?? m.method) === run.rowKey)?.label ??
        def.meta.title,
    },
    split: { name: split.name, hash: split.hash },
    provenance: { ...ctx.provenance, gitCommit: ctx.gitCommit },
    timing: {
      trainSeconds: st.trainSeconds,
      evalSeconds,
      iterationsPerSecond: job.iterations / Math.max(st.trainSeconds, 1e-9),
    },
    curve: st.curve.points,
    cases,
    mean,
    protocol: {
      units: spec.eval.units,
      emptyPolicy: spec.eval.emptyPolicy,
      selection: spec.selection.kind,
      lcc: spec.eval.lcc,
    },
    finishedAt: new Date().toISOString(),
    weights,
    code: st.recordCode,
  };
}

/**
 * Run one planned run to completion (or resume it), evaluate it and store the record: a
 * stored result is skipped ({@link storedOutcome}); otherwise the phases are training data,
 * method and seeded state, {@link resume}, {@link trainLoop}, {@link endOfTrainingCheckpoint},
 * {@link selectWeights}, {@link evaluateRun} and the record. A failure in any phase is stored
 * as the run's failure file, with the iteration reached.
 */
export async function executeRun(run: PlannedRun, ctx: RunContext): Promise<RunOutcome> {
  const { spec } = ctx;
  const label = `${run.rowKey} L=${run.labeled} seed=${run.seed}`;
  const job: Job = {
    run,
    ctx,
    spec,
    label,
    where: `run ${run.runId} (${label})`,
    iterations: run.spec["iterations"] as number,
  };
  const code = await runCode(job);
  const stored = await storedOutcome(job, code);
  if (stored) return stored;
  const split = run.split === null ? ctx.split : ctx.splits?.get(run.split);
  if (!split) {
    throw new Error(`run ${run.runId}: dataset ${spec.dataset.id} has no split '${run.split}'`);
  }
  const def = getMethod(run.method);
  let method: Method | null = null;
  let st: TrainState | null = null;
  try {
    const data = await trainingData(job, split);
    const nClasses = ctx.dataset.nClasses;
    method = def.create(run.hyperParams, {
      initSeed: deriveSeed(run.seed, spec.dataset.id, "init"),
      inChannels: data.labeled[0]?.image.channels ?? 1,
      nClasses,
    });
    st = freshState(job, data, code);
    await resume(job, method, st, code);
    if (spec.selection.kind === "best-val" && split.val.length === 0) {
      throw new RunFailure(
        `${job.where}: selection best-val needs a validation split, and ${split.name} has none`,
        null,
      );
    }
    if (await trainLoop(job, method, st, split, nClasses)) {
      await endOfTrainingCheckpoint(job, method, st);
    }
    curveFlush(st.curve, job.iterations);
    const weights = await selectWeights(job, method, st);
    const scored = await evaluateRun(job, method, st, split, nClasses);
    const record = runRecord(job, def, split, data, st, scored, weights);
    await ctx.store.writeRun(record);
    return { status: "finished", record };
  } catch (e) {
    const iteration = st?.iteration ?? 0;
    const msg = e instanceof RunFailure
      ? e.message
      : `${job.where}: failed at iteration ${iteration}: ${
        (e instanceof Error ? e.message : String(e)).split("\n")[0]
      }`;
    await ctx.store.writeFailure({
      runId: run.runId,
      error: msg,
      iteration: e instanceof RunFailure ? e.iteration : iteration,
      at: new Date().toISOString(),
    });
    return { status: "failed", error: msg };
  } finally {
    method?.dispose();
    // The fused forward's cached plans hold this run's folded weights and buffers.
    disposeInferenceRunners();
  }
}
