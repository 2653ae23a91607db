/**
 * MASSL: Multi-task Attention-based Semi-Supervised Learning (Chen, Bortsova, García-Uceda
 * Juárez, van Tulder, de Bruijne, MICCAI 2019, arXiv 1907.12303; official code
 * ShuaiChenBIGR/MASSL-segmentation-framework), and the shared implementation of its ablation MSSL (`methods/mssl.ts`).
 *
 * A shared encoder feeds a segmentation decoder (skips, sigmoid foreground P) and a
 * reconstruction decoder (no skips) ({@link MasslNet}).
 * - Segmentation loss (labeled): `L_seg = 1 - 2 sum(Y P) / (sum(Y) + sum(P) + 1e-4)` over the
 *   whole batch (`module/dice_loss.py` `DiceCoefficientLF`).
 * - MASSL reconstruction loss (paper Eq. 1; `Network_training_SSL_epoch_attention_BraTS18.py`,
 *   mode 'fuse', `loss_weighted=True`): `w_b mean((R_b - (1-P) x)^2) + w_f mean((R_f - P x)^2)`,
 *   `w_b = sum(1-P)/N`, `w_f = sum(P)/N` ({@link masslAttentionLoss}).
 * - MSSL reconstruction loss: `mean((R - x)^2)` (`Network_training_SSL_epoch_BraTS18.py`,
 *   mode 'rec').
 *
 * "The gradient does not propagate through P to the segmentation decoder" (Sec. 2.1):
 * `attentionGrad = "stop"` (default) detaches P entirely — P and the weights come from a
 * tape-free forward of the current network, "the unlabeled samples are first segmented using
 * the most recent segmentation network parameters" (Sec. 2.2); `"encoder"` is the official
 * code's behaviour: P, the targets and the weights are NOT detached, only the segmentation
 * decoder's parameters are frozen (`trainU_decoder_seg: False`), so the reconstruction gradient
 * also reaches the encoder through P.
 *
 * Training strategies (`strategy`, Sec. 2.2):
 * - `"alternating"` (MASSL(alter)): per iteration one labeled update (Adam lr 1e-2, encoder +
 *   seg decoder, `L_seg`) then one unlabeled update (a second Adam, lr 1e-3, encoder + rec
 *   decoder, `L_rec`), each LR halved every 500 of its steps (`StepLR(500, 0.5)` stepped
 *   before the optimizer, {@link masslLr}). The released script computes the unlabeled loss
 *   from the rec outputs of the LABELED forward of the same iteration (it never reassigns
 *   `outputsU_back/outputsU_fore` in the 'trainUnlabeled' branch and keeps the graph with
 *   `retain_graph=True`); here the unlabeled step reconstructs the unlabeled input, as the paper
 *   describes. The zero-weighted rec terms of the code's labeled step are omitted (no effect).
 * - `"joint"` (MASSL(α)): one Adam (lr `lrJoint`, same StepLR) on
 *   `alpha * L_seg(labeled) + (1 - alpha) * L_rec(unlabeled)` over all parameters. The paper's
 *   equation was lost in the available text and the released code never implements it
 *   (`jointly=True` is unused): the α placement is a reconstruction [I].
 *
 * When a batch has no unlabeled images (the "120 (120)" column: every labeled image is also
 * used as an unlabeled image) the labeled images are the reconstruction batch.
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import type { BuildContext, MethodDefinition, StepInfo, StepLosses, TrainBatch } from "./types.ts";
import { masslDiceLoss, mse } from "./nn/losses.ts";
import { binaryOnly, MasslNetMethod, type OptimizerSlot } from "./nn/method_base.ts";
import { foregroundTarget, masslAttentionLoss, masslSchedule } from "./nn/massl_train.ts";
import { readLosses } from "./nn/training.ts";

/** Hyper-parameters of MASSL and MSSL. */
export type MasslHp = {
  /** `base_n_filter` (16). */
  nFilters: number;
  /** "alternating" (two Adams, the released code) or "joint" (one Adam, alpha-weighted sum). */
  strategy: "alternating" | "joint";
  /** Joint training: `L = alpha L_seg + (1 - alpha) L_rec` (0.7 or 0.9 in the tables). */
  alpha: number;
  /** Alternating: Adam LR of the labeled (segmentation) step (1e-2). */
  lrSeg: number;
  /** Alternating: Adam LR of the unlabeled (reconstruction) step (1e-3). */
  lrRec: number;
  /** Joint: Adam LR (1e-2 [I], the segmentation LR). */
  lrJoint: number;
  /** StepLR step size in iterations (500). */
  lrStep: number;
  /** StepLR factor (0.5). */
  lrGamma: number;
  /** MASSL only: "stop" (detach P) or "encoder" (official code: seg decoder frozen only). */
  attentionGrad: "stop" | "encoder";
  /** MASSL only: weight the bg/fg terms by the soft mask sizes (`loss_weighted=True`). */
  weighted: boolean;
};

