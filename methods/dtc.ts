/**
 * DTC, dual-task consistency (Luo et al., AAAI 2021; HiLab-git/DTC `code/train_la_dtc.py`,
 * `code/networks/vnet_sdf.py`, `code/utils/util.py`; spec methods.md §6). A V-Net with two
 * 1-channel heads, `tanh(out_conv)` (SDF) and `out_conv2` (seg logits, sigmoid):
 * `L = Dice(sigmoid(seg)_l, y) + 0.3 MSE(sdf_l, computeSdf(y)) + w(t) mean((sigmoid(-1500 sdf) - sigmoid(seg))^2)`
 * (the last term over the whole batch), `w(t) = 1.0 sigmoid_rampup(iter // 150, 40)`.
 * The BCE term the script computes is not in its loss and is not computed here.
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import type {
  BuildContext,
  Method,
  MethodDefinition,
  MethodState,
  StepInfo,
  StepLosses,
  TrainBatch,
} from "./types.ts";
import { Rng } from "./nn/rng.ts";
import { dtcHeads, VNet } from "./nn/vnet.ts";
import { diceLoss, mse } from "./nn/losses.ts";
import { disposeGrads, lossAndGrads, type Sgd } from "./nn/optim.ts";
import { consistencyWeight } from "./nn/ramps.ts";
import { computeSdf } from "./nn/sdf.ts";
import {
  channel,
  fullBatch,
  LA_SGD,
  labelValues,
  laLr,
  laSgd,
  readLosses,
  restoreSnapshot,
  rows,
  type SgdHp,
  snapshot,
} from "./nn/training.ts";

/** Hyper-parameters of {@link dtc}. */
export type DtcHp = SgdHp & {
  nFilters: number;
  dropout: number;
  /** Weight of the SDF regression loss (beta = 0.3). */
  beta: number;
  /** Sharpness k of the inverse transform sigmoid(-k * sdf) (1500). */
  k: number;
  /** Consistency weight C (1.0), ramp-up length (40) and "epoch" length (150). */
  consistency: number;
  consistencyRampup: number;
  rampupEpochLength: number;
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

class Dtc implements Method {
  readonly #net: VNet;
  readonly #opt: Sgd;
  readonly #hp: DtcHp;

  constructor(hp: DtcHp, ctx: BuildContext) {
    if (ctx.nClasses !== 2) {
      throw new Error(`dtc: binary segmentation only (nClasses 2, got ${ctx.nClasses})`);
    }
    this.#hp = hp;
    this.#net = new VNet({
      inChannels: ctx.inChannels,
      nFilters: hp.nFilters,
      heads: dtcHeads(1),
      dropoutP: hp.dropout,
    }, new Rng(ctx.initSeed));
    this.#opt = laSgd(this.#net, hp);
  }

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
    const cw = consistencyWeight(
      this.#hp.consistency,
      step.iteration,
      this.#hp.consistencyRampup,
      this.#hp.rampupEpochLength,
    );
    const x = fullBatch(batch);
    const aux: Record<string, tf.Tensor> = {};
    const { value, grads } = lossAndGrads(() => {
      const [sdf, seg] = this.#net.forward(x, { training: true, dropoutRng: step.random.dropout });
      const segL = channel(rows(seg!, 0, bl), 0);
      const dice = diceLoss(tf.sigmoid(segL), tf.equal(batch.labels, 1));
      const lsdf = mse(rows(sdf!, 0, bl), sdfGt);
      const cons = dtcConsistency(sdf!, seg!, this.#hp.k);
      aux.dice = tf.keep(dice);
      aux.sdf = tf.keep(lsdf);
      aux.consistency = tf.keep(cons);
      const sup = tf.add(dice, tf.mul(this.#hp.beta, lsdf));
      aux.supervised = tf.keep(sup);
      return tf.add(sup, tf.mul(cw, cons)) as tf.Scalar;
    }, this.#net.params);
    x.dispose();
    sdfGt.dispose();
    const lr = laLr(this.#hp, step.iteration, step.totalIterations);
    this.#opt.step(grads, lr);
    disposeGrads(grads);
    return await readLosses({ loss: value, ...aux }, { lr, consistencyWeight: cw });
  }

  /** Two channels [1 - p, p], p = sigmoid(seg head) (DTC tests `p > 0.5`). */
  predict(patch: tf.Tensor5D): tf.Tensor5D {
    return tf.tidy(() => {
      const p = tf.sigmoid(this.#net.forward(patch, { training: false })[1]!);
      return tf.concat([tf.sub(1, p), p], -1) as tf.Tensor5D;
    });
  }

  state(): MethodState {
    return snapshot(this.#net, this.#opt);
  }

  restore(s: MethodState): void {
    restoreSnapshot(s, this.#net, this.#opt);
  }

  dispose(): void {
    this.#net.dispose();
    this.#opt.dispose();
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
    nFilters: 16,
    dropout: 0.5,
    ...LA_SGD,
    beta: 0.3,
    k: 1500,
    consistency: 1.0,
    consistencyRampup: 40,
    rampupEpochLength: 150,
  },
  create: (hp, ctx) => new Dtc(hp, ctx),
};
