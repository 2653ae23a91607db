/**
 * Ramp-up / ramp-down schedules of the mean-teacher family.
 *
 * Semantics follow `code/utils/ramps.py` of yulequan/UA-MT and HiLab-git/DTC (itself from
 * CuriousAI/mean-teacher), and `get_current_consistency_weight` of
 * `train_LA_meanteacher_certainty_unlabel.py` / `train_la_dtc.py` (both call it with
 * `iter_num // 150` and `consistency_rampup = 40`).
 * @module
 */

/**
 * `sigmoid_rampup(current, rampup_length)`: `exp(-5 (1 - clip(t, 0, L)/L)^2)`, 1 when L == 0.
 * Reference: UA-MT `code/utils/ramps.py` `sigmoid_rampup`.
 */
export function sigmoidRampup(current: number, rampupLength: number): number {
  if (rampupLength === 0) return 1.0;
  const t = Math.min(Math.max(current, 0), rampupLength);
  const phase = 1.0 - t / rampupLength;
  return Math.exp(-5.0 * phase * phase);
}

/**
 * `linear_rampup(current, rampup_length)`: `t/L` clipped to [0, 1] (1 once t >= L).
 * Reference: UA-MT `code/utils/ramps.py` `linear_rampup` (asserts t >= 0; we clip).
 */
export function linearRampup(current: number, rampupLength: number): number {
  if (current >= rampupLength) return 1.0;
  return Math.max(current, 0) / rampupLength;
}

/**
 * `cosine_rampdown(current, rampdown_length)`: `0.5 (cos(pi t / L) + 1)` for 0 <= t <= L.
 * Reference: UA-MT `code/utils/ramps.py` `cosine_rampdown` (asserts the range; we clip).
 */
export function cosineRampdown(current: number, rampdownLength: number): number {
  const t = Math.min(Math.max(current, 0), rampdownLength);
  return 0.5 * (Math.cos((Math.PI * t) / rampdownLength) + 1);
}

/**
 * Consistency weight `C * sigmoid_rampup(iter // epochLen, L)`: the reference scripts call
 * `get_current_consistency_weight(iter_num // 150)` with `consistency_rampup = 40`.
 * Reference: UA-MT `train_LA_meanteacher_certainty_unlabel.py`, DTC `train_la_dtc.py`.
 */
export function consistencyWeight(
  c: number,
  iteration: number,
  rampupLength: number,
  epochLength = 150,
): number {
  return c * sigmoidRampup(Math.floor(iteration / epochLength), rampupLength);
}

/** The ramp hyper-parameters of the consistency-weighted methods. */
export type RampHp = {
  /** Final weight C. */
  consistency: number;
  /** Ramp-up length L in "epochs" of `rampupEpochLength` iterations. */
  consistencyRampup: number;
  /** Iterations per ramp-up "epoch" (150). */
  rampupEpochLength: number;
};

/**
 * The LA scripts' ramp with final weight `consistency`: `consistency_rampup = 40` "epochs" of
 * 150 iterations (UA-MT `train_LA_meanteacher_certainty_unlabel.py` and DTC `train_la_dtc.py`,
 * `get_current_consistency_weight(iter_num // 150)`; C = 0.1 in UA-MT, 1.0 in DTC): the
 * defaults of every method that follows that protocol.
 */
export function laRamp(consistency: number): RampHp {
  return { consistency, consistencyRampup: 40, rampupEpochLength: 150 };
}

/** {@link consistencyWeight} of a method's {@link RampHp} at 0-based `iteration`. */
export function rampedWeight(hp: RampHp, iteration: number): number {
  return consistencyWeight(hp.consistency, iteration, hp.consistencyRampup, hp.rampupEpochLength);
}