/**
 * Defaults of MASSL(alter): the official scripts' two Adams (lr 1e-2 labeled step, 1e-3
 * unlabeled step) with `StepLR(step_size=500, gamma=0.5)`, `base_n_filter` 16
 * (`Network_training_SSL_epoch_attention_BraTS18.py`, `network/ssl_3d_attention.py`).
 */
export const MASSL_DEFAULTS: MasslHp = {
  nFilters: 16,
  strategy: "alternating",
  alpha: 0.9,
  lrSeg: 1e-2,
  lrRec: 1e-3,
  lrJoint: 1e-2,
  lrStep: 500,
  lrGamma: 0.5,
  attentionGrad: "stop",
  weighted: true,
};

/** Declared choices of {@link MasslHp}. */
export const MASSL_CHOICES = {
  strategy: ["alternating", "joint"],
  attentionGrad: ["stop", "encoder"],
} as const;

/** Which reconstruction target: the image (MSSL) or the attention split (MASSL). */
export type RecTarget = "image" | "attention";

/** MASSL / MSSL with both training strategies (see the module doc). */
export class MasslMethod extends MasslNetMethod<MasslHp> {
  /** Alternating: labeled-step Adam (encoder + seg decoder); joint: the only Adam (all). */
  readonly optSeg: OptimizerSlot;
  /** Alternating: unlabeled-step Adam (encoder + rec decoder); joint: null. */
  readonly optRec: OptimizerSlot | null;
  readonly #target: RecTarget;

  constructor(hp: MasslHp, ctx: BuildContext, target: RecTarget) {
    super(hp, ctx, target === "attention" ? 2 * ctx.inChannels : ctx.inChannels);
    this.#target = target;
    const lr = (base: number) => masslSchedule(base, hp.lrStep, hp.lrGamma);
    if (hp.strategy === "joint") {
      this.optSeg = this.adam("optim_seg", this.net.params, lr(hp.lrJoint));
      this.optRec = null;
    } else {
      this.optSeg = this.adam(
        "optim_seg",
        this.net.paramsOf("encoder", "segDecoder"),
        lr(hp.lrSeg),
      );
      this.optRec = this.adam(
        "optim_rec",
        this.net.paramsOf("encoder", "recDecoder"),
        lr(hp.lrRec),
      );
    }
  }

