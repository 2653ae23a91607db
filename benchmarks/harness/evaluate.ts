/**
 * The evaluator: scores a trained method on whole test volumes with a benchmark's protocol
 * (sliding window -> optional largest connected component -> per-case metrics). Methods never
 * evaluate themselves; this module only calls their `predict`.
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import type { Method } from "../../methods/types.ts";
import type { Case } from "../../datasets/types.ts";
import type { EvalProtocol } from "./spec.ts";
import type { CaseMetrics } from "./store.ts";
import { planWindows, type PredictFn, slidingWindowInference } from "./sliding_window.ts";
import { largestConnectedComponent } from "./postprocess.ts";
import { wmhMetrics } from "./challenge.ts";
import { binaryMetrics } from "./metrics.ts";
import { fusedWindowPredictor } from "../../methods/nn/native/infer.ts";
import { memoryGuard } from "./memory.ts";

/** Metrics computed by the WMH challenge code rather than the UA-MT/DTC metric set. */
const WMH_METRICS = new Set<string>(["h95", "avd", "lesionRecall", "lesionF1"]);

/**
 * Adapt a method's tensor `predict` to the evaluator's typed-array window predictor. The
 * probabilities are read asynchronously (`await data()`: a GPU backend under Deno has no
 * synchronous readback); the window batch is consumed before the first await, so the caller
 * may refill its buffer once the promise resolves.
 */
export function windowPredictor(method: Method): PredictFn {
  const unfused: PredictFn = async (batch, shape) => {
    const probs = tf.tidy(() =>
      method.predict(tf.tensor5d(batch, [...shape] as [number, number, number, number, number]))
    );
    try {
      return (await probs.data()) as Float32Array;
    } finally {
      probs.dispose();
      // A window batch's dead activations, handed back once they pass the bound (memory.ts).
      memoryGuard().check();
    }
  };
  // A V-Net softmax on the cpu backend with oneDNN: the fused inference forward instead
  // (methods/nn/native/infer.ts; checked against `unfused` on its first batch).
  return fusedWindowPredictor(method, unfused) ?? unfused;
}

/** Foreground mask of `labels == cls` as 0/1 bytes. */
function classMask(labels: Uint8Array, cls: number): Uint8Array {
  const out = new Uint8Array(labels.length);
  for (let i = 0; i < labels.length; i++) out[i] = labels[i] === cls ? 1 : 0;
  return out;
}

/**
 * Score one case: foreground = class 1 (the papers' binary tasks: LA cavity, whole tumour,
 * WMH lesions); the prediction is the argmax of the stitched probabilities (equivalently
 * p > 0.5 for two classes), then the largest 26-connected component when the protocol says so.
 * Voxels whose reference label is `ignoreLabel` (WMH "other pathology", label 2) are removed
 * from the prediction before scoring, as the WMH challenge evaluation does.
 */
export async function evaluateCase(
  method: Method,
  c: Case,
  protocol: EvalProtocol,
  nClasses: number,
  ignoreLabel?: number,
  onWindows?: (windowsDone: number, windowsTotal: number) => void,
): Promise<CaseMetrics> {
  const labels = await predictLabels(method, c, protocol, nClasses, onWindows);
  return scoreLabels(labels, c, protocol, ignoreLabel);
}

/**
 * The argmax label map of one case: the sliding window of `protocol` (window layout, stride,
 * weighting), before any post-processing ({@link scoreLabels} applies the rest).
 */
export async function predictLabels(
  method: Method,
  c: Case,
  protocol: EvalProtocol,
  nClasses: number,
  onWindows?: (windowsDone: number, windowsTotal: number) => void,
): Promise<Uint8Array> {
  const sw = await slidingWindowInference(
    { data: c.image.data, shape: c.image.shape, channels: c.image.channels },
    windowPredictor(method),
    {
      patch: protocol.patch,
      numClasses: nClasses,
      mode: protocol.window,
      stride: [protocol.strideXY, protocol.strideXY, protocol.strideZ],
      weighting: protocol.gaussian ? "gaussian" : "uniform",
      batchSize: EVAL_BATCH,
      ...(onWindows ? { onProgress: onWindows } : {}),
    },
  );
  return sw.labels;
}

/**
 * Score a label map of one case under `protocol`: foreground class 1, `ignoreLabel` voxels
 * removed, the largest connected component when `protocol.lcc`, then the metrics (as
 * {@link evaluateCase}; scoring one map under two protocols re-uses one sliding window).
 */
