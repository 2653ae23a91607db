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
import type { Method, StepLosses, TrainBatch } from "../../methods/types.ts";
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
import { exportRunWeights } from "./torch_weights.ts";
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

/** Run one planned run to completion (or resume it), evaluate it and store the record. */
export async function executeRun(run: PlannedRun, ctx: RunContext): Promise<RunOutcome> {
  const { spec } = ctx;
  const label = `${run.rowKey} L=${run.labeled} seed=${run.seed}`;
  const where = `run ${run.runId} (${label})`;
  let code: CodeHash;
  try {
    code = await (ctx.code ?? defaultCodeHasher()).forRun(run.method, spec.dataset.id);
  } catch (e) {
    throw new Error(`${where}: cannot hash its code: ${(e as Error).message.split("\n")[0]}`);
  }
  let existing: RunRecord | null = null;
  try {
    existing = await ctx.store.readRun(run.runId);
  } catch (e) {
    if (!(e instanceof ChecksumMismatchError)) throw e;
    const aside = await ctx.store.setAsideRun(run.runId);
    ctx.progress.line(`${where}: ${e.message}; set aside as ${aside}, running it again`);
  }
  if (existing) {
    const check = compareCode(existing.code, code);
    if (check.state === "current" || !ctx.rerunStale) {
      return { status: "skipped", record: existing, code: check };
    }
    ctx.progress.line(
      `${where}: stored result ${
        codeWords(check, existing.code?.resumedFrom !== undefined)
      }: rerunning (--rerun-stale); the stored file is replaced only when the rerun finishes`,
    );
  }
  const split = run.split === null ? ctx.split : ctx.splits?.get(run.split);
  if (!split) {
    throw new Error(`run ${run.runId}: dataset ${spec.dataset.id} has no split '${run.split}'`);
  }
  const def = getMethod(run.method);
  const iterations = run.spec["iterations"] as number;
  const evalProgress = (phase: "eval" | "val") => (u: EvalProgressUpdate) =>
    ctx.progress.evalUpdate({ run: ctx.index + 1, runs: ctx.total, label, phase, ...u });
  let method: Method | null = null;
  let iteration = 0;
  try {
    const labeledIds = split.train.slice(0, run.labeled);
    if (labeledIds.length < run.labeled) {
      throw new RunFailure(
        `${where}: split ${split.name} has only ${split.train.length} training cases`,
        null,
      );
    }
    const unlabeledIds = run.labeledOnly ? [] : split.train.slice(run.labeled);
    const [labeled, unlabeled] = [
      await loadCases(ctx, labeledIds),
      await loadCases(ctx, unlabeledIds),
    ];
    const channels = labeled[0]?.image.channels ?? 1;
    const nClasses = ctx.dataset.nClasses;
    method = def.create(run.hyperParams, {
      initSeed: deriveSeed(run.seed, spec.dataset.id, "init"),
      inChannels: channels,
      nClasses,
    });
    const source = makeBatchSource({
      labeled,
      unlabeled,
      patch: run.patch,
      labeledBs: spec.batch.labeled,
      unlabeledBs: spec.batch.unlabeled,
      labeledOnly: run.labeledOnly,
      seed: deriveSeed(run.seed, spec.dataset.id, run.labeled, "sampler"),
    });
    const noise = new Rng(deriveSeed(run.seed, run.rowKey, run.labeled, "noise"));
    const dropout = new Rng(deriveSeed(run.seed, run.rowKey, run.labeled, "dropout"));
    const curve: CurveState = {
      window: Math.max(1, Math.ceil(iterations / 50)),
      sums: {},
      count: 0,
      points: [],
    };
    let trainSeconds = 0;
    /** The code recorded with the result: `resumedFrom` is set when a checkpoint of other code was resumed. */
    let recordCode: CodeHash = code;

    const resumed = await resumeState(ctx, run.runId, where);
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
      source.restore(h.source);
      noise.restore(h.noise);
      dropout.restore(h.dropout);
      Object.assign(curve, h.curve);
      trainSeconds = h.trainSeconds;
      iteration = ckpt.iteration;
      ctx.progress.line(
        `${where}: resuming at iteration ${iteration}${
          iteration >= iterations ? ` of ${iterations} (training finished; evaluating)` : ""
        }`,
      );
      // A checkpoint of other code (or of unknown code: written before code hashes) makes the
      // result mixed: resumed all the same (no work lost), and recorded as such, so that it is
      // reported as stale and --rerun-stale reruns it.
      const was = h.code;
      const from = was?.resumedFrom ??
        (was === undefined ? "unknown" : was.hash !== code.hash ? was.hash : undefined);
      if (from !== undefined) {
        recordCode = { ...code, resumedFrom: from };
        ctx.progress.line(
          `${where}: its checkpoint was written by ${
            was === undefined
              ? "unknown code (no code hash)"
              : `other code (${describeChanged(compareCode(was, code).changed, true)})`
          }: resuming; the result is recorded as mixed code (--rerun-stale reruns it)`,
        );
      }
    }

    if (spec.selection.kind === "best-val" && split.val.length === 0) {
      throw new RunFailure(
        `${where}: selection best-val needs a validation split, and ${split.name} has none`,
        null,
      );
    }
    let best: BestState | null = resumed.best;
    let t0 = performance.now();
    let lastLoss = NaN;
    const startedAt = iteration;
    const harnessState = () => ({
      source: source.state(),
      noise: noise.state(),
      dropout: dropout.state(),
      curve,
      trainSeconds,
      code: recordCode,
    });
    while (iteration < iterations) {
      const batch = toBatch(source.next());
      let losses: StepLosses;
      try {
        losses = await method.trainStep(batch, {
          iteration,
          totalIterations: iterations,
          random: { noise, dropout },
        });
      } finally {
        disposeBatch(batch);
      }
      // The step's dead buffers, handed back once they pass the bound (memory.ts).
      memoryGuard().check();
      const bad = finite(losses);
      if (bad) {
        throw new RunFailure(
          `${where}: loss diverged at iteration ${iteration} (${bad})`,
          iteration,
        );
      }
      curveAdd(curve, iteration, losses);
      lastLoss = losses.loss;
      iteration++;
      const elapsed = trainSeconds + (performance.now() - t0) / 1000;
      ctx.progress.update({
        run: ctx.index + 1,
        runs: ctx.total,
        label,
        iteration,
        iterations,
        loss: lastLoss,
        itPerSec: iteration / Math.max(elapsed, 1e-9),
      });
      if (spec.selection.kind === "best-val" && iteration % spec.selection.every === 0) {
        const score = await validationDice(
          method,
          await loadCases(ctx, split.val),
          spec,
          nClasses,
          ctx.dataset.ignoreLabel,
          evalProgress("val"),
        );
        if (!best || score > best.score) {
          best = { iteration, score, state: await captureState(method) };
          await ctx.store.writeBest(run.runId, best);
        }
      }
      if (iteration % spec.checkpointEvery === 0 && iteration < iterations) {
        trainSeconds += (performance.now() - t0) / 1000;
        t0 = performance.now();
        await ctx.store.writeCheckpoint(run.runId, {
          iteration,
          method: await captureState(method),
          harness: harnessState(),
        });
      }
    }
    if (iteration > startedAt) {
      trainSeconds += (performance.now() - t0) / 1000;
      // The final state, so that a run stopped during its evaluation never trains again.
      await ctx.store.writeCheckpoint(run.runId, {
        iteration,
        method: await captureState(method),
        harness: harnessState(),
      });
    }
    curveFlush(curve, iterations);
    // .pth files of the final and the selected weights in weights/ (reference names, for
    // PyTorch tools); a failed write logs one line and never loses the run's results.
    const weights = await exportRunWeights(
      ctx.store.dir,
      run.runId,
      () => captureState(method!),
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

    const te = performance.now();
    const testCases = await loadCases(ctx, split.test);
    // Per-case results stored as they finish; those of an earlier, interrupted evaluation of
    // the same trained state and code are reused.
    const evalKey = { iteration, selected: best?.iteration ?? null, code: recordCode.hash };
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
      evalProgress("eval"),
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
    const metricNames = Object.keys(cases[0]?.values ?? {});
    const mean: Record<string, number> = {};
    for (const m of metricNames) {
      mean[m] = cases.reduce((s, c) => s + (c.values[m] ?? NaN), 0) / cases.length;
    }
    const record: RunRecord = {
      runId: run.runId,
      benchmark: run.benchmark,
      rowKey: run.rowKey,
      method: run.method,
      labeled: run.labeled,
      seed: run.seed,
      hyperParams: run.hyperParams,
      spec: {
        ...run.spec,
        unlabeledCount: unlabeledIds.length,
        reconstructed: def.meta.reconstructed,
        label: spec.methods.find((m) => (m.key ?? m.method) === run.rowKey)?.label ??
          def.meta.title,
      },
      split: { name: split.name, hash: split.hash },
      provenance: { ...ctx.provenance, gitCommit: ctx.gitCommit },
      timing: {
        trainSeconds,
        evalSeconds,
        iterationsPerSecond: iterations / Math.max(trainSeconds, 1e-9),
      },
      curve: curve.points,
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
      code: recordCode,
    };
    await ctx.store.writeRun(record);
    return { status: "finished", record };
  } catch (e) {
    const msg = e instanceof RunFailure
      ? e.message
      : `${where}: failed at iteration ${iteration}: ${
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
