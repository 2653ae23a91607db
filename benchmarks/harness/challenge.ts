/**
 * Challenge-format metrics: WMH 2017 (hjkuijf/wmhchallenge `evaluation.py`), LiTS 2017
 * (PatrickChrist/LITS-CHALLENGE `evaluation_notebook.ipynb` + `surface.py`) and BraTS regions
 * (CBICA conventions, [UNVERIFIED]: the CBICA evaluation source was not found).
 * All inputs are flat C-order arrays over `shape`; `spacing` is in array axis order (mm).
 * @module
 */
import { resolveSpacing } from "../../methods/nn/edt.ts";
import { labelComponents } from "./postprocess.ts";
import {
  binaryMetrics,
  BRATS_PENALTY,
  overlapCounts,
  percentile,
  type Spacing,
  surfaceDistancePair,
  surfaceMask,
  surfaceToSurfaceDistances,
} from "./metrics.ts";

// ---------------------------------------------------------------------------------------------
// WMH 2017
// ---------------------------------------------------------------------------------------------

/** Options for {@link wmhMetrics}. */
export interface WmhOptions {
  /** Voxel size per array axis in mm (default 1). */
  spacing?: Spacing;
  /**
   * The through-plane (slice) axis that `BinaryErode(img, (1,1,0))` does not erode. ITK radius
   * (1,1,0) is in (x, y, z) index order, so for arrays in (x, y, z) order (this suite's volumes)
   * it is 2 (default); for SimpleITK `GetArrayFromImage` (z, y, x) arrays it is 0.
   */
  sliceAxis?: number;
  /**
   * How the result is binarised (evaluation.py `getResultFilename`/`getImages`): "integer"
   * → `>= 1`, "float" → `>= 0.5`. Default: "float" for Float32/Float64 arrays, else "integer".
   */
  resultKind?: "integer" | "float";
  /**
   * Outside of the array counts as foreground during the border erosion (SimpleITK
   * `BinaryErode(..., boundaryToForeground=True)`, its default; [INF]: ITK's edge boundary
   * condition is unverified).
   */
  edgeIsForeground?: boolean;
}

/** WMH challenge scores for one case. */
export interface WmhMetrics {
  /** `1 - scipy.spatial.distance.dice(test, result)`; NaN when both are empty. */
  dsc: number;
  /** max(p95(test→result), p95(result→test)) in mm with 2-D in-plane borders; NaN if either empty. */
  h95: number;
  /** |V_test - V_result| / V_test × 100 (%); NaN when the GT is empty (unguarded division). */
  avd: number;
  /** #GT lesions (26-connected) overlapping the result / #GT lesions; 1 when no GT lesions. */
  recall: number;
  /** #result lesions overlapping the GT / #result lesions; 1 when no result lesions. */
  precision: number;
  /** 2PR/(P+R); 0 when P+R = 0. */
  f1: number;
  /** Counts behind the scores. */
  counts: { test: number; result: number; gtLesions: number; resultLesions: number };
}

/** In-plane 3×3 square offsets (ITK ball of radius 1 in-plane, 0 through-plane). */
function inPlaneSquare(ndim: number, sliceAxis: number): number[][] {
  const res: number[][] = [];
  for (let k = 0; k < 3 ** ndim; k++) {
    const off: number[] = [];
    let r = k;
    for (let a = 0; a < ndim; a++) {
      off.unshift((r % 3) - 1);
      r = Math.floor(r / 3);
    }
    if (off[sliceAxis] !== 0) continue;
    if (off.every((o) => o === 0)) continue;
    res.push(off);
  }
  return res;
}

/**
 * WMH 2017 challenge metrics (hjkuijf/wmhchallenge `evaluation.py`): GT `test = label == 1`;
 * the result is set to 0 where `label == 2` and then binarised; DSC, H95 (max of the two directed
 * 95th percentiles, numpy linear, in mm, borders `img - BinaryErode(img, (1,1,0))`), AVD (%),
 * lesion recall / precision / F1 over 26-connected components.
 */