export function scoreLabels(
  labels: Uint8Array,
  c: Case,
  protocol: EvalProtocol,
  ignoreLabel?: number,
): CaseMetrics {
  let pred = classMask(labels, 1);
  if (ignoreLabel !== undefined) {
    for (let i = 0; i < pred.length; i++) if (c.label.data[i] === ignoreLabel) pred[i] = 0;
  }
  if (protocol.lcc) pred = largestConnectedComponent(pred, c.image.shape);
  const ref = classMask(c.label.data, 1);
  const m = binaryMetrics(pred, ref, c.image.shape, {
    emptyPolicy: protocol.emptyPolicy,
    ...(protocol.units === "mm" ? { spacing: c.label.spacing } : {}),
  });
  const all: Record<string, number> = {
    dice: m.dice,
    jaccard: m.jaccard,
    hd95: m.hd95,
    asd: m.asd,
    assd: m.assd,
  };
  if (protocol.metrics.some((k) => WMH_METRICS.has(k))) {
    // The WMH 2017 challenge's own definitions (hjkuijf/wmhchallenge evaluation.py), on the
    // raw label so its label-2 masking applies; H95 in mm when the protocol uses mm.
    const w = wmhMetrics(c.label.data, pred, c.image.shape, {
      ...(protocol.units === "mm" ? { spacing: c.label.spacing } : {}),
    });
    Object.assign(all, { h95: w.h95, avd: w.avd, lesionRecall: w.recall, lesionF1: w.f1 });
  }
  const values: Record<string, number> = {};
  for (const k of protocol.metrics) if (k in all) values[k] = all[k]!;
  return { id: c.id, values };
}

/** Windows per predict call of the evaluator. */
export const EVAL_BATCH = 2;

/** Sliding windows of one volume of `shape` under `protocol` (no inference). */
export function caseWindows(
  shape: readonly [number, number, number],
  protocol: EvalProtocol,
): number {
  return planWindows(
    shape,
    protocol.patch,
    protocol.window,
    [protocol.strideXY, protocol.strideXY, protocol.strideZ],
  ).count;
}

/** Where the evaluation of a list of cases stands (for progress lines). */
export interface EvalProgressUpdate {
  /** Cases finished. */
  casesDone: number;
  cases: number;
  /** Windows predicted so far, over all cases, and in all. */
  windowsDone: number;
  windowsTotal: number;
  /** Seconds since the evaluation started. */
  elapsed: number;
}

/** Resuming an evaluation: the cases scored earlier, and what to do as each new case finishes. */
export interface EvalResume {
  /** Metrics of cases finished earlier, by case id: reused, not evaluated again. */
  done?: ReadonlyMap<string, CaseMetrics>;
  /** Called (and awaited) after each newly evaluated case, with every case finished so far. */
  onCase?: (finished: CaseMetrics[], evaluated: CaseMetrics) => Promise<void>;
}

/**
 * Score every case in order; `onProgress` hears at the start, after each predict call (cases
 * done, windows done / total over all cases, elapsed seconds) and when a case's metrics are done.
 * With `resume`, the cases in `resume.done` are taken as they are (their windows count as done
 * from the start) and `resume.onCase` stores each new one as it finishes, so an interrupted
 * evaluation resumes without scoring a finished case twice. Per-case metrics do not depend on
 * the other cases, so the result equals an uninterrupted evaluation's.
 */
export async function evaluateCases(
  method: Method,
  cases: Case[],
  protocol: EvalProtocol,
  nClasses: number,
  ignoreLabel?: number,
  onProgress?: (u: EvalProgressUpdate) => void,
  resume: EvalResume = {},
): Promise<CaseMetrics[]> {
  const out: CaseMetrics[] = [];
  const windows = onProgress ? cases.map((c) => caseWindows(c.image.shape, protocol)) : [];
  const windowsTotal = windows.reduce((a, b) => a + b, 0);
  const t0 = performance.now();
  let before = 0;
  const report = (casesDone: number, windowsDone: number) =>
    onProgress?.({
      casesDone,
      cases: cases.length,
      windowsDone,
      windowsTotal,
      elapsed: (performance.now() - t0) / 1000,
    });
  const done = resume.done ?? new Map<string, CaseMetrics>();
  let casesDone = cases.filter((c) => done.has(c.id)).length;
  before = cases.reduce((s, c, i) => s + (done.has(c.id) ? windows[i] ?? 0 : 0), 0);
  report(casesDone, before);
  for (const [i, c] of cases.entries()) {
    const earlier = done.get(c.id);
    if (earlier) {
      out.push(earlier);
      continue;
    }
    const onWindows = onProgress ? (w: number) => report(casesDone, before + w) : undefined;
    const m = await evaluateCase(method, c, protocol, nClasses, ignoreLabel, onWindows);
    out.push(m);
    before += windows[i] ?? 0;
    casesDone++;
    await resume.onCase?.(
      [...out, ...cases.slice(i + 1).flatMap((x) => done.get(x.id) ?? [])],
      m,
    );
    report(casesDone, before);
  }
  return out;
}
