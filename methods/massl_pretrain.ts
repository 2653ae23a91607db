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
import type { BuildContext, MethodDefinition, StepInfo, StepLosses, TrainBatch } from "./types.ts";
import { masslDiceLoss, mse } from "./nn/losses.ts";
import { binaryOnly, MasslNetMethod, type OptimizerSlot } from "./nn/method_base.ts";
import { foregroundTarget, masslSchedule } from "./nn/massl_train.ts";
import { readLosses } from "./nn/training.ts";

/** Hyper-parameters of {@link masslPretrain}. */
export type MasslPretrainHp = {
  /** `base_n_filter` (16). */
  nFilters: number;
  /** "dec" = Pretrain(Dec) (encoder frozen), "cnn" = Pretrain(CNN) (encoder fine-tuned). */
  finetune: "dec" | "cnn";
  /** Iterations of autoencoder pre-training before fine-tuning starts [I]. */
  pretrainIterations: number;
  /** Pre-training images: "unlabeled" (paper) or "all" (labeled + unlabeled). */
  pretrainData: "unlabeled" | "all";
  /** Adam LRs of the two phases (1e-3 reconstruction, 1e-2 segmentation). */
  lrRec: number;
  lrSeg: number;
  /** StepLR step size (500) and factor (0.5), per phase. */
  lrStep: number;
  lrGamma: number;
};

/**
 * The autoencoder phase's Adam (`optim_pre`, encoder + rec decoder) and the fine-tuning phase's
 * (`optim_ft`, seg decoder, or encoder + seg decoder for "cnn"), each with its own StepLR.
 */
class MasslPretrain extends MasslNetMethod<MasslPretrainHp> {
  readonly #pre: OptimizerSlot;
  readonly #ft: OptimizerSlot;

  constructor(hp: MasslPretrainHp, ctx: BuildContext) {
    super(hp, ctx, ctx.inChannels);
    this.#pre = this.adam(
      "optim_pre",
      this.net.paramsOf("encoder", "recDecoder"),
      masslSchedule(hp.lrRec, hp.lrStep, hp.lrGamma),
    );
    this.#ft = this.adam(
      "optim_ft",
      hp.finetune === "dec"
        ? this.net.paramsOf("segDecoder")
        : this.net.paramsOf("encoder", "segDecoder"),
      masslSchedule(hp.lrSeg, hp.lrStep, hp.lrGamma, hp.pretrainIterations),
    );
  }

  trainStep(batch: TrainBatch, step: StepInfo): Promise<StepLosses> {
    const hp = this.hp;
    if (step.iteration < hp.pretrainIterations) {
      const x = hp.pretrainData === "all" && batch.unlabeledImages !== null
        ? tf.concat([batch.labeledImages, batch.unlabeledImages], 0)
        : tf.clone(batch.unlabeledImages ?? batch.labeledImages);
      const { loss, lr } = this.minimise(
        () => mse(this.net.forward(x, { seg: false }).rec!, x),
        step,
        { optimizers: this.#pre },
      );
      x.dispose();
      return readLosses({ loss }, { lr, phase: 0 });
    }
    const { loss, lr } = this.minimise(
      () => {
        const p = this.net.forward(batch.labeledImages, { rec: false }).seg!;
        return masslDiceLoss(p, foregroundTarget(batch.labels));
      },
      step,
      { optimizers: this.#ft },
    );
    return readLosses({ loss }, { lr, phase: 1 });
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
  choices: { finetune: ["dec", "cnn"], pretrainData: ["unlabeled", "all"] },
  create: (hp, ctx) => new MasslPretrain(hp, binaryOnly("massl-pretrain", ctx)),
};
