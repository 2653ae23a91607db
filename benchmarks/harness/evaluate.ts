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
import { type PredictFn, slidingWindowInference } from "./sliding_window.ts";
import { largestConnectedComponent } from "./postprocess.ts";
import { wmhMetrics } from "./challenge.ts";
import { binaryMetrics } from "./metrics.ts";

/** Metrics computed by the WMH challenge code rather than the UA-MT/DTC metric set. */
const WMH_METRICS = new Set<string>(["h95", "avd", "lesionRecall", "lesionF1"]);

/**
 * Adapt a method's tensor `predict` to the evaluator's typed-array window predictor. The
 * probabilities are read asynchronously (`await data()`: a GPU backend under Deno has no
 * synchronous readback); the window batch is consumed before the first await, so the caller
 * may refill its buffer once the promise resolves.
 */
export function windowPredictor(method: Method): PredictFn {
  return async (batch, shape) => {
    const probs = tf.tidy(() =>
      method.predict(tf.tensor5d(batch, [...shape] as [number, number, number, number, number]))
    );
    try {
      return (await probs.data()) as Float32Array;
    } finally {
      probs.dispose();
    }
  };
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
): Promise<CaseMetrics> {
  const sw = await slidingWindowInference(
    { data: c.image.data, shape: c.image.shape, channels: c.image.channels },
    windowPredictor(method),
    {
      patch: protocol.patch,
      numClasses: nClasses,
      mode: protocol.window,
      stride: [protocol.strideXY, protocol.strideXY, protocol.strideZ],
      weighting: protocol.gaussian ? "gaussian" : "uniform",
      batchSize: 2,
    },
  );
  let pred = classMask(sw.labels, 1);
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

/** Score every case in order. */
export async function evaluateCases(
  method: Method,
  cases: Case[],
  protocol: EvalProtocol,
  nClasses: number,
  ignoreLabel?: number,
): Promise<CaseMetrics[]> {
  const out: CaseMetrics[] = [];
  for (const c of cases) out.push(await evaluateCase(method, c, protocol, nClasses, ignoreLabel));
  return out;
}
