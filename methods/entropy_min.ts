/**
 * Entropy minimisation (Grandvalet & Bengio, NIPS 2004), the "Entropy Mini" row of UG-MCL
 * Table 3: the supervised V-Net loss on labeled images plus a ramped penalty on the mean
 * normalised predictive entropy of the unlabeled images,
 * `L = 0.5 * (CE + Dice) + w(t) * mean_voxels(-sum_c p_c log(p_c + 1e-6) / ln C)`,
 * `w(t) = C_w * sigmoid_rampup(iter // 150, 40)` as the LA consistency ramp.
 *
 * This file is also the worked example of README "Adding a method": the whole method is one
 * `trainStep` over shared blocks; {@link VNetMethod} (`methods/nn/method_base.ts`) supplies the
 * network, its SGD and LR schedule, predict, state/restore and dispose. Semantics of the entropy
 * term follow the common SSL4MIS-style normalisation by ln C [I: not checked against that
 * repository's script].
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import type { MethodDefinition, StepInfo, StepLosses, TrainBatch } from "./types.ts";
import { ceDiceLoss } from "./nn/losses.ts";
import { laRamp, rampedWeight, type RampHp } from "./nn/ramps.ts";
import { VNET_DEFAULTS, type VNetHp, VNetMethod } from "./nn/method_base.ts";
import { readLosses, SGD_CHOICES } from "./nn/training.ts";

/** Hyper-parameters of {@link entropyMin}: `consistency` is the final weight C_w of the entropy term. */
export type EntropyMinHp = VNetHp & RampHp;

/**
 * Mean normalised entropy of softmax probabilities over all voxels:
 * `mean(-sum_c p log(p + 1e-6)) / ln C` (0 for one-hot predictions, 1 for uniform ones).
 */
export function meanNormalisedEntropy(probs: tf.Tensor): tf.Scalar {
  return tf.tidy(() => {
    const c = probs.shape[probs.shape.length - 1]!;
    const h = tf.neg(tf.sum(tf.mul(probs, tf.log(tf.add(probs, 1e-6))), -1));
    return tf.div(tf.mean(h), Math.log(c)) as tf.Scalar;
  });
}

class EntropyMin extends VNetMethod<EntropyMinHp> {
  trainStep(batch: TrainBatch, step: StepInfo): Promise<StepLosses> {
    const w = rampedWeight(this.hp, step.iteration);
    const aux: Record<string, tf.Tensor> = {};
    const { loss, lr } = this.minimise(() => {
      const nl = batch.labeledImages.shape[0];
      const x = batch.unlabeledImages
        ? tf.concat([batch.labeledImages, batch.unlabeledImages], 0)
        : batch.labeledImages;
      const [logits] = this.net.forward(x, { training: true, dropoutRng: step.random.dropout });
      const labeledLogits = tf.slice(logits!, 0, nl);
      const { loss: sup, ce, dice } = ceDiceLoss(labeledLogits, batch.labels);
      const ent = batch.unlabeledImages
        ? meanNormalisedEntropy(tf.softmax(tf.slice(logits!, nl), -1))
        : tf.scalar(0);
      aux.ce = tf.keep(ce);
      aux.dice = tf.keep(dice);
      aux.entropy = tf.keep(ent);
      return tf.add(sup, tf.mul(ent, w)) as tf.Scalar;
    }, step);
    return readLosses({ loss, ...aux }, { lr, consistencyWeight: w });
  }
}

/** Registry entry: entropy minimisation on the unlabeled images. */
export const entropyMin: MethodDefinition<EntropyMinHp> = {
  id: "entropy-min",
  meta: {
    title: "Entropy Mini",
    paper: "Grandvalet & Bengio, NIPS 2004 (as a baseline in UG-MCL Table 3)",
    referenceCode:
      "none (formula from the paper; ln C normalisation as SSL4MIS-style baselines [I])",
    role: "baseline",
    reconstructed: false,
    notes: "Entropy over unlabeled voxels only; weight ramp as the LA consistency ramp.",
  },
  defaults: {
    ...VNET_DEFAULTS,
    ...laRamp(0.1),
  },
  choices: SGD_CHOICES,
  create: (hp, ctx) => new EntropyMin(hp, ctx),
};
