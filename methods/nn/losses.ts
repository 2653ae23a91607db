/**
 * Loss functions of the reproduced methods, on NDHWC tensors (classes on the last axis).
 *
 * References: UA-MT / DTC `code/utils/losses.py` (`dice_loss`, `softmax_mse_loss`),
 * MASSL `module/dice_loss.py` (`DiceCoefficientLF`), PyTorch `F.cross_entropy`,
 * `nn.MSELoss`, `F.binary_cross_entropy_with_logits`.
 * All return scalars with mean/sum reductions exactly as the references.
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { fusedSoftmax, fusedSoftmaxCrossEntropy, hasFusedLossHead } from "./native/loss_head.ts";

/**
 * `F.cross_entropy(logits, labels)` with mean reduction: softmax over the LAST axis of
 * `logits` [..., C], `labels` [...] int32 class indices. Reference: UA-MT `train_LA.py`.
 * One fused kernel (and one for its gradient) on the native cpu layer.
 */
export function crossEntropy(logits: tf.Tensor, labels: tf.Tensor): tf.Scalar {
  if (hasFusedLossHead()) return fusedSoftmaxCrossEntropy(logits, labels);
  return tf.tidy(() => {
    const c = logits.shape[logits.shape.length - 1]!;
    const logp = tf.logSoftmax(logits, -1);
    const onehot = tf.oneHot(tf.cast(labels, "int32"), c);
    return tf.neg(tf.mean(tf.sum(tf.mul(logp, onehot), -1)));
  });
}

/**
 * UA-MT soft Dice loss `1 - (2 sum(p g) + 1e-5) / (sum(p^2) + sum(g^2) + 1e-5)` over the
 * whole tensor. Reference: UA-MT `code/utils/losses.py` `dice_loss(score, target)`.
 */
export function diceLoss(p: tf.Tensor, g: tf.Tensor): tf.Scalar {
  return tf.tidy(() => {
    const gf = tf.cast(g, "float32");
    const smooth = 1e-5;
    const intersect = tf.sum(tf.mul(p, gf));
    const ySum = tf.sum(tf.mul(gf, gf));
    const zSum = tf.sum(tf.mul(p, p));
    return tf.sub(
      1,
      tf.div(tf.add(tf.mul(2, intersect), smooth), tf.add(tf.add(zSum, ySum), smooth)),
    );
  });
}

/**
 * MASSL Dice loss `1 - 2 sum(p g) / (sum(p) + sum(g) + 1e-4)` over the whole tensor.
 * Reference: ShuaiChenBIGR/MASSL `module/dice_loss.py` `DiceCoefficientLF`.
 */
export function masslDiceLoss(p: tf.Tensor, g: tf.Tensor): tf.Scalar {
  return tf.tidy(() => {
    const gf = tf.cast(g, "float32");
    const num = tf.mul(2, tf.sum(tf.mul(p, gf)));
    const den = tf.add(tf.add(tf.sum(p), tf.sum(gf)), 1e-4);
    return tf.sub(1, tf.div(num, den));
  });
}

/**
 * `softmax_mse_loss(a, b)`: elementwise `(softmax(a) - softmax(b))^2` (no reduction), softmax
 * over the last axis. Reference: UA-MT `code/utils/losses.py` `softmax_mse_loss`.
 */
export function softmaxMse(aLogits: tf.Tensor, bLogits: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.squaredDifference(softmaxLast(aLogits), softmaxLast(bLogits)));
}

/**
 * Softmax over the last axis (`F.softmax(x, dim=1)` on NCDHW): tfjs's op, or on the native cpu
 * layer one kernel whose gradient is one kernel too (tfjs's gradient is four).
 */
export function softmaxLast(logits: tf.Tensor): tf.Tensor {
  return hasFusedLossHead() ? fusedSoftmax(logits) : tf.softmax(logits, -1);
}

/** `nn.MSELoss()` (mean reduction): `mean((a - b)^2)`. Reference: DTC `train_la_dtc.py`. */
export function mse(a: tf.Tensor, b: tf.Tensor): tf.Scalar {
  return tf.tidy(() => tf.mean(tf.squaredDifference(a, b)));
}

/**
 * `F.binary_cross_entropy_with_logits(x, z)` with mean reduction, in the stable form
 * `max(x, 0) - x z + log(1 + exp(-|x|))`. Reference: DTC `train_la_dtc.py` (`BCEWithLogitsLoss`).
 */
export function bceWithLogits(logits: tf.Tensor, targets: tf.Tensor): tf.Scalar {
  return tf.tidy(() => {
    const z = tf.cast(targets, "float32");
    const pos = tf.relu(logits);
    const soft = tf.log1p(tf.exp(tf.neg(tf.abs(logits))));
    return tf.mean(tf.add(tf.sub(pos, tf.mul(logits, z)), soft));
  });
}

/**
 * The LA supervised loss `0.5 * (CE(logits, y) + Dice(softmax(logits)[..., 1], y == 1))`.
 * Reference: UA-MT `train_LA.py`, `train_LA_meanteacher_certainty_unlabel.py`.
 * Returns the three scalars (total, ce, dice).
 */
export function ceDiceLoss(
  logits: tf.Tensor,
  labels: tf.Tensor,
): { loss: tf.Scalar; ce: tf.Scalar; dice: tf.Scalar } {
  const ce = crossEntropy(logits, labels);
  const dice = tf.tidy(() => {
    const c = logits.shape[logits.shape.length - 1]!;
    const rank = logits.shape.length;
    const begin = new Array<number>(rank).fill(0);
    begin[rank - 1] = 1;
    const size = [...logits.shape.slice(0, rank - 1), 1];
    if (c < 2) throw new Error("ceDiceLoss: needs >= 2 classes");
    const p1 = tf.reshape(tf.slice(softmaxLast(logits), begin, size), labels.shape);
    return diceLoss(p1, tf.equal(labels, 1));
  });
  const loss = tf.tidy(() => tf.mul(0.5, tf.add(ce, dice)) as tf.Scalar);
  return { loss, ce, dice };
}
