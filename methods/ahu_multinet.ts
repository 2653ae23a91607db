/**
 * AHU-MultiNet (Liu, Wang, Li, Li, Cao, Cao, Computers in Biology and Medicine 2022,
 * doi 10.1016/j.compbiomed.2022.106157) — RECONSTRUCTED from the abstract only: no full text or
 * code was found, so every formula below except the three tasks (segmentation, signed distance,
 * contour), "inter-task consistency" and "homoscedastic-uncertainty loss balancing" is our
 * choice [I], built on HiLab-git/DTC (`code/train_la_dtc.py`) and Kendall et al. 2018.
 *
 * - Network: the DTC V-Net (`code/networks/vnet_sdf.py` of HiLab-git/DTC) with three 1x1x1 heads
 *   on x9 ({@link threeHeads}): seg logits (2 classes, softmax), SDF `tanh`, contour `sigmoid`.
 * - Targets (labeled rows): SDF = DTC `compute_sdf` ({@link computeSdf}: normalised, negative
 *   inside, 0 on the inner boundary); contour `C = find_boundaries(y, mode='inner')`
 *   ({@link innerBoundary}, connectivity `contourConnectivity`, 1 = face neighbours as skimage).
 * - Supervised task losses: `L_seg = 0.5 (CE + Dice(softmax[..., 1], y))` (UA-MT/DTC family),
 *   `L_sdf = MSE(f_sdf, SDF(y))` (DTC), `L_cnt = BCE(f_cnt, C)` (`contourLoss: "bce"`, with
 *   `log(p + 1e-7)` / `log(1 - p + 1e-7)`) or `Dice(f_cnt, C)` (`"dice"`).
 * - Inter-task consistency over the whole batch (labeled + unlabeled), on the usual ramp
 *   `w(t) = C sigmoid_rampup(iter // 150, 40)`, C = 1 as DTC:
 *   seg-SDF `mean((sigmoid(-1500 f_sdf) - p_fg)^2)` (DTC's dual-task consistency) and
 *   seg-contour `mean((f_cnt - B(p_fg))^2)` with the soft inner boundary
 *   `B(p) = p - erode(p)`, `erode(p) = min(p, p at the neighbours)` (soft min-pool, i.e.
 *   `p - (-maxpool(-p))`, restricted to the same neighbourhood as the contour target;
 *   out-of-volume neighbours are ignored, so for a binary `p` `B(p) = innerBoundary(p)` exactly).
 * - Homoscedastic uncertainty weighting (Kendall, Gal & Cipolla, CVPR 2018, arXiv 1705.07115) of
 *   the three supervised task losses, with learnable log-variances `s_i = log sigma_i^2`
 *   (init 0) trained by the same SGD (same LR and momentum, no weight decay):
 *   - `weighting: "kendall"` — the paper's likelihood forms: regression (SDF, Gaussian,
 *     Eq. 7) `1/(2 sigma^2) L + log sigma = 0.5 exp(-s) L + 0.5 s`; classification (seg,
 *     contour; softmax/sigmoid with temperature, Eq. 10 approximation) `1/sigma^2 L + log sigma =
 *     exp(-s) L + 0.5 s`. At s = 0 this is `L_seg + 0.5 L_sdf + L_cnt`, NOT the plain sum.
 *   - `weighting: "simplified"` — the common code form `sum_i exp(-s_i) L_i + s_i` (drops the
 *     1/2 factors); at s = 0 it is exactly the plain sum.
 *   - `weighting: "none"` — plain sum with fixed unit weights (ablation of the balancing).
 *   The consistency terms are not weighted by an s_i (they keep the ramp).
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import type { BuildContext, MethodDefinition, StepInfo, StepLosses, TrainBatch } from "./types.ts";
import { threeHeads } from "./nn/vnet.ts";
import { ceDiceLoss, diceLoss, mse } from "./nn/losses.ts";
import {
  binaryOnly,
  type OptimizerSlot,
  VNET_DEFAULTS,
  type VNetHp,
  VNetMethod,
} from "./nn/method_base.ts";
import { Sgd } from "./nn/optim.ts";
import { laRamp, rampedWeight, type RampHp } from "./nn/ramps.ts";
import { computeSdf, innerBoundary } from "./nn/sdf.ts";
import { structureOffsets } from "./nn/neighbours.ts";
import {
  fullBatch,
  labelValues,
  readLosses,
  rows,
  SGD_CHOICES,
  sgdSchedule,
} from "./nn/training.ts";

/** Hyper-parameters of {@link ahuMultiNet} (consistency weight C 1.0, ramp-up 40 "epochs" of 150). */
export type AhuMultiNetHp = VNetHp & RampHp & {
  /** "kendall" | "simplified" | "none" (see the module doc). */
  weighting: Weighting;
  /** Initial log-variance s_i of every task (0). */
  logVarInit: number;
  /** Contour loss: "bce" or "dice". */
  contourLoss: "bce" | "dice";
  /** Neighbourhood of the contour target and the soft boundary: 1 (6-nbh), 2 (18), 3 (26). */
  contourConnectivity: number;
  /** Sharpness k of sigmoid(-k sdf) (1500, DTC). */
  k: number;
  /** Inter-task consistency terms: seg-SDF and seg-contour. */
  useSdfConsistency: boolean;
  useContourConsistency: boolean;
};