export function wmhMetrics(
  label: ArrayLike<number>,
  result: ArrayLike<number>,
  shape: readonly number[],
  options: WmhOptions = {},
): WmhMetrics {
  const n = label.length;
  if (result.length !== n) throw new Error("label/result size mismatch");
  const kind = options.resultKind ??
    (result instanceof Float32Array || result instanceof Float64Array ? "float" : "integer");
  const thr = kind === "float" ? 0.5 : 1;
  const test = new Uint8Array(n);
  const res = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const l = label[i]!;
    test[i] = l === 1 ? 1 : 0;
    res[i] = l !== 2 && result[i]! >= thr ? 1 : 0;
  }
  const c = overlapCounts(res, test);
  const den = c.result + c.reference;
  const dsc = den === 0 ? NaN : (2 * c.intersection) / den;
  const avd = c.reference === 0 ? NaN : (Math.abs(c.reference - c.result) / c.reference) * 100;

  let h95 = NaN;
  if (c.result > 0 && c.reference > 0) {
    const sliceAxis = options.sliceAxis ?? 2;
    const offs = inPlaneSquare(shape.length, sliceAxis);
    const border = (options.edgeIsForeground ?? true) ? 1 : 0;
    const ts = surfaceMask(test, shape, 1, border, offs);
    const rs = surfaceMask(res, shape, 1, border, offs);
    const p = surfaceToSurfaceDistances(ts, rs, shape, options.spacing);
    h95 = Math.max(percentile(p.rToG, 95), percentile(p.gToR, 95));
  }

  const ccT = labelComponents(test, shape, shape.length);
  const ccR = labelComponents(res, shape, shape.length);
  const hitT = new Uint8Array(ccT.count + 1);
  const hitR = new Uint8Array(ccR.count + 1);
  for (let i = 0; i < n; i++) {
    if (test[i] && res[i]) {
      hitT[ccT.labels[i]!] = 1;
      hitR[ccR.labels[i]!] = 1;
    }
  }
  let detT = 0, detR = 0;
  for (let k = 1; k <= ccT.count; k++) detT += hitT[k]!;
  for (let k = 1; k <= ccR.count; k++) detR += hitR[k]!;
  const recall = ccT.count === 0 ? 1 : detT / ccT.count;
  const precision = ccR.count === 0 ? 1 : detR / ccR.count;
  const f1 = recall + precision === 0 ? 0 : (2 * precision * recall) / (precision + recall);
  return {
    dsc,
    h95,
    avd,
    recall,
    precision,
    f1,
    counts: {
      test: c.reference,
      result: c.result,
      gtLesions: ccT.count,
      resultLesions: ccR.count,
    },
  };
}

// ---------------------------------------------------------------------------------------------
// LiTS 2017
// ---------------------------------------------------------------------------------------------

/** LiTS per-structure scores (evaluation_notebook.ipynb). */
export interface LitsScores {
  /** medpy dc(pred, label); 0 when both are empty (medpy ≤ 0.4). */
  dice: number;
  /** medpy jc; NaN when both are empty (ZeroDivisionError in medpy ≤ 0.4). */
  jaccard: number;
  /** 1 - jaccard. */
  voe: number;
  /** medpy ravd(label, pred) = (|label| - |pred|)/|pred| (arguments reversed); NaN if pred empty. */
  rvd: number;
  /** Surface-class ASSD: 18-neighbourhood borders, pooled mean, mm; 0 if either is empty. */
  assd: number;
  /** medpy hd(label, pred, spacing) (6-neighbourhood surfaces); 0 if either is empty. */
  msd: number;
}

/**
 * LiTS `Surface`-class ASSD: borders by `binary_erosion(…, generate_binary_structure(3, 2))`
 * (18-neighbourhood, border 0), nearest-neighbour distances in mm, `(Σd(A→B) + Σd(B→A)) /
 * (|S_A| + |S_B|)`. 0 when either mask is empty (the notebook's convention).
 */
export function litsAssd(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  shape: readonly number[],
  spacing?: Spacing,
): number {
  const c = overlapCounts(a, b);
  if (c.result === 0 || c.reference === 0) return 0;
  const p = surfaceDistancePair(a, b, shape, {
    ...(spacing === undefined ? {} : { spacing }),
    connectivity: 2,
  });
  let s = 0;
  for (const v of p.rToG) s += v;
  for (const v of p.gToR) s += v;
  return s / (p.rToG.length + p.gToR.length);
}

/** LiTS scores for one binary structure (`pred`, `label` already binarised). */
export function litsScores(
  label: ArrayLike<number>,
  pred: ArrayLike<number>,
  shape: readonly number[],
  spacing?: Spacing,
): LitsScores {
  const c = overlapCounts(pred, label);
  const den = c.result + c.reference;
  const union = den - c.intersection;
  const dice = den === 0 ? 0 : (2 * c.intersection) / den;
  const jaccard = union === 0 ? NaN : c.intersection / union;
  const rvd = c.result === 0 ? NaN : (c.reference - c.result) / c.result;
  let assd = 0, msd = 0;
  if (c.result > 0 && c.reference > 0) {
    assd = litsAssd(label, pred, shape, spacing);
    const p = surfaceDistancePair(label, pred, shape, spacing === undefined ? {} : { spacing });
    msd = Math.max(max(p.rToG), max(p.gToR));
  }
  return { dice, jaccard, voe: 1 - jaccard, rvd, assd, msd };
}

