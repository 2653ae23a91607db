/**
 * UG-MCL, uncertainty-guided mutual consistency learning (Zhang et al., Artificial Intelligence
 * in Medicine 2022, arXiv 2112.02508v2; released code YichiZhang98/UG-MCL
 * `code/train_UGMCL_3D.py`, `code/networks/unet_3D.py`).
 *
 * Student + EMA teacher (mean teacher, decay 0.99 with warm-up `min(1 - 1/(t+1), 0.99)`), both
 * dual-task networks with a segmentation output `f_seg` (softmax) and a signed-distance output
 * `f_dis` (tanh). Per step, on the batch `x = cat(labeled, unlabeled)` (as the code):
 *
 * - Eq. 2 supervised loss on the labeled rows: `L_sup = L_dice + L_ce + L_dis`.
 * - Eq. 3 uncertainty: T = 8 MC-dropout teacher passes (4 forwards over the batch repeated twice,
 *   fresh `clamp(N(0, 0.1), -0.2, 0.2)` input noise each), `u = -sum_c p_c log(p_c + 1e-6)` of the
 *   mean softmax; certainty mask `M = 1[u < u_th]`, `u_th = (3/4 + 1/4 sigmoid_rampup(iter,
 *   maxIter)) ln 2` (the "3/4 U_max -> U_max" ramp of UA-MT).
 * - Eq. 4 intra-task consistency against the teacher's outputs on the noisy batch:
 *   `L_itc = beta sum(M ||f_seg - f'_seg||^2)/sum(M) + (1 - beta) sum(M ||f_dis - f'_dis||^2)/sum(M)`,
 *   each implemented as UA-MT's masked mean over certain voxels AND channels
 *   (`sum(M D) / (C sum(M) + 1e-16)`, {@link maskedConsistency}); `beta = 0.75` (Table 2).
 * - Eqs. 5-6 cross-task consistency on the whole batch:
 *   `L_ctc = mean((T^-1(f_dis) - f_seg)^2)`, `T^-1(z) = sigmoid(-1500 z)` (the code's sign: SDF is
 *   negative inside).
 * - Eq. 7 `L = L_sup + lambda(t) L_itc + lambda(t) L_ctc`, `lambda(t) = 0.1 sigmoid_rampup(iter //
 *   150, 40)` (LA protocol; the paper prints the ramp without the square, the code squares).
 *
 * Paper mode (`referenceCode: false`, default) — our reading of the paper, with DTC choices where
 * the paper is silent [I]: the backbone is DTC's two-head V-Net (`tanh(out_conv)` 1-channel SDF
 * head + `out_conv2` 2-channel seg logits), `L_dis = MSE(f_dis, computeSdf(y))` (DTC's normalised
 * SDF target, negative inside), `f_seg` in Eqs. 4/6 = softmax probabilities (Eq. 6 uses the
 * foreground channel against the 1-channel SDF), Eq. 2 unweighted (`supervisedScale` 1).
 *
 * `referenceCode: true` reproduces the released BraTS script's deviations from the paper:
 * - one seg head; the "SDF" is `tanh` of the SAME two logits (`dis = self.tanh(final)`), 2 channels;
 * - no SDF regression target: the SDF output is supervised through the inverse transform,
 *   `L_dis = dice_loss(sigmoid(-1500 tanh(logits))[..., 1], y == 1)`;
 * - `L_sup = 0.5 (L_ce + L_dice + L_dis)`;
 * - `L_itc = 0.5 sum(M D_seg) / (2 sum(M) + 1e-16)`: seg branch only, extra 0.5 factor (`beta` and
 *   `supervisedScale` are ignored);
 * - `L_ctc = mean((sigmoid(-1500 tanh(logits)) - softmax(logits))^2)` over BOTH channels. Note:
 *   that term is zero only where the logits are 0 (a confident two-class voxel cannot satisfy both
 *   channels: channel c agrees only if `l_c < 0` exactly when `p_c -> 1`), so it pulls logits
 *   toward 0 — reproduced, not fixed;
 * - consistency ramp-up 200 "epochs" (`--consistency_rampup 200`) when `consistencyRampup` is -1;
 * - the code's 3D U-Net (InstanceNorm, dropout 0.3) is NOT reproduced: the V-Net is kept, as the
 *   paper states for all experiments.
 *
 * Loss switches (Table 1 rows): `useLdis`, `useLitc`, `useLctc` remove exactly their terms;
 * `L_seg` is always on. Row (3) "regression branch removed" is `useLdis: false, beta: 1`.
 * `itcScope` picks the rows of L_itc: "all" (the code: labeled + unlabeled) or "unlabeled";
 * the paper does not say.
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import type { BuildContext, MethodDefinition, StepInfo, StepLosses, TrainBatch } from "./types.ts";
import type { UaMtHp } from "./ua_mt.ts";
import { type HeadSpec, segHeads } from "./nn/vnet.ts";
import { ceDiceLoss, diceLoss, mse, softmaxMse } from "./nn/losses.ts";
import { binaryOnly, VNET_DEFAULTS, VNetMethod } from "./nn/method_base.ts";
import { rampedWeight } from "./nn/ramps.ts";
import { computeSdf } from "./nn/sdf.ts";
import { clampedNoise, maskedConsistency, mcCertaintyMask } from "./nn/uncertainty.ts";
import { channel, fullBatch, labelValues, readLosses, rows, SGD_CHOICES } from "./nn/training.ts";

/**
 * Hyper-parameters of {@link ugMcl}: UA-MT's (student/teacher, ramp, MC passes) plus the switches
 * below; `consistencyRampup` -1 = protocol default (40 paper/LA, 200 referenceCode/BraTS).
 */