  /** Soft Dice of the segmentation path on the labeled images (inside a tape). */
  #segLoss(x: tf.Tensor5D, labels: tf.Tensor4D): tf.Scalar {
    const p = this.net.forward(x, { rec: false }).seg!;
    return masslDiceLoss(p, foregroundTarget(labels));
  }

  /**
   * Reconstruction loss of `u` (inside a tape); `pDetached` is the tape-free segmentation
   * of `u` when `attentionGrad = "stop"`. Auxiliary scalars are kept into `aux`.
   */
  #recLoss(u: tf.Tensor5D, pDetached: tf.Tensor5D | null, aux: Record<string, tf.Tensor>) {
    if (this.#target === "image") {
      return mse(this.net.forward(u, { seg: false }).rec!, u);
    }
    let rec: tf.Tensor5D, p: tf.Tensor5D;
    if (pDetached !== null) {
      rec = this.net.forward(u, { seg: false }).rec!;
      p = pDetached;
    } else {
      const o = this.net.forward(u, { freezeSegDecoder: true });
      rec = o.rec!;
      p = o.seg!;
    }
    const r = masslAttentionLoss(rec, p, u, this.hp.weighted);
    aux.mseBack = tf.keep(r.mseBack);
    aux.mseFore = tf.keep(r.mseFore);
    aux.wFore = tf.keep(r.wFore);
    return r.loss;
  }

  /** Tape-free P of `u` for the "stop" mode (null when not needed). */
  #detachedP(u: tf.Tensor5D): tf.Tensor5D | null {
    if (this.#target !== "attention" || this.hp.attentionGrad !== "stop") return null;
    return tf.tidy(() => this.net.forward(u, { rec: false }).seg!);
  }

  trainStep(batch: TrainBatch, step: StepInfo): Promise<StepLosses> {
    const u = batch.unlabeledImages ?? batch.labeledImages;
    const aux: Record<string, tf.Tensor> = {};
    if (this.optRec === null) {
      const a = this.hp.alpha;
      const pDet = this.#detachedP(u);
      const { loss, lr } = this.minimise(() => {
        const seg = this.#segLoss(batch.labeledImages, batch.labels);
        const rec = this.#recLoss(u, pDet, aux);
        aux.seg = tf.keep(seg);
        aux.rec = tf.keep(rec);
        return tf.add(tf.mul(a, seg), tf.mul(1 - a, rec)) as tf.Scalar;
      }, step);
      pDet?.dispose();
      return readLosses({ loss, ...aux }, { lr });
    }
    // Alternating: labeled step, then unlabeled step (one iteration of the reference loop).
    const s = this.minimise(
      () => this.#segLoss(batch.labeledImages, batch.labels),
      step,
      { optimizers: this.optSeg },
    );
    // P of the unlabeled batch from the weights AFTER the labeled update (the reference
    // code's unlabeled phase runs a fresh forward after optimizer[0].step()).
    const pDet = this.#detachedP(u);
    const r = this.minimise(() => this.#recLoss(u, pDet, aux), step, { optimizers: this.optRec });
    pDet?.dispose();
    const loss = tf.add(s.loss, r.loss);
    return readLosses({ loss, seg: s.loss, rec: r.loss, ...aux }, { lrSeg: s.lr, lrRec: r.lr });
  }
}

/** Notes shared by the MASSL and MSSL registry entries. */
export const MASSL_NOTES = "Reconstructed details [I]: joint-training loss alpha*L_seg + " +
  "(1-alpha)*L_rec with one Adam at lrJoint (paper equation lost, code never implements joint); " +
  "alternating = one labeled then one unlabeled update per iteration (the code's zip loop), " +
  "without the code's stale rec-output bug; attentionGrad 'stop' detaches P (paper), " +
  "'encoder' = code (seg decoder frozen, gradient through P into the encoder); " +
  "no unlabeled images in the batch => the labeled images are reconstructed (the 120(120) " +
  "column); StepLR(500, 0.5) stepped before each update; unused code modules not built.";

/** Registry entry: MASSL (alternating by default; `strategy: "joint"` + `alpha` for MASSL(α)). */
export const massl: MethodDefinition<MasslHp> = {
  id: "massl",
  meta: {
    title: "MASSL",
    minTrainPatch: 32,
    paper: "Chen et al., MICCAI 2019 (MASSL)",
    referenceCode: "ShuaiChenBIGR/MASSL-segmentation-framework " +
      "Network_training_SSL_epoch_attention_BraTS18.py, network/ssl_3d_attention.py (MASSL_norm)",
    role: "proposed",
    reconstructed: false,
    notes: MASSL_NOTES,
  },
  defaults: MASSL_DEFAULTS,
  choices: MASSL_CHOICES,
  create: (hp, ctx) => new MasslMethod(hp, binaryOnly("massl", ctx), "attention"),
};
