/**
 * Supervised V-Net baseline (UA-MT `code/train_LA.py`, spec methods.md §3): the V-Net of
 * §3.1 trained with `0.5 * (CE + Dice(softmax[..., 1], y == 1))` on the labeled images only;
 * unlabeled images are ignored. SGD 0.01 / momentum 0.9 / wd 1e-4, LR x0.1 every 2500 iterations.
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import type { MethodDefinition, StepInfo, StepLosses, TrainBatch } from "./types.ts";
import { ceDiceLoss } from "./nn/losses.ts";
import { disposeGrads, lossAndGrads } from "./nn/optim.ts";
import { LA_SGD, laLr, readLosses, type SingleVNetHp, SingleVNetMethod } from "./nn/training.ts";

/** Hyper-parameters of {@link supervised}: V-Net width, dropout and the LA SGD set-up. */
export type SupervisedHp = SingleVNetHp;

class Supervised extends SingleVNetMethod<SupervisedHp> {
  trainStep(batch: TrainBatch, step: StepInfo): Promise<StepLosses> {
    const aux: Record<string, tf.Tensor> = {};
    const { value, grads } = lossAndGrads(() => {
      const [logits] = this.net.forward(batch.labeledImages, {
        training: true,
        dropoutRng: step.random.dropout,
      });
      const { loss, ce, dice } = ceDiceLoss(logits!, batch.labels);
      aux.ce = tf.keep(ce);
      aux.dice = tf.keep(dice);
      return loss;
    }, this.net.params);
    const lr = laLr(this.hp, step.iteration, step.totalIterations);
    this.opt.step(grads, lr);
    disposeGrads(grads);
    return readLosses({ loss: value, ...aux }, { lr });
  }
}

/** Registry entry: supervised-only V-Net (labeled images only). */
export const supervised: MethodDefinition<SupervisedHp> = {
  id: "supervised",
  meta: {
    title: "Supervised (V-Net)",
    paper: "V-Net baseline as used by Yu et al., MICCAI 2019 (UA-MT)",
    referenceCode: "yulequan/UA-MT code/train_LA.py, code/networks/vnet.py",
    role: "baseline",
    reconstructed: false,
    usesUnlabeled: false,
    notes: "Trains on the labeled part of each batch only (the reference script uses batch 4 all " +
      "labeled; the harness decides the batch).",
  },
  defaults: { nFilters: 16, dropout: 0.5, ...LA_SGD },
  create: (hp, ctx) => new Supervised(hp, ctx),
};
