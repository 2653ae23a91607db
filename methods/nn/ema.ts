/**
 * Mean-teacher EMA update (Tarvainen & Valpola 2017) as UA-MT's `update_ema_variables`
 * (`code/train_LA_meanteacher_certainty_unlabel.py`):
 * `alpha = min(1 - 1/(global_step + 1), alpha_max)`; `ema = alpha*ema + (1 - alpha)*param`
 * for every PARAMETER. BN running statistics are buffers and are not averaged: the teacher
 * keeps the ones its own train-mode forwards produce (`update_ema_variables` loops over
 * `model.parameters()` only).
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";

/** `min(1 - 1/(step + 1), decay)`, `step` = the 0-based iteration just taken. */
export function emaAlpha(step: number, decay: number): number {
  return Math.min(1 - 1 / (step + 1), decay);
}

/**
 * Update `teacher` parameters in place from `student` (same keys and shapes); returns alpha.
 * Call after the optimizer step with the 0-based iteration index.
 */
export function emaUpdate(
  teacher: ReadonlyMap<string, tf.Variable>,
  student: ReadonlyMap<string, tf.Variable>,
  step: number,
  decay: number,
): number {
  const alpha = emaAlpha(step, decay);
  tf.tidy(() => {
    for (const [k, t] of teacher) {
      const s = student.get(k);
      if (s === undefined) throw new Error(`emaUpdate: student has no parameter '${k}'`);
      t.assign(tf.add(tf.mul(alpha, t), tf.mul(1 - alpha, s)));
    }
  });
  return alpha;
}
