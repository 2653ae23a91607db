/**
 * "CNN" baseline of Chen et al., MICCAI 2019 (MASSL paper, Sec. 4, Tables 1-2): the segmentation
 * path of the MASSL network alone (shared encoder + skip decoder, sigmoid foreground; no
 * reconstruction decoder), trained on labeled images only with the MASSL soft Dice
 * `1 - 2 sum(Y P) / (sum(Y) + sum(P) + 1e-4)` and the labeled-step optimizer of the official
 * code: Adam lr 1e-2, `StepLR(500, 0.5)` stepped before each update
 * (`Network_training_SSL_epoch_BraTS18.py` / `_attention_` scripts, spec methods.md §1.4).
 * Unlabeled images in the batch are ignored.
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
import { masslDiceLoss } from "./nn/losses.ts";
import { Adam, disposeGrads, lossAndGrads } from "./nn/optim.ts";
import { foregroundTarget, masslLr, MasslNet, twoClass } from "./nn/massl_net.ts";
import { optimizerEntries, readLosses, restoreOptimizer } from "./nn/training.ts";

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

class MasslCnn implements Method {
  readonly #net: MasslNet;
  readonly #opt: Adam;
  readonly #hp: MasslCnnHp;

  constructor(hp: MasslCnnHp, ctx: BuildContext) {
    if (ctx.nClasses !== 2) {
      throw new Error(`massl-cnn: binary segmentation only (nClasses 2), got ${ctx.nClasses}`);
    }
    this.#hp = hp;
    this.#net = new MasslNet(
      { inChannels: ctx.inChannels, nFilters: hp.nFilters, recChannels: 0 },
      new Rng(ctx.initSeed),
    );
    this.#opt = new Adam(this.#net.params);
  }

  trainStep(batch: TrainBatch, step: StepInfo): Promise<StepLosses> {
    const { value, grads } = lossAndGrads(() => {
      const p = this.#net.forward(batch.labeledImages, { rec: false }).seg!;
      return masslDiceLoss(p, foregroundTarget(batch.labels));
    }, this.#net.params);
    const lr = masslLr(this.#hp.lr, step.iteration, this.#hp.lrStep, this.#hp.lrGamma);
    this.#opt.step(grads, lr);
    disposeGrads(grads);
    return readLosses({ loss: value }, { lr });
  }

  predict(patch: tf.Tensor5D): tf.Tensor5D {
    return tf.tidy(() => twoClass(this.#net.forward(patch, { rec: false }).seg!));
  }

  state(): MethodState {
    const o = optimizerEntries("optim", this.#opt);
    return { tensors: { ...this.#net.state("net."), ...o.tensors }, extra: o.extra };
  }

  restore(s: MethodState): void {
    this.#net.restore(s.tensors, "net.");
    restoreOptimizer(s, "optim", this.#opt);
  }

  dispose(): void {
    this.#net.dispose();
    this.#opt.dispose();
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
  create: (hp, ctx) => new MasslCnn(hp, ctx),
};
