/**
 * Challenge-format metrics of WMH 2017 (hjkuijf/wmhchallenge `evaluation.py`): DSC, H95 on
 * in-plane borders, AVD and lesion recall / precision / F1. All inputs are flat C-order arrays
 * over `shape`; `spacing` is in array axis order (mm).
 * @module
 */
import { cubeOffsets, nonZeroAxes, surfaceMask } from "../../methods/nn/neighbours.ts";
import { labelComponents } from "./postprocess.ts";
import { overlapCounts, percentile, type Spacing, surfaceToSurfaceDistances } from "./metrics.ts";

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
  return cubeOffsets(ndim).filter((off) => off[sliceAxis] === 0 && nonZeroAxes(off) > 0);
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
