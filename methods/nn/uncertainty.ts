/**
 * Monte-Carlo uncertainty of UA-MT (Yu et al., MICCAI 2019; yulequan/UA-MT
 * `code/train_LA_meanteacher_certainty_unlabel.py`): T stochastic teacher passes (dropout on, train mode, fresh input noise
 * `clamp(N(0, 0.1), -0.2, 0.2)` per pass), mean softmax, predictive entropy
 * `-sum_c p log(p + 1e-6)`, a threshold ramped from 0.75 ln C to ln C over training, and the
 * certainty mask `1[U < H]`. As the reference, the T passes are made as T/2 forwards over the
 * unlabeled batch repeated twice (so BN batch statistics see 2 Bu samples per pass).
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import type { Rng } from "./rng.ts";
import type { StepInfo } from "../types.ts";
import type { VNet } from "./vnet.ts";
import { sigmoidRampup } from "./ramps.ts";

/**
 * Input noise `clamp(randn * std, -clip, clip)` of `shape`, drawn from `rng`
 * (UA-MT: std 0.1, clip 0.2).
 */
export function clampedNoise(shape: number[], rng: Rng, std = 0.1, clip = 0.2): tf.Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const v = rng.fillNormal(new Float32Array(n), 0, std);
  for (let i = 0; i < n; i++) {
    const x = v[i]!;
    v[i] = x > clip ? clip : x < -clip ? -clip : x;
  }
  return tf.tensor(v, shape, "float32");
}

/** Options of {@link mcEntropy}. */
export interface McOptions {
  /** Total stochastic predictions per sample, T (8). */
  passes: number;
  /** Copies of the batch per forward (2 in UA-MT); `passes` must be a multiple. */
  repeats?: number;
  noiseRng: Rng;
  dropoutRng: Rng;
  noiseStd?: number;
  noiseClip?: number;
  /** Turns the network outputs into class probabilities [.., C] (default softmax of head 0). */
  toProbs?: (outputs: tf.Tensor5D[]) => tf.Tensor5D;
}

/** The MC hyper-parameters of the uncertainty-guided methods (UA-MT recipe: 8, 2, 0.1, 0.2). */
export type McHp = {
  /** MC dropout passes T. */
  mcPasses: number;
  /** Copies of the batch per MC forward. */
  mcRepeats: number;
  /** Input noise std and clamp. */
  noiseStd: number;
  noiseClip: number;
};

/** {@link McOptions} from a method's {@link McHp} and the step's seeded streams. */
export function mcOptions(hp: McHp, step: StepInfo): McOptions {
  return {
    passes: hp.mcPasses,
    repeats: hp.mcRepeats,
    noiseRng: step.random.noise,
    dropoutRng: step.random.dropout,
    noiseStd: hp.noiseStd,
    noiseClip: hp.noiseClip,
  };
}

/**
 * Predictive entropy [Bu, D, H, W] of the mean of T stochastic teacher predictions on `u`.
 * The teacher runs in train mode (dropout and BN batch stats; its running stats are updated,
 * as PyTorch does under `no_grad` in `train()` mode). No gradient flows.
 */
export function mcEntropy(teacher: VNet, u: tf.Tensor5D, opts: McOptions): tf.Tensor4D {
  const repeats = opts.repeats ?? 2;
  if (opts.passes % repeats !== 0) {
    throw new Error(`mcEntropy: passes ${opts.passes} is not a multiple of repeats ${repeats}`);
  }
  const toProbs = opts.toProbs ?? ((o: tf.Tensor5D[]) => tf.softmax(o[0]!, -1) as tf.Tensor5D);
  const bu = u.shape[0];
  return tf.tidy(() => {
    const rep = tf.concat(new Array<tf.Tensor5D>(repeats).fill(u), 0) as tf.Tensor5D;
    let sum: tf.Tensor | null = null;
    for (let i = 0; i < opts.passes / repeats; i++) {
      const next = tf.tidy(() => {
        const noisy = tf.add(
          rep,
          clampedNoise(rep.shape, opts.noiseRng, opts.noiseStd, opts.noiseClip),
        );
        const p = toProbs(
          teacher.forward(noisy as tf.Tensor5D, { training: true, dropoutRng: opts.dropoutRng }),
        );
        // sum over the `repeats` copies of each sample: [repeats, Bu, ...] -> [Bu, ...]
        const s = tf.sum(tf.reshape(p, [repeats, bu, ...p.shape.slice(1)]), 0);
        return sum === null ? s : tf.add(sum, s);
      });
      sum?.dispose();
      sum = next;
    }
    const mean = tf.div(sum!, opts.passes);
    return tf.neg(tf.sum(tf.mul(mean, tf.log(tf.add(mean, 1e-6))), -1)) as tf.Tensor4D;
  });
}

/** `(0.75 + 0.25 sigmoid_rampup(iter, maxIter)) * ln(nClasses)` (UA-MT: ln 2). */
export function uncertaintyThreshold(
  iteration: number,
  maxIterations: number,
  nClasses = 2,
): number {
  return (0.75 + 0.25 * sigmoidRampup(iteration, maxIterations)) * Math.log(nClasses);
}

/** Certainty mask `1[U < threshold]` as float32, shape of `entropy`. */
export function certaintyMask(entropy: tf.Tensor, threshold: number): tf.Tensor {
  return tf.tidy(() => tf.cast(tf.less(entropy, threshold), "float32"));
}

/**
 * The teacher's certainty mask `1[U < H(t)]` on `x` [B, D, H, W]: {@link mcEntropy} with the
 * method's {@link McHp} and the step's streams, thresholded by {@link uncertaintyThreshold}
 * (UA-MT's per-step recipe, also UG-MCL Eq. 3-4). `toProbs` as in {@link McOptions}.
 */
export function mcCertaintyMask(
  teacher: VNet,
  x: tf.Tensor5D,
  hp: McHp,
  step: StepInfo,
  nClasses: number,
  toProbs?: McOptions["toProbs"],
): tf.Tensor {
  const o = mcOptions(hp, step);
  const entropy = mcEntropy(teacher, x, toProbs ? { ...o, toProbs } : o);
  const mask = certaintyMask(
    entropy,
    uncertaintyThreshold(step.iteration, step.totalIterations, nClasses),
  );
  entropy.dispose();
  return mask;
}

/**
 * UA-MT masked consistency `sum(M * D) / (C * sum(M) + 1e-16)`: `d` [B,D,H,W,C] per-class
 * distances, `mask` [B,D,H,W] broadcast over the C classes.
 */
export function maskedConsistency(d: tf.Tensor, mask: tf.Tensor): tf.Scalar {
  return tf.tidy(() => {
    const c = d.shape[d.shape.length - 1]!;
    const m = tf.expandDims(mask, -1);
    return tf.div(tf.sum(tf.mul(m, d)), tf.add(tf.mul(c, tf.sum(mask)), 1e-16)) as tf.Scalar;
  });
}
