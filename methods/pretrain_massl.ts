/**
 * Pre-training baselines of Chen et al., MICCAI 2019 (MASSL paper, Sec. 4, Tables 1-2), on the
 * MASSL network (`methods/nn/massl_net.ts`):
 * - Phase 1, `iteration < pretrainIterations`: the autoencoder (shared encoder + reconstruction
 *   decoder without skips, 1 sigmoid channel per image channel) is trained to reconstruct its
 *   input, `mean((R - x)^2)`, with Adam lr 1e-3 (the reconstruction optimizer of the MASSL
 *   scripts). Images: the unlabeled ones ("we pretrain the reconstruction network with
 *   unlabeled data first"), or labeled + unlabeled with `pretrainData: "all"`.
 * - Phase 2: the segmentation decoder is trained with the MASSL soft Dice on labeled images
 *   (Adam lr 1e-2, a fresh optimizer). `finetune: "dec"` = Pretrain(Dec): the encoder is kept
 *   fixed "to ensure that the segmentation task can only use the features learned from
 *   unlabeled images"; `finetune: "cnn"` = Pretrain(CNN): the whole segmentation network
 *   (encoder + seg decoder) is fine-tuned.
 * The harness calls one `trainStep` per iteration, so the phase is chosen by
 * `step.iteration < pretrainIterations`; each phase's `StepLR(500, 0.5)` counts iterations from
 * the phase start.
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
import { foregroundTarget, masslLr, MasslNet, twoClass } from "./nn/massl_net.ts";
import { optimizerEntries, readLosses, restoreOptimizer } from "./nn/training.ts";

/** Hyper-parameters of {@link masslPretrain}. */
export type MasslPretrainHp = {
  /** `base_n_filter` (16). */
  nFilters: number;
  /** "dec" = Pretrain(Dec) (encoder frozen), "cnn" = Pretrain(CNN) (encoder fine-tuned). */
  finetune: string;
  /** Iterations of autoencoder pre-training before fine-tuning starts [I]. */
  pretrainIterations: number;
  /** Pre-training images: "unlabeled" (paper) or "all" (labeled + unlabeled). */
  pretrainData: string;
  /** Adam LRs of the two phases (1e-3 reconstruction, 1e-2 segmentation). */
  lrRec: number;
  lrSeg: number;
  /** StepLR step size (500) and factor (0.5), per phase. */
  lrStep: number;
  lrGamma: number;
};

class MasslPretrain implements Method {
  readonly #net: MasslNet;
  readonly #optPre: Adam;
  readonly #optFt: Adam;
  readonly #ftParams: Map<string, tf.Variable>;
  readonly #hp: MasslPretrainHp;

  constructor(hp: MasslPretrainHp, ctx: BuildContext) {
    if (ctx.nClasses !== 2) {
      throw new Error(`massl-pretrain: binary segmentation only (nClasses 2), got ${ctx.nClasses}`);
    }
    if (hp.finetune !== "dec" && hp.finetune !== "cnn") {
      throw new Error(`massl-pretrain: finetune must be 'dec' or 'cnn', got '${hp.finetune}'`);
    }
    if (hp.pretrainData !== "unlabeled" && hp.pretrainData !== "all") {
      throw new Error(
        `massl-pretrain: pretrainData must be 'unlabeled' or 'all', got '${hp.pretrainData}'`,
      );
    }
    this.#hp = hp;
    this.#net = new MasslNet(
      { inChannels: ctx.inChannels, nFilters: hp.nFilters, recChannels: ctx.inChannels },
      new Rng(ctx.initSeed),
    );
    this.#optPre = new Adam(this.#net.paramsOf("encoder", "recDecoder"));
    this.#ftParams = hp.finetune === "dec"
      ? this.#net.paramsOf("segDecoder")
      : this.#net.paramsOf("encoder", "segDecoder");
    this.#optFt = new Adam(this.#ftParams);
  }

  trainStep(batch: TrainBatch, step: StepInfo): Promise<StepLosses> {
    const hp = this.#hp;
    const i = step.iteration;
    if (i < hp.pretrainIterations) {
      const x = hp.pretrainData === "all" && batch.unlabeledImages !== null
        ? tf.concat([batch.labeledImages, batch.unlabeledImages], 0)
        : tf.clone(batch.unlabeledImages ?? batch.labeledImages);
      const { value, grads } = lossAndGrads(
        () => mse(this.#net.forward(x, { seg: false }).rec!, x),
        this.#net.paramsOf("encoder", "recDecoder"),
      );
      x.dispose();
      const lr = masslLr(hp.lrRec, i, hp.lrStep, hp.lrGamma);
      this.#optPre.step(grads, lr);
      disposeGrads(grads);
      return readLosses({ loss: value }, { lr, phase: 0 });
    }
    const { value, grads } = lossAndGrads(() => {
      const p = this.#net.forward(batch.labeledImages, { rec: false }).seg!;
      return masslDiceLoss(p, foregroundTarget(batch.labels));
    }, this.#ftParams);
    const lr = masslLr(hp.lrSeg, i - hp.pretrainIterations, hp.lrStep, hp.lrGamma);
    this.#optFt.step(grads, lr);
    disposeGrads(grads);
    return readLosses({ loss: value }, { lr, phase: 1 });
  }

  predict(patch: tf.Tensor5D): tf.Tensor5D {
    return tf.tidy(() => twoClass(this.#net.forward(patch, { rec: false }).seg!));
  }

  state(): MethodState {
    const a = optimizerEntries("optim_pre", this.#optPre);
    const b = optimizerEntries("optim_ft", this.#optFt);
    return {
      tensors: { ...this.#net.state("net."), ...a.tensors, ...b.tensors },
      extra: { ...a.extra, ...b.extra },
    };
  }

  restore(s: MethodState): void {
    this.#net.restore(s.tensors, "net.");
    restoreOptimizer(s, "optim_pre", this.#optPre);
    restoreOptimizer(s, "optim_ft", this.#optFt);
  }

  dispose(): void {
    this.#net.dispose();
    this.#optPre.dispose();
    this.#optFt.dispose();
  }
}

/** Registry entry: Pretrain(Dec) (default) / Pretrain(CNN) (`finetune: "cnn"`). */
export const masslPretrain: MethodDefinition<MasslPretrainHp> = {
  id: "massl-pretrain",
  meta: {
    title: "Pretrain",
    minTrainPatch: 32,
    paper: "Chen et al., MICCAI 2019 (MASSL)",
    referenceCode: "ShuaiChenBIGR/MASSL-segmentation-framework network/ssl_3d_sep.py, " +
      "Network_training_SSL_epoch_BraTS18.py (mode 'rec' / 'seg' phases)",
    role: "baseline",
    reconstructed: false,
    notes: "Reconstructed details [I]: the pre-training scripts are not released; phase lengths " +
      "(pretrainIterations, then the rest of the run), the per-phase Adam/StepLR and the 1-channel " +
      "image autoencoder follow the MSSL script. Phase chosen by step.iteration.",
  },
  defaults: {
    nFilters: 16,
    finetune: "dec",
    pretrainIterations: 2000,
    pretrainData: "unlabeled",
    lrRec: 1e-3,
    lrSeg: 1e-2,
    lrStep: 500,
    lrGamma: 0.5,
  },
  create: (hp, ctx) => new MasslPretrain(hp, ctx),
};