export type UgMclHp = UaMtHp & {
  /** Reproduce the released BraTS code's deviations (see the module doc). */
  referenceCode: boolean;
  /** Eq. 4 balance between the seg (beta) and SDF (1 - beta) intra-task terms (0.75). */
  beta: number;
  /** Table 1 loss switches: SDF supervision L_dis, intra-task L_itc, cross-task L_ctc. */
  useLdis: boolean;
  useLitc: boolean;
  useLctc: boolean;
  /** Rows of L_itc: "all" (labeled + unlabeled, the code) or "unlabeled". */
  itcScope: "all" | "unlabeled";
  /** Factor on Eq. 2 in paper mode (1 = Eq. 2 as printed; the code's 0.5 is fixed in referenceCode). */
  supervisedScale: number;
  /** Weight of L_dis inside L_sup (1). */
  disWeight: number;
  /** Sharpness k of the inverse transform sigmoid(-k z) (1500). */
  k: number;
};

/** Effective consistency ramp-up length (resolves the -1 default). */
export function ugMclRampup(hp: Pick<UgMclHp, "consistencyRampup" | "referenceCode">): number {
  if (hp.consistencyRampup >= 0) return hp.consistencyRampup;
  return hp.referenceCode ? 200 : 40;
}

/** Heads of the paper-mode dual-task V-Net: DTC's `tanh(out_conv)` SDF (1 ch), `out_conv2` seg. */
export function ugMclHeads(nClasses: number): HeadSpec[] {
  return [
    { key: "out_conv", channels: 1, activation: "tanh" },
    { key: "out_conv2", channels: nClasses, activation: "none" },
  ];
}

/** The two outputs of a UG-MCL network: seg logits [B,...,C] and the SDF output. */
export interface DualOutputs {
  seg: tf.Tensor5D;
  /** Paper mode: [B,...,1] tanh head; referenceCode: tanh(seg) [B,...,C]. */
  sdf: tf.Tensor5D;
}

/** Split a network's head outputs into {@link DualOutputs} (no tidy; call inside one). */
export function dualOutputs(outs: tf.Tensor5D[], referenceCode: boolean): DualOutputs {
  if (referenceCode) return { seg: outs[0]!, sdf: tf.tanh(outs[0]!) };
  return { seg: outs[1]!, sdf: outs[0]! };
}

