/**
 * DTC, dual-task consistency (Luo et al., AAAI 2021; HiLab-git/DTC `code/train_la_dtc.py`,
 * `code/networks/vnet_sdf.py`, `code/utils/util.py` `compute_sdf`). A V-Net with two
 * 1-channel heads, `tanh(out_conv)` (SDF) and `out_conv2` (seg logits, sigmoid):
 * `L = Dice(sigmoid(seg)_l, y) + 0.3 MSE(sdf_l, computeSdf(y)) + w(t) mean((sigmoid(-1500 sdf) - sigmoid(seg))^2)`
 * (the last term over the whole batch), `w(t) = 1.0 sigmoid_rampup(iter // 150, 40)`.
 * The BCE term the script computes is not in its loss and is not computed here.
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import type { MethodDefinition, StepInfo, StepLosses, TrainBatch } from "./types.ts";
import { dtcHeads } from "./nn/vnet.ts";
import { diceLoss, mse } from "./nn/losses.ts";
import { binaryOnly, VNET_DEFAULTS, type VNetHp, VNetMethod } from "./nn/method_base.ts";
import { twoClass } from "./nn/massl_net.ts";
import { laRamp, rampedWeight, type RampHp } from "./nn/ramps.ts";
import { computeSdf } from "./nn/sdf.ts";
import { channel, fullBatch, labelValues, readLosses, rows, SGD_CHOICES } from "./nn/training.ts";

/** Hyper-parameters of {@link dtc} (consistency weight C 1.0, ramp-up 40 "epochs" of 150). */
export type DtcHp = VNetHp & RampHp & {
  /** Weight of the SDF regression loss (beta = 0.3). */
  beta: number;
  /** Sharpness k of the inverse transform sigmoid(-k * sdf) (1500). */
  k: number;
};

/**
 * DTC's dual-task consistency `mean((sigmoid(-k * sdf) - sigmoid(segLogits))^2)`
 * (`dis_to_mask = torch.sigmoid(-1500*outputs_tanh)`), any shapes that broadcast.
 */
export function dtcConsistency(sdf: tf.Tensor, segLogits: tf.Tensor, k = 1500): tf.Scalar {
  return tf.tidy(() =>
    tf.mean(tf.squaredDifference(tf.sigmoid(tf.mul(-k, sdf)), tf.sigmoid(segLogits)))
  );
}

class Dtc extends VNetMethod<DtcHp> {
  async trainStep(batch: TrainBatch, step: StepInfo): Promise<StepLosses> {
    const [bl, d, h, w] = batch.labels.shape;
    // compute_sdf on the labeled patches (CPU, as the reference does with numpy/scipy).
    const sdfGt = tf.tensor5d(computeSdf(await labelValues(batch), bl, [d, h, w]), [
      bl,
      d,
      h,
      w,
      1,
    ]);
    const cw = rampedWeight(this.hp, step.iteration);
    const x = fullBatch(batch);
    const aux: Record<string, tf.Tensor> = {};
    const { loss, lr } = this.minimise(() => {
      const [sdf, seg] = this.net.forward(x, { training: true, dropoutRng: step.random.dropout });
      const segL = channel(rows(seg!, 0, bl), 0);
      const dice = diceLoss(tf.sigmoid(segL), tf.equal(batch.labels, 1));
      const lsdf = mse(rows(sdf!, 0, bl), sdfGt);
      const cons = dtcConsistency(sdf!, seg!, this.hp.k);
      aux.dice = tf.keep(dice);
      aux.sdf = tf.keep(lsdf);
      aux.consistency = tf.keep(cons);
      const sup = tf.add(dice, tf.mul(this.hp.beta, lsdf));
      aux.supervised = tf.keep(sup);
      return tf.add(sup, tf.mul(cw, cons)) as tf.Scalar;
    }, step);
    x.dispose();
    sdfGt.dispose();
    return await readLosses({ loss, ...aux }, { lr, consistencyWeight: cw });
  }
}

/** Registry entry: DTC. */
export const dtc: MethodDefinition<DtcHp> = {
  id: "dtc",
  meta: {
    title: "DTC",
    paper:
      "Luo et al., Semi-supervised Medical Image Segmentation through Dual-task Consistency, AAAI 2021",
    referenceCode: "HiLab-git/DTC code/train_la_dtc.py, code/networks/vnet_sdf.py",
    role: "baseline",
    reconstructed: false,
    notes: "SDF targets from methods/nn/sdf.ts computeSdf per labeled patch; an all-foreground " +
      "patch gets a zero target (DTC would give NaN).",
  },
  defaults: {
    ...VNET_DEFAULTS,
    beta: 0.3,
    k: 1500,
    ...laRamp(1.0),
  },
  choices: SGD_CHOICES,
  create: (hp, ctx) =>
    new Dtc(hp, binaryOnly("dtc", ctx), {
      heads: dtcHeads(1),
      // Two channels [1 - p, p], p = sigmoid(seg head) (DTC tests `p > 0.5`).
      predict: (o) => twoClass(tf.sigmoid(o[1]!) as tf.Tensor5D),
    }),
};