/** How the three supervised task losses are balanced (see the module doc). */
export type Weighting = "kendall" | "simplified" | "none";

/** Whether a task's likelihood is Gaussian (regression) or softmax/sigmoid (classification). */
export type TaskKind = "regression" | "classification";

/** One task loss and its log-variance for {@link homoscedasticLoss}. */
export interface WeightedTask {
  loss: tf.Scalar;
  logVar: tf.Tensor;
  kind: TaskKind;
}

/**
 * Kendall et al. (2018) uncertainty weighting of task losses with log-variances `s`:
 * "kendall": regression `0.5 exp(-s) L + 0.5 s`, classification `exp(-s) L + 0.5 s`;
 * "simplified": `exp(-s) L + s` for every task; "none": `L` (s unused).
 */
export function homoscedasticLoss(tasks: WeightedTask[], weighting: Weighting): tf.Scalar {
  return tf.tidy(() => {
    let total: tf.Scalar = tf.scalar(0);
    for (const t of tasks) {
      let term: tf.Tensor;
      if (weighting === "none") term = t.loss;
      else if (weighting === "simplified") {
        term = tf.add(tf.mul(tf.exp(tf.neg(t.logVar)), t.loss), t.logVar);
      } else if (weighting === "kendall") {
        const f = t.kind === "regression" ? 0.5 : 1;
        term = tf.add(tf.mul(tf.mul(f, tf.exp(tf.neg(t.logVar))), t.loss), tf.mul(0.5, t.logVar));
      } else throw new Error(`ahu-multinet: unknown weighting '${weighting}'`);
      total = tf.add(total, tf.reshape(term, []));
    }
    return total;
  });
}

/**
 * Soft erosion `min(p, p(x + o) for o in the neighbourhood)` of `p` [B,D,H,W,1] in [0, 1];
 * out-of-volume neighbours are ignored. Neighbour values come from one 3x3x3 one-hot conv on
 * `p - 1` with zero padding (so outside counts as p = 1, neutral for a min), and the min is the
 * differentiable `min(a, b) = (a + b - |a - b|) / 2` (tfjs-core registers no Minimum/MaxPool3D
 * gradient here).
 */
export function softErode(p: tf.Tensor5D, connectivity = 1): tf.Tensor5D {
  return tf.tidy(() => {
    // Non-zero offsets of the 3-D neighbourhood (1: 6, 2: 18, 3: 26 voxels), in C order.
    const offs = structureOffsets(3, connectivity) as [number, number, number][];
    const kv = new Float32Array(27 * offs.length);
    offs.forEach(([a, b, c], j) => {
      kv[((a + 1) * 9 + (b + 1) * 3 + (c + 1)) * offs.length + j] = 1;
    });
    const kernel = tf.tensor5d(kv, [3, 3, 3, 1, offs.length]);
    const nb = tf.add(tf.conv3d(tf.sub(p, 1) as tf.Tensor5D, kernel, 1, "same"), 1) as tf.Tensor5D;
    let m: tf.Tensor = p;
    for (let j = 0; j < offs.length; j++) {
      const q = tf.slice(nb, [0, 0, 0, 0, j], [-1, -1, -1, -1, 1]);
      m = tf.mul(0.5, tf.sub(tf.add(m, q), tf.abs(tf.sub(m, q))));
    }
    return m as tf.Tensor5D;
  });
}

/** Soft inner boundary `B(p) = p - softErode(p)`; equals {@link innerBoundary} on a 0/1 mask. */
export function softBoundary(p: tf.Tensor5D, connectivity = 1): tf.Tensor5D {
  return tf.tidy(() => tf.sub(p, softErode(p, connectivity)) as tf.Tensor5D);
}

/**
 * Contour targets [B,D,H,W,1]: `find_boundaries(label == 1, mode='inner')` per sample
 * ({@link innerBoundary}) from class-index labels [B,D,H,W]. `values`: the labels' host values
 * when the caller has them (a training step reads them once, asynchronously; without them the
 * tensor is read with `dataSync`, which a GPU backend under Deno cannot do).
 */
