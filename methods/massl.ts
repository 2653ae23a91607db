/**
 * MASSL: Multi-task Attention-based Semi-Supervised Learning (Chen, Bortsova, García-Uceda
 * Juárez, van Tulder, de Bruijne, MICCAI 2019, arXiv 1907.12303; spec methods.md §1), and the
 * shared implementation of its ablation MSSL (`methods/mssl.ts`).
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
import { masslDiceLoss, mse } from "./nn/losses.ts";
import { Adam, disposeGrads, lossAndGrads } from "./nn/optim.ts";
import {
  foregroundTarget,
  masslAttentionLoss,
  masslLr,
  MasslNet,
  twoClass,
} from "./nn/massl_net.ts";
import { optimizerEntries, readLosses, restoreOptimizer } from "./nn/training.ts";

/** Hyper-parameters of MASSL and MSSL. */
export type MasslHp = {
  /** `base_n_filter` (16). */
  nFilters: number;
  /** "alternating" (two Adams, the released code) or "joint" (one Adam, alpha-weighted sum). */
  strategy: string;
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
  attentionGrad: string;
  /** MASSL only: weight the bg/fg terms by the soft mask sizes (`loss_weighted=True`). */
  weighted: boolean;
};

/** Defaults of MASSL(alter) (spec methods.md §1.4). */
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

/** Which reconstruction target: the image (MSSL) or the attention split (MASSL). */
export type RecTarget = "image" | "attention";

/** MASSL / MSSL with both training strategies (see the module doc). */
export class MasslMethod implements Method {
  /** The network (exposed for tests). */
  readonly net: MasslNet;
  /** Alternating: labeled-step Adam (encoder + seg decoder); joint: the only Adam (all). */
  readonly optSeg: Adam;
  /** Alternating: unlabeled-step Adam (encoder + rec decoder); joint: null. */
  readonly optRec: Adam | null;
  readonly #hp: MasslHp;
  readonly #target: RecTarget;
  readonly #joint: boolean;

  constructor(hp: MasslHp, ctx: BuildContext, target: RecTarget) {
    if (ctx.nClasses !== 2) {
      throw new Error(`massl: binary segmentation only (nClasses 2), got ${ctx.nClasses}`);
    }
    if (hp.strategy !== "alternating" && hp.strategy !== "joint") {
      throw new Error(`massl: strategy must be 'alternating' or 'joint', got '${hp.strategy}'`);
    }
    if (hp.attentionGrad !== "stop" && hp.attentionGrad !== "encoder") {
      throw new Error(
        `massl: attentionGrad must be 'stop' or 'encoder', got '${hp.attentionGrad}'`,
      );
    }
    this.#hp = hp;
    this.#target = target;
    this.#joint = hp.strategy === "joint";
    this.net = new MasslNet({
      inChannels: ctx.inChannels,
      nFilters: hp.nFilters,
      recChannels: target === "attention" ? 2 * ctx.inChannels : ctx.inChannels,
    }, new Rng(ctx.initSeed));
    if (this.#joint) {
      this.optSeg = new Adam(this.net.params);
      this.optRec = null;
    } else {
      this.optSeg = new Adam(this.net.paramsOf("encoder", "segDecoder"));
      this.optRec = new Adam(this.net.paramsOf("encoder", "recDecoder"));
    }
  }

  #lr(base: number, iteration: number): number {
    return masslLr(base, iteration, this.#hp.lrStep, this.#hp.lrGamma);
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
    const r = masslAttentionLoss(rec, p, u, this.#hp.weighted);
    aux.mseBack = tf.keep(r.mseBack);
    aux.mseFore = tf.keep(r.mseFore);
    aux.wFore = tf.keep(r.wFore);
    return r.loss;
  }

  /** Tape-free P of `u` for the "stop" mode (null when not needed). */
  #detachedP(u: tf.Tensor5D): tf.Tensor5D | null {
    if (this.#target !== "attention" || this.#hp.attentionGrad !== "stop") return null;
    return tf.tidy(() => this.net.forward(u, { rec: false }).seg!);
  }

  trainStep(batch: TrainBatch, step: StepInfo): Promise<StepLosses> {
    const u = batch.unlabeledImages ?? batch.labeledImages;
    const i = step.iteration;
    const aux: Record<string, tf.Tensor> = {};
    if (this.#joint) {
      const a = this.#hp.alpha;
      const pDet = this.#detachedP(u);
      const { value, grads } = lossAndGrads(() => {
        const seg = this.#segLoss(batch.labeledImages, batch.labels);
        const rec = this.#recLoss(u, pDet, aux);
        aux.seg = tf.keep(seg);
        aux.rec = tf.keep(rec);
        return tf.add(tf.mul(a, seg), tf.mul(1 - a, rec)) as tf.Scalar;
      }, this.net.params);
      pDet?.dispose();
      const lr = this.#lr(this.#hp.lrJoint, i);
      this.optSeg.step(grads, lr);
      disposeGrads(grads);
      return readLosses({ loss: value, ...aux }, { lr });
    }
    // Alternating: labeled step, then unlabeled step (one iteration of the reference loop).
    const s = lossAndGrads(
      () => this.#segLoss(batch.labeledImages, batch.labels),
      this.net.paramsOf("encoder", "segDecoder"),
    );
    const lrSeg = this.#lr(this.#hp.lrSeg, i);
    this.optSeg.step(s.grads, lrSeg);
    disposeGrads(s.grads);
    // P of the unlabeled batch from the weights AFTER the labeled update (the reference
    // code's unlabeled phase runs a fresh forward after optimizer[0].step()).
    const pDet = this.#detachedP(u);
    const r = lossAndGrads(
      () => this.#recLoss(u, pDet, aux),
      this.net.paramsOf("encoder", "recDecoder"),
    );
    pDet?.dispose();
    const lrRec = this.#lr(this.#hp.lrRec, i);
    this.optRec!.step(r.grads, lrRec);
    disposeGrads(r.grads);
    const loss = tf.add(s.value, r.value);
    return readLosses({ loss, seg: s.value, rec: r.value, ...aux }, { lrSeg, lrRec });
  }

  predict(patch: tf.Tensor5D): tf.Tensor5D {
    return tf.tidy(() => twoClass(this.net.forward(patch, { rec: false }).seg!));
  }

  state(): MethodState {
    const s = optimizerEntries("optim_seg", this.optSeg);
    const r = this.optRec ? optimizerEntries("optim_rec", this.optRec) : { tensors: {}, extra: {} };
    return {
      tensors: { ...this.net.state("net."), ...s.tensors, ...r.tensors },
      extra: { ...s.extra, ...r.extra },
    };
  }

  restore(st: MethodState): void {
    this.net.restore(st.tensors, "net.");
    restoreOptimizer(st, "optim_seg", this.optSeg);
    if (this.optRec) restoreOptimizer(st, "optim_rec", this.optRec);
  }

  dispose(): void {
    this.net.dispose();
    this.optSeg.dispose();
    this.optRec?.dispose();
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
  create: (hp, ctx) => new MasslMethod(hp, ctx, "attention"),
};
