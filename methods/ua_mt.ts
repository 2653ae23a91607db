/**
 * UA-MT (Yu et al., MICCAI 2019; yulequan/UA-MT `code/train_LA_meanteacher_certainty_unlabel.py`):
 * mean teacher whose consistency is restricted to voxels the teacher is certain about. T = 8 MC
 * teacher passes (4 forwards over the unlabeled batch repeated twice, fresh input noise each,
 * dropout on); predictive entropy U of the mean softmax; threshold
 * `(0.75 + 0.25 sigmoid_rampup(iter, maxIter)) ln 2`; `L_con = sum(M D) / (2 sum(M) + 1e-16)`.
 * @module
 */
import type * as tf from "@tensorflow/tfjs-core";
import type { MethodDefinition, StepInfo } from "./types.ts";
import { softmaxMse } from "./nn/losses.ts";
import { maskedConsistency, mcCertaintyMask, type McHp } from "./nn/uncertainty.ts";
import { MeanTeacherBase, type MeanTeacherHp, MT_DEFAULTS } from "./mean_teacher.ts";
import { SGD_CHOICES } from "./nn/training.ts";

/** Hyper-parameters of {@link uaMt}. */
export type UaMtHp = MeanTeacherHp & McHp;

class UaMt extends MeanTeacherBase<UaMtHp> {
  protected override teacherTargets(u: tf.Tensor5D, step: StepInfo): Record<string, tf.Tensor> {
    const base = super.teacherTargets(u, step);
    const mask = mcCertaintyMask(this.teacher, u, this.hp, step, this.ctx.nClasses);
    return { ...base, mask };
  }

  protected override consistencyTerm(
    studentU: tf.Tensor,
    targets: Record<string, tf.Tensor>,
    _step: StepInfo,
  ): tf.Scalar {
    return maskedConsistency(softmaxMse(studentU, targets.teacherLogits!), targets.mask!);
  }
}

/** Registry entry: UA-MT (the `_unlabel` script: consistency on unlabeled images only). */
export const uaMt: MethodDefinition<UaMtHp> = {
  id: "ua-mt",
  meta: {
    title: "UA-MT",
    paper:
      "Yu et al., Uncertainty-aware Self-ensembling Model for Semi-supervised 3D Left Atrium Segmentation, MICCAI 2019",
    referenceCode: "yulequan/UA-MT code/train_LA_meanteacher_certainty_unlabel.py",
    role: "baseline",
    reconstructed: false,
    notes: "Threshold ramps over StepInfo.totalIterations; ln 2 generalised to ln(nClasses).",
  },
  defaults: { ...MT_DEFAULTS, mcPasses: 8, mcRepeats: 2 },
  choices: SGD_CHOICES,
  create: (hp, ctx) => new UaMt(hp, ctx),
};