export function contourTargets(
  labels: tf.Tensor4D,
  connectivity = 1,
  values?: ArrayLike<number>,
): tf.Tensor5D {
  const [b, d, h, w] = labels.shape;
  const v = values ?? labels.dataSync();
  const per = d * h * w;
  const out = new Float32Array(b * per);
  for (let i = 0; i < b; i++) {
    const m = new Uint8Array(per);
    for (let j = 0; j < per; j++) m[j] = v[i * per + j] === 1 ? 1 : 0;
    const c = innerBoundary(m, [d, h, w], connectivity);
    for (let j = 0; j < per; j++) out[i * per + j] = c[j]!;
  }
  return tf.tensor5d(out, [b, d, h, w, 1]);
}

/** BCE on probabilities `-mean(z log(p + 1e-7) + (1 - z) log(1 - p + 1e-7))`. */
export function bceProb(p: tf.Tensor, z: tf.Tensor): tf.Scalar {
  return tf.tidy(() => {
    const eps = 1e-7;
    const pos = tf.mul(z, tf.log(tf.add(p, eps)));
    const neg = tf.mul(tf.sub(1, z), tf.log(tf.add(tf.sub(1, p), eps)));
    return tf.neg(tf.mean(tf.add(pos, neg)));
  });
}

/** Network outputs: seg logits [B,...,2], SDF [B,...,1] in [-1, 1], contour prob [B,...,1]. */
export interface TripleOutputs {
  seg: tf.Tensor5D;
  sdf: tf.Tensor5D;
  contour: tf.Tensor5D;
}

/** The three supervised task losses on the labeled rows. */
export function taskLosses(
  lab: TripleOutputs,
  labels: tf.Tensor4D,
  sdfGt: tf.Tensor,
  contourGt: tf.Tensor,
  contourLoss: string,
): { seg: tf.Scalar; sdf: tf.Scalar; contour: tf.Scalar } {
  return tf.tidy(() => {
    const { loss: seg } = ceDiceLoss(lab.seg, labels);
    const sdf = mse(lab.sdf, sdfGt);
    const contour = contourLoss === "dice"
      ? diceLoss(lab.contour, contourGt)
      : bceProb(lab.contour, contourGt);
    return { seg, sdf, contour };
  });
}

/** Foreground probability [B,...,1] from 2-class logits. */
function fgProb(seg: tf.Tensor5D): tf.Tensor5D {
  const p = tf.softmax(seg, -1);
  return tf.slice(p, [0, 0, 0, 0, p.shape[4] - 1], [-1, -1, -1, -1, 1]) as tf.Tensor5D;
}

/** Inter-task consistency terms over all rows of `out`. */
export function interTaskConsistency(
  out: TripleOutputs,
  opts: { k: number; contourConnectivity: number },
): { sdf: tf.Scalar; contour: tf.Scalar } {
  return tf.tidy(() => {
    const p = fgProb(out.seg);
    const sdf: tf.Scalar = tf.mean(tf.squaredDifference(tf.sigmoid(tf.mul(-opts.k, out.sdf)), p));
    const contour: tf.Scalar = tf.mean(
      tf.squaredDifference(out.contour, softBoundary(p, opts.contourConnectivity)),
    );
    return { sdf, contour };
  });
}

let ahuCounter = 0;
const TASKS: readonly { name: "seg" | "sdf" | "contour"; kind: TaskKind }[] = [
  { name: "seg", kind: "classification" },
  { name: "sdf", kind: "regression" },
  { name: "contour", kind: "classification" },
];

class AhuMultiNet extends VNetMethod<AhuMultiNetHp> {
  /** Log-variances s_i by task name, and their SGD (no weight decay, tensors only in state). */
  readonly #logVar = new Map<string, tf.Variable>();
  readonly #optS: OptimizerSlot;