/**
 * Eq. 4 intra-task consistency. Paper: `beta mm(softmaxMse(s, t), M) + (1 - beta) mm((d_s -
 * d_t)^2, M)`, `mm(D, M) = sum(M D) / (C sum(M) + 1e-16)` (mean over certain voxels and channels).
 * referenceCode: `0.5 mm(softmaxMse(s, t), M)` (`train_UGMCL_3D.py`: `0.5 * sum(mask *
 * dist) / (2 * sum(mask) + 1e-16)`). `mask` [B,D,H,W] broadcasts over channels. A term whose
 * weight is 0 is not computed.
 */
export function intraTaskConsistency(
  student: DualOutputs,
  teacher: DualOutputs,
  mask: tf.Tensor,
  opts: { referenceCode: boolean; beta: number },
): tf.Scalar {
  return tf.tidy(() => {
    const segTerm = () => maskedConsistency(softmaxMse(student.seg, teacher.seg), mask);
    if (opts.referenceCode) return tf.mul(0.5, segTerm()) as tf.Scalar;
    let out: tf.Scalar = tf.scalar(0);
    if (opts.beta !== 0) out = tf.add(out, tf.mul(opts.beta, segTerm()));
    if (opts.beta !== 1) {
      const d = maskedConsistency(tf.squaredDifference(student.sdf, teacher.sdf), mask);
      out = tf.add(out, tf.mul(1 - opts.beta, d));
    }
    return out;
  });
}

/**
 * Eq. 6 cross-task consistency `mean((sigmoid(-k f_dis) - f_seg)^2)`. Paper mode: `f_dis` has
 * 1 channel and is compared with the foreground softmax channel; referenceCode: the 2-channel
 * tanh of the logits against the full softmax (`torch.mean((dis_to_mask - outputs_soft) ** 2)`).
 */
export function crossTaskConsistency(
  out: DualOutputs,
  opts: { referenceCode: boolean; k: number },
): tf.Scalar {
  return tf.tidy(() => {
    const inv = tf.sigmoid(tf.mul(-opts.k, out.sdf));
    const p = tf.softmax(out.seg, -1);
    if (opts.referenceCode) return tf.mean(tf.squaredDifference(inv, p));
    const c = p.shape[4];
    const fg = tf.slice(p, [0, 0, 0, 0, c - 1], [-1, -1, -1, -1, 1]);
    return tf.mean(tf.squaredDifference(inv, fg));
  });
}

/** Scalars of the supervised loss. */
export interface SupervisedTerms {
  loss: tf.Scalar;
  ce: tf.Scalar;
  dice: tf.Scalar;
  /** L_dis (0 when switched off). */
  dis: tf.Scalar;
}

/**
 * Eq. 2 on the labeled rows. Paper: `scale (CE + Dice + w MSE(f_dis, sdfGt))`;
 * referenceCode: `0.5 (CE + Dice + w Dice(sigmoid(-k f_dis)[..., 1], y == 1))`. `sdfGt`
 * [Bl,D,H,W,1] is needed in paper mode when `useLdis`.
 */
export function supervisedLoss(
  lab: DualOutputs,
  labels: tf.Tensor4D,
  sdfGt: tf.Tensor | null,
  opts: {
    referenceCode: boolean;
    useLdis: boolean;
    k: number;
    disWeight: number;
    supervisedScale: number;
  },
): SupervisedTerms {
  return tf.tidy(() => {
    const { ce, dice } = ceDiceLoss(lab.seg, labels);
    let dis: tf.Scalar = tf.scalar(0);
    if (opts.useLdis) {
      if (opts.referenceCode) {
        const inv = tf.sigmoid(tf.mul(-opts.k, lab.sdf)) as tf.Tensor5D;
        dis = diceLoss(channel(inv, inv.shape[4] - 1), tf.equal(labels, 1));
      } else {
        if (sdfGt === null) throw new Error("ug-mcl: L_dis needs the SDF target");
        dis = mse(lab.sdf, sdfGt);
      }
    }
    const scale = opts.referenceCode ? 0.5 : opts.supervisedScale;
    const loss = tf.mul(scale, tf.add(tf.add(ce, dice), tf.mul(opts.disWeight, dis))) as tf.Scalar;
    return { loss, ce, dice, dis };
  });
}

