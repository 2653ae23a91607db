/**
 * What MASSL training computes around its network (Chen et al., MICCAI 2019, arXiv
 * 1907.12303; official code ShuaiChenBIGR/MASSL-segmentation-framework): the attention
 * targets and weighted reconstruction loss of Eq. 1, the binary segmentation target, and the
 * reference scripts' step learning-rate schedule. The network is methods/nn/massl_net.ts.
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import type { LrSchedule } from "./training.ts";

/**
 * The MASSL attention targets and size weights (paper Eq. 1; official code
 * `Network_training_SSL_epoch_attention_BraTS18.py`, mode 'fuse', `loss_weighted=True`):
 * `T_b = (1 - P) x`, `T_f = P x`, `w_b = sum(1-P) / (sum(1-P) + sum(P))`,
 * `w_f = sum(P) / (sum(1-P) + sum(P))`, sums over the whole batch. `p` [B,D,H,W,1], `x`
 * [B,D,H,W,C] (P broadcasts over image channels).
 */
export function masslAttentionTargets(
  p: tf.Tensor,
  x: tf.Tensor,
): { back: tf.Tensor; fore: tf.Tensor; wBack: tf.Scalar; wFore: tf.Scalar } {
  const q = tf.sub(1, p);
  const back = tf.mul(q, x);
  const fore = tf.mul(p, x);
  const sb = tf.sum(q), sf = tf.sum(p);
  const total = tf.add(sb, sf);
  return { back, fore, wBack: tf.div(sb, total), wFore: tf.div(sf, total) };
}

/**
 * MASSL reconstruction loss `w_b * mean((R_b - T_b)^2) + w_f * mean((R_f - T_f)^2)` (paper
 * Eq. 1; `nn.MSELoss` mean reduction as the code). `rec` [B,D,H,W,2C]: channels [0, C) are the
 * background reconstruction, [C, 2C) the foreground. `weighted=false` uses w_b = w_f = 1.
 * Gradient flows through `p` unless the caller detaches it.
 */
export function masslAttentionLoss(
  rec: tf.Tensor5D,
  p: tf.Tensor5D,
  x: tf.Tensor5D,
  weighted = true,
): { loss: tf.Scalar; mseBack: tf.Scalar; mseFore: tf.Scalar; wFore: tf.Scalar } {
  const c = x.shape[4];
  if (rec.shape[4] !== 2 * c) {
    throw new Error(`masslAttentionLoss: rec has ${rec.shape[4]} channels, expected ${2 * c}`);
  }
  const { back, fore, wBack, wFore } = masslAttentionTargets(p, x);
  const [n, d, h, w] = x.shape;
  const rb = tf.slice(rec, [0, 0, 0, 0, 0], [n, d, h, w, c]);
  const rf = tf.slice(rec, [0, 0, 0, 0, c], [n, d, h, w, c]);
  const mseBack = tf.mean(tf.squaredDifference(rb, back)) as tf.Scalar;
  const mseFore = tf.mean(tf.squaredDifference(rf, fore)) as tf.Scalar;
  const loss = weighted
    ? tf.add(tf.mul(wBack, mseBack), tf.mul(wFore, mseFore)) as tf.Scalar
    : tf.add(mseBack, mseFore) as tf.Scalar;
  return { loss, mseBack, mseFore, wFore };
}

/**
 * The reference scripts' `StepLR(step_size, gamma)` with `scheduler.step()` called BEFORE
 * each optimizer step (`Network_training_SSL_epoch_attention_BraTS18.py`): the LR used at
 * 0-based iteration `i` is `base * gamma^floor((i + 1) / stepSize)`.
 */
export function masslLr(base: number, iteration: number, stepSize = 500, gamma = 0.5): number {
  return base * Math.pow(gamma, Math.floor((iteration + 1) / stepSize));
}

/**
 * {@link masslLr} of `base` as a schedule (for `MethodBase.optimizer`), counting iterations
 * from `start` (the first iteration of a training phase).
 */
export function masslSchedule(
  base: number,
  stepSize: number,
  gamma: number,
  start = 0,
): LrSchedule {
  return (iteration) => masslLr(base, iteration - start, stepSize, gamma);
}

/** `labels == 1` as float32 [B,D,H,W,1] (binary whole-tumour / lesion target). */
export function foregroundTarget(labels: tf.Tensor4D): tf.Tensor5D {
  const [b, d, h, w] = labels.shape;
  return tf.reshape(tf.cast(tf.equal(labels, 1), "float32"), [b, d, h, w, 1]) as tf.Tensor5D;
}