  constructor(hp: AhuMultiNetHp, ctx: BuildContext) {
    super(hp, ctx, { heads: threeHeads(ctx.nClasses) });
    const uid = `ahu${ahuCounter++}`;
    for (const t of TASKS) {
      const key = `log_var.${t.name}`;
      const init = tf.scalar(hp.logVarInit);
      this.#logVar.set(
        key,
        this.variable(`loss_weights.${key}`, tf.variable(init, true, `${uid}/${key}`)),
      );
      init.dispose();
    }
    this.#optS = this.optimizer(
      "optim_s",
      this.#logVar,
      new Sgd(this.#logVar, { momentum: hp.momentum, weightDecay: 0 }),
      sgdSchedule(hp),
      { scalars: false },
    );
  }

  #outputs(x: tf.Tensor5D, training: boolean, rng?: StepInfo["random"]["dropout"]): TripleOutputs {
    const [seg, sdf, contour] = this.net.forward(
      x,
      rng === undefined ? { training } : { training, dropoutRng: rng },
    );
    return { seg: seg!, sdf: sdf!, contour: contour! };
  }

  async trainStep(batch: TrainBatch, step: StepInfo): Promise<StepLosses> {
    const hp = this.hp;
    const [bl, d, h, w] = batch.labels.shape;
    const labels = await labelValues(batch);
    const sdfGt = tf.tensor5d(computeSdf(labels, bl, [d, h, w]), [bl, d, h, w, 1]);
    const cntGt = contourTargets(batch.labels, hp.contourConnectivity, labels);
    const cw = rampedWeight(hp, step.iteration);
    const x = fullBatch(batch);
    const aux: Record<string, tf.Tensor> = {};
    const { loss, lr } = this.minimise(
      () => {
        const out = this.#outputs(x, true, step.random.dropout);
        const lab: TripleOutputs = {
          seg: rows(out.seg, 0, bl),
          sdf: rows(out.sdf, 0, bl),
          contour: rows(out.contour, 0, bl),
        };
        const l = taskLosses(lab, batch.labels, sdfGt, cntGt, hp.contourLoss);
        aux.seg = tf.keep(l.seg);
        aux.sdf = tf.keep(l.sdf);
        aux.contour = tf.keep(l.contour);
        const sup = homoscedasticLoss(
          TASKS.map((t) => ({
            loss: l[t.name],
            logVar: this.#logVar.get(`log_var.${t.name}`)!,
            kind: t.kind,
          })),
          hp.weighting,
        );
        aux.supervised = tf.keep(tf.clone(sup)); // `total` may be sup itself
        let total: tf.Scalar = sup;
        if (hp.useSdfConsistency || hp.useContourConsistency) {
          const c = interTaskConsistency(out, hp);
          if (hp.useSdfConsistency) {
            aux.sdfConsistency = tf.keep(c.sdf);
            total = tf.add(total, tf.mul(cw, c.sdf));
          }
          if (hp.useContourConsistency) {
            aux.contourConsistency = tf.keep(c.contour);
            total = tf.add(total, tf.mul(cw, c.contour));
          }
        }
        return total;
      },
      step,
      {
        optimizers: hp.weighting === "none" ? this.sgd : [this.sgd, this.#optS],
        params: new Map([...this.net.params, ...this.#logVar]),
      },
    );
    x.dispose();
    sdfGt.dispose();
    cntGt.dispose();
    const extra: Record<string, number | tf.Tensor> = { lr, consistencyWeight: cw };
    // The updated s_i, read with the losses (a clone: readLosses disposes what it reads).
    for (const [k, v] of this.#logVar) extra[k] = tf.clone(v);
    return await readLosses({ loss, ...aux }, extra);
  }
}

/** Registry entry: AHU-MultiNet (reconstructed from the abstract). */
export const ahuMultiNet: MethodDefinition<AhuMultiNetHp> = {
  id: "ahu-multinet",
  meta: {
    title: "AHU-MultiNet",
    paper:
      "Liu et al., AHU-MultiNet: Adaptive loss balancing based on homoscedastic uncertainty in multi-task medical image segmentation network, Computers in Biology and Medicine 2022 (doi 10.1016/j.compbiomed.2022.106157)",
    referenceCode:
      "none found (reconstruction on HiLab-git/DTC code/train_la_dtc.py + Kendall et al. 2018)",
    role: "proposed",
    reconstructed: true,
    notes: "RECONSTRUCTED from the abstract only; paper numbers n/a. Three-head DTC V-Net (seg " +
      "softmax, SDF tanh, contour sigmoid); targets computeSdf (DTC) and innerBoundary " +
      "(find_boundaries mode='inner', connectivity 1); L_seg = 0.5 (CE + Dice), L_sdf = MSE, " +
      "L_cnt = BCE; inter-task consistency (whole batch, ramp 1.0 x sigmoid_rampup(iter//150, " +
      "40)): DTC seg-SDF and seg-contour via the soft boundary p - softmin_nbh(p); Kendall " +
      "weighting of the three supervised losses with learnable s_i = log sigma^2 (SGD, no wd): " +
      "'kendall' = 0.5 e^-s L + 0.5 s (SDF) / e^-s L + 0.5 s (seg, contour); 'simplified' = " +
      "e^-s L + s; 'none' = plain sum.",
  },
  defaults: {
    ...VNET_DEFAULTS,
    weighting: "kendall",
    logVarInit: 0,
    contourLoss: "bce",
    contourConnectivity: 1,
    k: 1500,
    useSdfConsistency: true,
    useContourConsistency: true,
    ...laRamp(1.0),
  },
  choices: {
    ...SGD_CHOICES,
    weighting: ["kendall", "simplified", "none"],
    contourLoss: ["bce", "dice"],
    contourConnectivity: [1, 2, 3],
  },
  create: (hp, ctx) => new AhuMultiNet(hp, binaryOnly("ahu-multinet", ctx)),
};