function max(a: Float64Array): number {
  let m = -Infinity;
  for (const v of a) if (v > m) m = v;
  return m;
}

/**
 * LiTS per-case metrics for liver (`label >= 1`) and lesion (`label == 2`), with the volume's
 * spacing (`header.get_zooms()[:3]`), as the evaluation notebook computes them.
 */
export function litsCaseMetrics(
  label: ArrayLike<number>,
  pred: ArrayLike<number>,
  shape: readonly number[],
  spacing?: Spacing,
): { liver: LitsScores; lesion: LitsScores } {
  const n = label.length;
  if (pred.length !== n) throw new Error("label/pred size mismatch");
  const lL = new Uint8Array(n), pL = new Uint8Array(n);
  const lT = new Uint8Array(n), pT = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    lL[i] = label[i]! >= 1 ? 1 : 0;
    pL[i] = pred[i]! >= 1 ? 1 : 0;
    lT[i] = label[i] === 2 ? 1 : 0;
    pT[i] = pred[i] === 2 ? 1 : 0;
  }
  return {
    liver: litsScores(lL, pL, shape, spacing),
    lesion: litsScores(lT, pT, shape, spacing),
  };
}

/** "Dice global" accumulator: Dice over all voxels of all cases pooled (LiTS ranking). */
export class GlobalDice {
  #inter = 0;
  #sum = 0;
  /** Add one case (binary masks). */
  add(pred: ArrayLike<number>, label: ArrayLike<number>): void {
    const c = overlapCounts(pred, label);
    this.#inter += c.intersection;
    this.#sum += c.result + c.reference;
  }
  /** 2 Σ|P∩G| / Σ(|P|+|G|); NaN before any foreground was seen. */
  value(): number {
    return this.#sum === 0 ? NaN : (2 * this.#inter) / this.#sum;
  }
}

// ---------------------------------------------------------------------------------------------
// BraTS
// ---------------------------------------------------------------------------------------------

/** BraTS evaluation region. */
export type BratsRegion = "WT" | "TC" | "ET";

/**
 * BraTS region masks: WT = label > 0, TC = label ∈ {1, ET}, ET = label == etLabel (4 for
 * 2018-2021; 3 from 2023).
 */
export function bratsRegionMask(
  label: ArrayLike<number>,
  region: BratsRegion,
  etLabel = 4,
): Uint8Array {
  const out = new Uint8Array(label.length);
  for (let i = 0; i < label.length; i++) {
    const l = label[i]!;
    out[i] = region === "WT"
      ? (l > 0 ? 1 : 0)
      : region === "TC"
      ? (l === 1 || l === etLabel ? 1 : 0)
      : (l === etLabel ? 1 : 0);
  }
  return out;
}

/** BraTS per-region scores. */
export interface BratsScores {
  dice: number;
  /** medpy hd95 (pooled), mm; [UNVERIFIED] against CBICA's implementation. */
  hd95: number;
  /** TP / (TP + FN); NaN when the region is absent from the GT. */
  sensitivity: number;
  /** TN / (TN + FP) over the whole array (no brain mask). */
  specificity: number;
}

/**
 * BraTS per-case scores for WT, TC, ET with the commonly quoted (unverified) empty
 * conventions: both empty → Dice 1, HD95 0; exactly one empty → Dice 0, HD95 373.13
 * ({@link BRATS_PENALTY}).
 */
export function bratsCaseMetrics(
  label: ArrayLike<number>,
  pred: ArrayLike<number>,
  shape: readonly number[],
  options: { spacing?: Spacing; etLabel?: number } = {},
): Record<BratsRegion, BratsScores> {
  const spacing = options.spacing === undefined
    ? undefined
    : resolveSpacing(options.spacing, shape.length);
  const out = {} as Record<BratsRegion, BratsScores>;
  for (const region of ["WT", "TC", "ET"] as const) {
    const g = bratsRegionMask(label, region, options.etLabel ?? 4);
    const p = bratsRegionMask(pred, region, options.etLabel ?? 4);
    const m = binaryMetrics(p, g, shape, {
      emptyPolicy: "brats",
      ...(spacing ? { spacing } : {}),
    });
    const c = overlapCounts(p, g);
    const tp = c.intersection, fn = c.reference - tp, fp = c.result - tp;
    const tn = c.total - tp - fn - fp;
    out[region] = {
      dice: m.dice,
      hd95: m.hd95,
      sensitivity: c.reference === 0 ? NaN : tp / (tp + fn),
      specificity: tn + fp === 0 ? NaN : tn / (tn + fp),
    };
  }
  return out;
}

export { BRATS_PENALTY };