/**
 * Student + EMA teacher ({@link VNetMethod} with a teacher) with the dual-task outputs of
 * {@link dualOutputs}; predictions are the softmax of the student's seg logits (eval mode).
 */
class UgMcl extends VNetMethod<UgMclHp> {
  constructor(hp: UgMclHp, ctx: BuildContext) {
    const seg = hp.referenceCode ? 0 : 1;
    super(hp, ctx, {
      heads: hp.referenceCode ? segHeads(ctx.nClasses) : ugMclHeads(ctx.nClasses),
      teacherDecay: hp.emaDecay,
      predict: (o) => tf.softmax(o[seg]!, -1) as tf.Tensor5D,
    });
  }

  /** Teacher outputs on the noisy scope rows and the certainty mask (kept; caller disposes). */
  #teacherTargets(xs: tf.Tensor5D, step: StepInfo): { t: DualOutputs; mask: tf.Tensor } {
    const ref = this.hp.referenceCode;
    const t = tf.tidy(() => {
      const noise = clampedNoise(
        xs.shape,
        step.random.noise,
        this.hp.noiseStd,
        this.hp.noiseClip,
      );
      const outs = this.teacher.forward(tf.add(xs, noise) as tf.Tensor5D, {
        training: true,
        dropoutRng: step.random.dropout,
      });
      const d = dualOutputs(outs, ref);
      return [d.seg, d.sdf];
    });
    const mask = mcCertaintyMask(
      this.teacher,
      xs,
      this.hp,
      step,
      this.ctx.nClasses,
      (o) => tf.softmax(dualOutputs(o, ref).seg, -1) as tf.Tensor5D,
    );
    return { t: { seg: t[0] as tf.Tensor5D, sdf: t[1] as tf.Tensor5D }, mask };
  }

  async trainStep(batch: TrainBatch, step: StepInfo): Promise<StepLosses> {
    const hp = this.hp;
    const ref = hp.referenceCode;
    const [bl, d, h, w] = batch.labels.shape;
    // Host labels for compute_sdf, read before any tensor of the step exists.
    const labels = hp.useLdis && !ref ? await labelValues(batch) : null;
    const x = fullBatch(batch);
    const n = x.shape[0];
    const scopeFrom = hp.itcScope === "all" ? 0 : bl;
    const doItc = hp.useLitc && n > scopeFrom;
    let targets: { t: DualOutputs; mask: tf.Tensor } | null = null;
    if (doItc) {
      const xs = scopeFrom === 0 ? x : rows(x, scopeFrom, n);
      targets = this.#teacherTargets(xs, step);
      if (xs !== x) xs.dispose();
    }
    const sdfGt = labels !== null
      ? tf.tensor5d(computeSdf(labels, bl, [d, h, w]), [
        bl,
        d,
        h,
        w,
        1,
      ])
      : null;
    const cw = rampedWeight({ ...hp, consistencyRampup: ugMclRampup(hp) }, step.iteration);
    const aux: Record<string, tf.Tensor> = {};
    const { loss, lr } = this.minimise(() => {
      const out = dualOutputs(
        this.net.forward(x, { training: true, dropoutRng: step.random.dropout }),
        ref,
      );
      const lab: DualOutputs = { seg: rows(out.seg, 0, bl), sdf: rows(out.sdf, 0, bl) };
      const sup = supervisedLoss(lab, batch.labels, sdfGt, hp);
      aux.supervised = tf.keep(tf.clone(sup.loss)); // `total` may be sup.loss itself
      aux.ce = tf.keep(sup.ce);
      aux.dice = tf.keep(sup.dice);
      aux.dis = tf.keep(sup.dis);
      let total: tf.Scalar = sup.loss;
      if (targets !== null) {
        const s: DualOutputs = scopeFrom === 0
          ? out
          : { seg: rows(out.seg, scopeFrom, n), sdf: rows(out.sdf, scopeFrom, n) };
        const itc = intraTaskConsistency(s, targets.t, targets.mask, hp);
        aux.itc = tf.keep(itc);
        total = tf.add(total, tf.mul(cw, itc));
      }
      if (hp.useLctc) {
        const ctc = crossTaskConsistency(out, hp);
        aux.ctc = tf.keep(ctc);
        total = tf.add(total, tf.mul(cw, ctc));
      }
      return total;
    }, step);
    x.dispose();
    sdfGt?.dispose();
    const extra: Record<string, number | tf.Tensor> = { lr, consistencyWeight: cw };
    if (targets !== null) {
      extra.certainFraction = tf.mean(targets.mask); // read with the losses
      targets.t.seg.dispose();
      targets.t.sdf.dispose();
      targets.mask.dispose();
    }
    return await readLosses({ loss, ...aux }, extra);
  }
}

