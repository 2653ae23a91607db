/**
 * The contract every method implements. A method builds its networks, takes one training
 * step on a batch, and returns class probabilities for a patch; it never evaluates itself
 * (the harness's evaluator does, by sliding window over whole volumes).
 *
 * Model on USB's AlgorithmBase: a new algorithm supplies one train-step hook; everything
 * around it (sampling, schedule, evaluation, storage) is the harness's.
 * @module
 */
import type * as tf from "@tensorflow/tfjs-core";
import type { Rng, RngState } from "./nn/rng.ts";
import type { VNet } from "./nn/vnet.ts";

/** Hyper-parameter values: plain JSON scalars, so run specs hash canonically. */
export type HyperValue = number | string | boolean;
/** A method's hyper-parameters by name. */
export type HyperParams = Record<string, HyperValue>;

/** Where a method comes from and how faithful it is. */
export interface MethodMeta {
  /** Human title as printed in tables, e.g. "UA-MT". */
  title: string;
  /** Citation, e.g. "Yu et al., MICCAI 2019". */
  paper: string;
  /** Reference code the semantics follow, e.g. "yulequan/UA-MT train_LA_meanteacher_certainty_unlabel.py". */
  referenceCode: string;
  /** "proposed" for a seed paper's own method, "baseline" for the methods papers compare to. */
  role: "proposed" | "baseline";
  /** True when the paper's full text/code was unavailable and the method is a reconstruction. */
  reconstructed: boolean;
  /** False for supervised-only methods (they ignore `unlabeledImages`; tables show 0 unlabeled). */
  usesUnlabeled?: boolean;
  /** Short notes on deviations, options that switch between paper and code, etc. */
  notes?: string;
  /**
   * Smallest training-patch edge (voxels) the network is meaningful at, when it needs more
   * than the 16 that any 4-downsampling net accepts: e.g. 32 for MASSL's 5-level encoder,
   * whose InstanceNorm zeroes a 1-voxel bottleneck. Benchmarks with small patches (the
   * synthetic default) give such rows their own patch.
   */
  minTrainPatch?: number;
}

/**
 * One training batch, tensors in NDHWC order (D,H,W = the volume's x,y,z axes).
 * The harness owns these tensors and disposes them after `trainStep` returns.
 */
export interface TrainBatch {
  /** Labeled images, shape [Bl, D, H, W, C], float32. */
  labeledImages: tf.Tensor5D;
  /** Class-index labels of the labeled images, shape [Bl, D, H, W], int32. */
  labels: tf.Tensor4D;
  /** Unlabeled images, shape [Bu, D, H, W, C], float32; null when the batch has none. */
  unlabeledImages: tf.Tensor5D | null;
}

/** Seeded random streams a method may draw from during training (never `Math.random`). */
export interface StepRandom {
  /** Input noise (e.g. the teacher's clamp(N(0, 0.1), -0.2, 0.2)). */
  noise: Rng;
  /** Dropout masks. */
  dropout: Rng;
}

/** Where training stands when a step is taken. */
export interface StepInfo {
  /** 0-based iteration index (the reference code's `iter_num` before increment). */
  iteration: number;
  /** Total iterations of the run (for ramps and LR schedules). */
  totalIterations: number;
  /** Seeded streams for this run. */
  random: StepRandom;
}

/** Named scalar losses of one step; `loss` is the total that was minimised. */
export type StepLosses = { loss: number } & Record<string, number>;

/** A serialisable tensor (weights, optimizer moments, running statistics). */
export interface StoredTensor {
  shape: number[];
  values: Float32Array;
}

/** Everything needed to resume training bit-for-bit: weights plus extra state. */
export interface MethodState {
  /** Tensors by stable name (weights, BN statistics, EMA weights, optimizer slots). */
  tensors: Record<string, StoredTensor>;
  /** Non-tensor state (step counters, RNG states, learned scalars) as JSON. */
  extra: Record<string, unknown>;
  /** RNG states of the method's own streams, if it keeps any. */
  rng?: Record<string, RngState>;
}

