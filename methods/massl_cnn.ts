/**
 * "CNN" baseline of Chen et al., MICCAI 2019 (MASSL paper, Sec. 4, Tables 1-2): the segmentation
 * path of the MASSL network alone (shared encoder + skip decoder, sigmoid foreground; no
 * reconstruction decoder), trained on labeled images only with the MASSL soft Dice
 * `1 - 2 sum(Y P) / (sum(Y) + sum(P) + 1e-4)` and the labeled-step optimizer of the official
 * code: Adam lr 1e-2, `StepLR(500, 0.5)` stepped before each update
 * (ShuaiChenBIGR/MASSL-segmentation-framework `Network_training_SSL_epoch_BraTS18.py` /
 * `_attention_` scripts, `module/dice_loss.py` `DiceCoefficientLF`).
 * Unlabeled images in the batch are ignored.
 * @module
 */
import type { BuildContext, MethodDefinition, StepInfo, StepLosses, TrainBatch } from "./types.ts";
import { masslDiceLoss } from "./nn/losses.ts";
import { binaryOnly, MasslNetMethod } from "./nn/method_base.ts";
import { foregroundTarget, masslSchedule } from "./nn/massl_train.ts";
import { readLosses } from "./nn/training.ts";

/** Hyper-parameters of {@link masslCnn}. */
export type MasslCnnHp = {
  /** `base_n_filter` (16). */
  nFilters: number;
  /** Adam LR (1e-2). */
  lr: number;
  /** StepLR step size (500) and factor (0.5). */
  lrStep: number;
  lrGamma: number;
};

/** The segmentation path only (`recChannels` 0), one Adam over it (`optim`). */
class MasslCnn extends MasslNetMethod<MasslCnnHp> {
  constructor(hp: MasslCnnHp, ctx: BuildContext) {
    super(hp, ctx, 0);
    this.adam("optim", this.net.params, masslSchedule(hp.lr, hp.lrStep, hp.lrGamma));
  }

  trainStep(batch: TrainBatch, step: StepInfo): Promise<StepLosses> {
    const { loss, lr } = this.minimise(() => {
      const p = this.net.forward(batch.labeledImages, { rec: false }).seg!;
      return masslDiceLoss(p, foregroundTarget(batch.labels));
    }, step);
    return readLosses({ loss }, { lr });
  }
}

/** Registry entry: the MASSL paper's supervised CNN (segmentation path only). */
export const masslCnn: MethodDefinition<MasslCnnHp> = {
  id: "massl-cnn",
  meta: {
    title: "CNN",
    minTrainPatch: 32,
    paper: "Chen et al., MICCAI 2019 (MASSL)",
    referenceCode: "ShuaiChenBIGR/MASSL-segmentation-framework network/ssl_3d_attention.py " +
      "(MASSL_norm segmentation path), module/dice_loss.py",
    role: "baseline",
    reconstructed: false,
    usesUnlabeled: false,
    notes: "Reconstructed details [I]: the CNN baseline's own training script is not released; " +
      "it uses the labeled-step optimizer of the MASSL scripts (Adam 1e-2, StepLR(500, 0.5)). " +
      "Trains on the labeled part of each batch only.",
  },
  defaults: { nFilters: 16, lr: 1e-2, lrStep: 500, lrGamma: 0.5 },
  create: (hp, ctx) => new MasslCnn(hp, binaryOnly("massl-cnn", ctx)),
};
