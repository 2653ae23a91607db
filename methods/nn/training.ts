/**
 * Small helpers shared by the methods: batch concatenation/splitting as the reference scripts do
 * it (`volume_batch = cat(labeled, unlabeled)`, `outputs[:labeled_bs]`), the SGD + step-decay
 * set-up of the LA scripts and its defaults, and reading scalar losses back (UA-MT
 * `train_LA_meanteacher_certainty_unlabel.py`, DTC `train_la_dtc.py`). The method base that uses
 * them is `method_base.ts`.
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import type { StepLosses, StoredTensor, TrainBatch } from "../types.ts";
import { type NamedVariables, polyLr, Sgd, stepLr } from "./optim.ts";

/** A learning-rate schedule: the LR used by 0-based `iteration` of a `totalIterations` run. */
export type LrSchedule = (iteration: number, totalIterations: number) => number;

/** The LR policies of {@link SgdHp}. */
export const LR_POLICIES = ["step", "poly"] as const;
/** One of {@link LR_POLICIES}. */
export type LrPolicy = typeof LR_POLICIES[number];

/**
 * SGD hyper-parameters of the V-Net methods: the LA scripts' `optim.SGD(lr, momentum,
 * weight_decay)` with step decay (UA-MT `train_LA_meanteacher_certainty_unlabel.py`, DTC
 * `train_la_dtc.py`), or the poly decay of the SSL4MIS 3D scripts (BraTS protocol).
 */
export type SgdHp = {
  lr: number;
  lrStep: number;
  lrGamma: number;
  momentum: number;
  weightDecay: number;
  /**
   * "step": `lr * lrGamma^(iter // lrStep)` (LA scripts); "poly": `lr (1 - iter/maxIter)^0.9`
   * (SSL4MIS 3D scripts, `train_*_3D.py`). A constant LR (the UG-MCL BraTS script) is "step"
   * with `lrStep` >= the iteration count.
   */
  lrPolicy: LrPolicy;
};

/**
 * Defaults of {@link SgdHp}: SGD 0.01, momentum 0.9, wd 1e-4, x0.1 every 2500 iterations (the
 * LA scripts' set-up; benchmarks on other data override it by name, e.g. `lrPolicy: "poly"`).
 */
export const SGD_DEFAULTS: SgdHp = {
  lr: 0.01,
  lrStep: 2500,
  lrGamma: 0.1,
  momentum: 0.9,
  weightDecay: 1e-4,
  lrPolicy: "step",
};

/** Declared choices of {@link SgdHp}, for a definition's `choices`. */
export const SGD_CHOICES = { lrPolicy: LR_POLICIES } as const;

/** `torch.optim.SGD(params, lr, momentum, weight_decay)`. */
export function sgdOptimizer(params: NamedVariables, hp: SgdHp): Sgd {
  return new Sgd(params, { momentum: hp.momentum, weightDecay: hp.weightDecay });
}

/** LR used by 0-based iteration `iteration` under the policy of {@link SgdHp}. */
export function sgdLr(hp: SgdHp, iteration: number, totalIterations: number): number {
  if (hp.lrPolicy === "poly") return polyLr(hp.lr, iteration, totalIterations, 0.9);
  return stepLr(hp.lr, iteration, hp.lrStep, hp.lrGamma);
}

/** {@link sgdLr} as a schedule (for `MethodBase.optimizer`). */
export function sgdSchedule(hp: SgdHp): LrSchedule {
  return (iteration, totalIterations) => sgdLr(hp, iteration, totalIterations);
}

/** `cat([labeled, unlabeled])` along the batch axis (a new tensor; the caller disposes it). */
export function fullBatch(batch: TrainBatch): tf.Tensor5D {
  return batch.unlabeledImages === null
    ? tf.clone(batch.labeledImages)
    : tf.concat([batch.labeledImages, batch.unlabeledImages], 0);
}

/** Rows [from, to) of the batch axis of `t`. */
export function rows<T extends tf.Tensor>(t: T, from: number, to: number): T {
  const begin = t.shape.map(() => 0);
  begin[0] = from;
  const size = t.shape.map((d) => d);
  size[0] = to - from;
  return tf.slice(t, begin, size) as T;
}

/** Channel `c` of a channels-last tensor, channel axis dropped. */
export function channel(t: tf.Tensor, c: number): tf.Tensor {
  const r = t.shape.length;
  const begin = t.shape.map(() => 0);
  begin[r - 1] = c;
  const size = t.shape.map((d) => d);
  size[r - 1] = 1;
  return tf.reshape(tf.slice(t, begin, size), t.shape.slice(0, r - 1));
}

/**
 * Read scalar tensors into numbers and dispose them: `{...extra, ...scalars}` as numbers, key
 * order included. `extra` values may be scalar tensors too (read and disposed the same way).
 * The reads are asynchronous (`await t.data()`), as a GPU backend without synchronous
 * readback (webgpu under Deno) needs; on cpu the numbers are exactly `dataSync()[0]`.
 */
export async function readLosses(
  scalars: Record<string, tf.Tensor>,
  extra: Record<string, number | tf.Tensor> = {},
): Promise<StepLosses> {
  const out: Record<string, number> = {};
  const reads: [string, tf.Tensor][] = [];
  for (const [k, v] of Object.entries(extra)) {
    if (typeof v === "number") out[k] = v;
    else {
      out[k] = NaN;
      reads.push([k, v]);
    }
  }
  for (const [k, t] of Object.entries(scalars)) {
    out[k] = NaN;
    reads.push([k, t]);
  }
  try {
    const values = await Promise.all(reads.map(([, t]) => t.data()));
    reads.forEach(([k], i) => (out[k] = values[i]![0]! as number));
  } finally {
    for (const [, t] of reads) t.dispose();
  }
  if (!("loss" in out)) throw new Error("readLosses: no 'loss'");
  return out as StepLosses;
}

/**
 * The class-index labels of a batch as host values (for CPU-side targets such as SDFs). The
 * harness makes `batch.labels` from the sampler's typed array, so before any kernel has used
 * it this returns those CPU values without a GPU round trip; afterwards it reads back.
 */
export async function labelValues(batch: TrainBatch): Promise<Int32Array> {
  return (await batch.labels.data()) as Int32Array;
}

/** Prefix every key of a tensor record. */
export function prefixed(
  prefix: string,
  r: Record<string, StoredTensor>,
): Record<string, StoredTensor> {
  const out: Record<string, StoredTensor> = {};
  for (const [k, v] of Object.entries(r)) out[prefix + k] = v;
  return out;
}

/** Keys of `r` that start with `prefix`, with the prefix removed. */
export function unprefixed(
  prefix: string,
  r: Record<string, StoredTensor>,
): Record<string, StoredTensor> {
  const out: Record<string, StoredTensor> = {};
  for (const [k, v] of Object.entries(r)) if (k.startsWith(prefix)) out[k.slice(prefix.length)] = v;
  return out;
}