/** What the harness tells a method when it builds it. */
export interface BuildContext {
  /** Seed for weight initialisation (derived from the run identity, purpose "init"). */
  initSeed: number;
  /** Image channels. */
  inChannels: number;
  /** Classes including background (>= 2); predictions have this many channels. */
  nClasses: number;
}

/** A built, trainable method instance. */
export interface Method {
  /**
   * One optimisation step on `batch`. Must not keep references to the batch tensors and
   * must leave `tf.memory().numTensors` unchanged across steps (use tf.tidy / dispose).
   */
  trainStep(batch: TrainBatch, step: StepInfo): StepLosses | Promise<StepLosses>;
  /**
   * Class probabilities for a patch [B, D, H, W, C] -> [B, D, H, W, nClasses] in inference
   * mode (no dropout, BN running statistics); they sum to 1 over the last axis.
   * The caller disposes the result.
   */
  predict(patch: tf.Tensor5D): tf.Tensor5D;
  /**
   * Optional: the V-Net whose eval-mode head-0 softmax `predict` returns (null when `predict`
   * is anything else), so the evaluator may run its fused native forward instead.
   */
  inferenceNetwork?(): VNet | null;
  /**
   * Snapshot of everything needed to resume. On a backend without synchronous readback
   * (webgpu under Deno) take it through `captureState` (`nn/readback.ts`), as the harness does.
   */
  state(): MethodState;
  /** Restore a snapshot taken with `state()` (same hyper-parameters). */
  restore(state: MethodState): void;
  /** Free every tensor the method holds. */
  dispose(): void;
}

/**
 * A method as registered: metadata, documented defaults, and a factory.
 * `defaults` are the paper's protocol; benchmarks override them by name.
 */
export interface MethodDefinition<H extends HyperParams = HyperParams> {
  /** Registry id, kebab-case, e.g. "ua-mt". */
  id: string;
  meta: MethodMeta;
  /** Default hyper-parameters (the reference protocol). */
  defaults: H;
  /**
   * Allowed values of the choice hyper-parameters (e.g. `lrPolicy: ["step", "poly"]`), checked
   * by {@link resolveHyperParams} for defaults and overrides alike.
   */
  choices?: { readonly [K in keyof H]?: readonly H[K][] };
  /**
   * Constraints across hyper-parameters that a choice list cannot say (e.g. "mcPasses is a
   * multiple of mcRepeats"): throws one line. Run by {@link resolveHyperParams}.
   */
  validate?(hp: H): void;
  /** Build an instance. `hp` is `defaults` merged with overrides. */
  create(hp: H, ctx: BuildContext): Method;
}

/**
 * Merge overrides into defaults, rejecting unknown names, type changes, values outside a declared
 * choice list and violated constraints ({@link MethodDefinition.validate}) with one line.
 */
export function resolveHyperParams<H extends HyperParams>(
  def: MethodDefinition<H>,
  overrides: Partial<Record<string, HyperValue>> = {},
): H {
  const out: HyperParams = { ...def.defaults };
  for (const [k, v] of Object.entries(overrides)) {
    if (v === undefined) continue;
    if (!(k in def.defaults)) {
      throw new Error(
        `method ${def.id}: unknown hyper-parameter '${k}' (expected one of ${
          Object.keys(def.defaults).join(", ")
        })`,
      );
    }
    if (typeof v !== typeof def.defaults[k]) {
      throw new Error(
        `method ${def.id}: hyper-parameter '${k}' must be a ${typeof def.defaults[k]}, got ${
          JSON.stringify(v)
        }`,
      );
    }
    out[k] = v;
  }
  for (const [k, allowed] of Object.entries(def.choices ?? {}) as [string, HyperValue[]][]) {
    if (!allowed.includes(out[k]!)) {
      throw new Error(
        `method ${def.id}: ${k} must be one of ${
          allowed.map((a) => JSON.stringify(a)).join(", ")
        }, got ${JSON.stringify(out[k])}`,
      );
    }
  }
  def.validate?.(out as H);
  return out as H;
}
