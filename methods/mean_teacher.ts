/**
 * Mean Teacher baseline (Tarvainen & Valpola, NeurIPS 2017) in the UA-MT code base's conventions
 * (yulequan/UA-MT `code/train_LA_meanteacher_certainty_unlabel.py` without the uncertainty mask;
 * the MT row of UA-MT's ablation): student on the clean batch (labeled + unlabeled), EMA teacher (decay 0.99,
 * warm-up `min(1 - 1/(t+1), 0.99)`) on unlabeled + `clamp(N(0, 0.1), -0.2, 0.2)` in TRAIN mode
 * (dropout on, BN batch statistics), `L = 0.5 (CE + Dice) + w(t) mean((softmax(s_u) - softmax(t_u))^2)`,
 * `w(t) = 0.1 sigmoid_rampup(iter // 150, 40)`.
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import type { BuildContext, MethodDefinition, StepInfo, StepLosses, TrainBatch } from "./types.ts";
import { ceDiceLoss, softmaxMse } from "./nn/losses.ts";
import { VNET_DEFAULTS, type VNetHp, VNetMethod } from "./nn/method_base.ts";
import { laRamp, rampedWeight, type RampHp } from "./nn/ramps.ts";
import { clampedNoise } from "./nn/uncertainty.ts";
import { fullBatch, readLosses, rows, SGD_CHOICES } from "./nn/training.ts";

/** Hyper-parameters of {@link meanTeacher}. */
export type MeanTeacherHp = VNetHp & RampHp & {
  /** EMA decay (0.99). */
  emaDecay: number;
  /** Teacher input noise std (0.1) and clamp (0.2). */
  noiseStd: number;
  noiseClip: number;
};

/**
 * MT consistency: `mean((softmax(student) - softmax(teacher))^2)` over voxels and classes
 * (`softmax_mse_loss` then `torch.mean`).
 */
export function mtConsistency(studentLogits: tf.Tensor, teacherLogits: tf.Tensor): tf.Scalar {
  return tf.tidy(() => tf.mean(softmaxMse(studentLogits, teacherLogits)));
}

/** Defaults shared by the mean-teacher family (UA-MT LA protocol). */
export const MT_DEFAULTS: MeanTeacherHp = {
  ...VNET_DEFAULTS,
  ...laRamp(0.1),
  emaDecay: 0.99,
  noiseStd: 0.1,
  noiseClip: 0.2,
};

/**
 * Student + EMA teacher with the mean-teacher step ({@link VNetMethod} with a teacher);
 * `consistencyTerm` computes the consistency scalar from the student's unlabeled logits and the
 * teacher's (no-grad) targets. Exported for UA-MT, which only changes the targets and that term.
 */
export class MeanTeacherBase<H extends MeanTeacherHp> extends VNetMethod<H> {
  constructor(hp: H, ctx: BuildContext) {
    super(hp, ctx, { teacherDecay: hp.emaDecay });
  }

  /** Teacher-side tensors for the step (kept; disposed by the caller). */
  protected teacherTargets(u: tf.Tensor5D, step: StepInfo): Record<string, tf.Tensor> {
    return tf.tidy(() => {
      const noise = clampedNoise(u.shape, step.random.noise, this.hp.noiseStd, this.hp.noiseClip);
      const [t] = this.teacher.forward(tf.add(u, noise) as tf.Tensor5D, {
        training: true,
        dropoutRng: step.random.dropout,
      });
      return { teacherLogits: t! };
    });
  }

  /** Consistency scalar (MT: mean softmax-MSE over unlabeled voxels and classes). */
  protected consistencyTerm(
    studentU: tf.Tensor,
    targets: Record<string, tf.Tensor>,
    _step: StepInfo,
  ): tf.Scalar {
    return mtConsistency(studentU, targets.teacherLogits!);
  }

  trainStep(batch: TrainBatch, step: StepInfo): Promise<StepLosses> {
    const bl = batch.labeledImages.shape[0];
    const u = batch.unlabeledImages;
    const targets = u === null ? {} : this.teacherTargets(u, step);
    const w = rampedWeight(this.hp, step.iteration);
    const x = fullBatch(batch);
    const aux: Record<string, tf.Tensor> = {};
    const { loss, lr } = this.minimise(() => {
      const [logits] = this.net.forward(x, { training: true, dropoutRng: step.random.dropout });
      const { loss: sup, ce, dice } = ceDiceLoss(rows(logits!, 0, bl), batch.labels);
      aux.supervised = tf.keep(sup);
      aux.ce = tf.keep(ce);
      aux.dice = tf.keep(dice);
      if (u === null) return sup;
      const cons = this.consistencyTerm(rows(logits!, bl, logits!.shape[0]), targets, step);
      aux.consistency = tf.keep(cons);
      return tf.add(sup, tf.mul(w, cons)) as tf.Scalar;
    }, step);
    x.dispose();
    for (const t of Object.values(targets)) t.dispose();
    return readLosses({ loss, ...aux }, { lr, consistencyWeight: w });
  }
}

/** Registry entry: Mean Teacher (UA-MT code base conventions). */
export const meanTeacher: MethodDefinition<MeanTeacherHp> = {
  id: "mean-teacher",
  meta: {
    title: "MT",
    paper: "Tarvainen & Valpola, NeurIPS 2017 (as run by Yu et al., MICCAI 2019)",
    referenceCode:
      "yulequan/UA-MT code/train_LA_meanteacher_certainty_unlabel.py (without the uncertainty mask)",
    role: "baseline",
    reconstructed: false,
    notes:
      "Consistency on unlabeled images only; teacher in train mode (dropout, BN batch stats); " +
      "predictions from the student.",
  },
  defaults: MT_DEFAULTS,
  choices: SGD_CHOICES,
  create: (hp, ctx) => new MeanTeacherBase(hp, ctx),
};