/** Registry entry: UG-MCL (paper formulation by default; `referenceCode` for the released script). */
export const ugMcl: MethodDefinition<UgMclHp> = {
  id: "ug-mcl",
  meta: {
    title: "UG-MCL",
    paper:
      "Zhang et al., Uncertainty-Guided Mutual Consistency Learning for Semi-Supervised Medical Image Segmentation, Artificial Intelligence in Medicine 2022 (arXiv 2112.02508v2)",
    referenceCode: "YichiZhang98/UG-MCL code/train_UGMCL_3D.py (BraTS19 only; no LA script)",
    role: "proposed",
    reconstructed: false,
    notes:
      "Paper mode (default): DTC two-head V-Net (1-ch tanh SDF head), Eq. 2 with L_dis = MSE " +
      "to DTC's normalised SDF (computeSdf; the paper does not name the loss), Eq. 4 with beta " +
      "0.75 over the seg and SDF branches, Eq. 6 on the foreground channel, ramp-up 40. " +
      "Paper/code disagreements exposed by referenceCode=true (released BraTS script): SDF = tanh " +
      "of the same seg logits (no regression head), L_dis = Dice of sigmoid(-1500 tanh(logits)) " +
      "(no SDF target), L_sup = 0.5 (CE + Dice + L_dis), L_itc seg-only with a 0.5 factor (beta " +
      "ignored; an older version in the blog used 0.5/0.5), L_ctc over both channels, ramp-up 200. " +
      "Not reproduced: the code's 3D U-Net backbone (paper: V-Net) and its constant LR (use " +
      "lrStep >= iterations). L_itc over labeled + unlabeled rows as the code (itcScope).",
  },
  defaults: {
    ...VNET_DEFAULTS,
    referenceCode: false,
    beta: 0.75,
    useLdis: true,
    useLitc: true,
    useLctc: true,
    itcScope: "all",
    supervisedScale: 1,
    disWeight: 1,
    k: 1500,
    consistency: 0.1,
    consistencyRampup: -1,
    rampupEpochLength: 150,
    emaDecay: 0.99,
    noiseStd: 0.1,
    noiseClip: 0.2,
    mcPasses: 8,
    mcRepeats: 2,
  },
  choices: { ...SGD_CHOICES, itcScope: ["all", "unlabeled"] },
  validate: (hp) => {
    if (!(hp.beta >= 0 && hp.beta <= 1)) throw new Error(`ug-mcl: beta ${hp.beta} not in [0, 1]`);
  },
  create: (hp, ctx) => new UgMcl(hp, binaryOnly("ug-mcl", ctx)),
};
