/**
 * Supervised V-Net baseline (UA-MT `code/train_LA.py`, `code/networks/vnet.py`): the UA-MT V-Net
 * trained with `0.5 * (CE + Dice(softmax[..., 1], y == 1))` on the labeled images only; unlabeled
 * images are ignored. SGD 0.01 / momentum 0.9 / wd 1e-4, LR x0.1 every 2500 iterations.
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import type { MethodDefinition, StepInfo, StepLosses, TrainBatch } from "./types.ts";
import { ceDiceLoss } from "./nn/losses.ts";
import { VNET_DEFAULTS, type VNetHp, VNetMethod } from "./nn/method_base.ts";
import { readLosses, SGD_CHOICES } from "./nn/training.ts";

/** Hyper-parameters of {@link supervised}: V-Net width, dropout and the SGD set-up. */
export type SupervisedHp = VNetHp;

class Supervised extends VNetMethod<SupervisedHp> {
  trainStep(batch: TrainBatch, step: StepInfo): Promise<StepLosses> {
    const aux: Record<string, tf.Tensor> = {};
    const { loss, lr } = this.minimise(() => {
      const [logits] = this.net.forward(batch.labeledImages, {
        training: true,
        dropoutRng: step.random.dropout,
      });
      const { loss, ce, dice } = ceDiceLoss(logits!, batch.labels);
      aux.ce = tf.keep(ce);
      aux.dice = tf.keep(dice);
      return loss;
    }, step);
    return readLosses({ loss, ...aux }, { lr });
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
  defaults: { ...VNET_DEFAULTS },
  choices: SGD_CHOICES,
  create: (hp, ctx) => new Supervised(hp, ctx),
};
