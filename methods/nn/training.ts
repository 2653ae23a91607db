/**
 * Small helpers shared by the V-Net methods: batch concatenation/splitting as the reference
 * scripts do it (`volume_batch = cat(labeled, unlabeled)`, `outputs[:labeled_bs]`), the SGD +
 * step-decay set-up of the LA scripts, and reading scalar losses back (UA-MT
 * `train_LA_meanteacher_certainty_unlabel.py`, DTC `train_la_dtc.py`).
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import type {
  BuildContext,
  Method,
  MethodState,
  StepInfo,
  StepLosses,
  StoredTensor,
  TrainBatch,
} from "../types.ts";
import { type Optimizer, polyLr, Sgd, stepLr } from "./optim.ts";
import { Rng } from "./rng.ts";
import { segHeads, VNet } from "./vnet.ts";

/** The LA protocol's optimisation hyper-parameters (spec methods.md §2.2). */
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
  lrPolicy: string;
};

/** Defaults of {@link SgdHp}: SGD 0.01, momentum 0.9, wd 1e-4, x0.1 every 2500 iterations. */
export const LA_SGD: SgdHp = {
  lr: 0.01,
  lrStep: 2500,
  lrGamma: 0.1,
  momentum: 0.9,
  weightDecay: 1e-4,
  lrPolicy: "step",
};

/** `torch.optim.SGD(model.parameters(), lr, momentum, weight_decay)` over `net`'s parameters. */
export function laSgd(net: VNet, hp: SgdHp): Sgd {
  checkLrPolicy("sgd", hp.lrPolicy);
  return new Sgd(net.params, { momentum: hp.momentum, weightDecay: hp.weightDecay });
}

/** Throw one line when `lrPolicy` is not a known value. */
export function checkLrPolicy(id: string, p: string): void {
  if (p !== "step" && p !== "poly") {
    throw new Error(`${id}: lrPolicy must be "step" or "poly", got ${JSON.stringify(p)}`);
  }
}

/** LR used by 0-based iteration `iteration` under the policy of {@link SgdHp}. */
export function laLr(hp: SgdHp, iteration: number, totalIterations: number): number {
  if (hp.lrPolicy === "poly") return polyLr(hp.lr, iteration, totalIterations, 0.9);
  return stepLr(hp.lr, iteration, hp.lrStep, hp.lrGamma);
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

/**
 * An optimizer's state as method-state entries: its tensors under `${name}.`, its scalars under
 * `extra[name]` (the checkpoint layout every method uses).
 */
export function optimizerEntries(name: string, opt: Optimizer): MethodState {
  const o = opt.state();
  return { tensors: prefixed(`${name}.`, o.tensors), extra: { [name]: o.extra } };
}

/** Inverse of {@link optimizerEntries}. */
export function restoreOptimizer(s: MethodState, name: string, opt: Optimizer): void {
  opt.restore({
    tensors: unprefixed(`${name}.`, s.tensors),
    extra: (s.extra[name] ?? {}) as Record<string, number>,
  });
}

/** Snapshot of a student (+ optional teacher) and its optimizer. */
export function snapshot(student: VNet, opt: Optimizer, teacher?: VNet): MethodState {
  const o = optimizerEntries("optim", opt);
  return {
    tensors: {
      ...student.state("student."),
      ...(teacher ? teacher.state("teacher.") : {}),
      ...o.tensors,
    },
    extra: o.extra,
  };
}

/** Inverse of {@link snapshot}. */
export function restoreSnapshot(
  s: MethodState,
  student: VNet,
  opt: Optimizer,
  teacher?: VNet,
): void {
  student.restore(s.tensors, "student.");
  teacher?.restore(s.tensors, "teacher.");
  restoreOptimizer(s, "optim", opt);
}

/** Hyper-parameters every {@link SingleVNetMethod} has. */
export type SingleVNetHp = SgdHp & {
  /** V-Net base width (`n_filters`). */
  nFilters: number;
  /** Dropout3d probability on x5 and x9. */
  dropout: number;
};

/**
 * Base of methods that train one segmentation V-Net with the LA SGD set-up (USB's
 * AlgorithmBase pattern: a subclass overrides the train-step hook only). It builds the network
 * from `ctx.initSeed`, and implements `predict` (softmax in eval mode), `state`/`restore`
 * (weights, BN statistics, optimizer buffers) and `dispose`.
 */
export abstract class SingleVNetMethod<H extends SingleVNetHp> implements Method {
  protected readonly net: VNet;
  protected readonly opt: Sgd;

  constructor(protected readonly hp: H, ctx: BuildContext) {
    this.net = new VNet({
      inChannels: ctx.inChannels,
      nFilters: hp.nFilters,
      heads: segHeads(ctx.nClasses),
      dropoutP: hp.dropout,
    }, new Rng(ctx.initSeed));
    this.opt = laSgd(this.net, hp);
  }

  abstract trainStep(batch: TrainBatch, step: StepInfo): Promise<StepLosses>;

  predict(patch: tf.Tensor5D): tf.Tensor5D {
    return tf.tidy(() =>
      tf.softmax(this.net.forward(patch, { training: false })[0]!, -1) as tf.Tensor5D
    );
  }

  state(): MethodState {
    return snapshot(this.net, this.opt);
  }

  restore(s: MethodState): void {
    restoreSnapshot(s, this.net, this.opt);
  }

  dispose(): void {
    this.net.dispose();
    this.opt.dispose();
  }
}
