/**
 * Binary per-case segmentation metrics with medpy semantics (loli/medpy
 * `medpy/metric/binary.py`, read at tags 0.4.0 and 0.5.2):
 *
 * - `dc = 2|R∩G| / (|R|+|G|)`, `jc = |R∩G| / |R∪G|`, `ravd = (|R|-|G|)/|G|`.
 * - Surfaces (`__surface_distances`): `R XOR binary_erosion(R, generate_binary_structure(ndim,
 *   connectivity))` with scipy's default `border_value=0`, so voxels on the array edge are
 *   surface (`surfaceMask`, methods/nn/neighbours.ts). Distances: exact EDT (methods/nn/edt.ts)
 *   to the other surface with per-axis `voxelspacing` (voxel units when none), read at the first
 *   surface's voxels in C order.
 * - `hd` = max of both directed maxima; `hd95` = numpy `percentile(hstack(sd(R,G), sd(G,R)), 95)`
 *   (POOLED, linear interpolation); `asd(R,G)` = mean of sd(R,G) (directed, prediction →
 *   reference as UA-MT calls it); `assd` = 0.4.0: mean of the two directed means, 0.5.2: pooled
 *   mean.
 *
 * The EDT runs on the bounding box of both surfaces (exact: every seed and query lies inside
 * it), which keeps large volumes fast.
 * @module
 */
import { resolveSpacing, seedDistanceSquared } from "../../methods/nn/edt.ts";
import { surfaceMask } from "../../methods/nn/neighbours.ts";

/** Per-axis spacing (array axis order) or one number for all axes. */
export type Spacing = number | readonly number[];

/** Options shared by the surface-distance metrics. */
export interface SurfaceOptions {
  /** medpy `voxelspacing` (array axis order); omitted = voxel units. */
  spacing?: Spacing;
  /** medpy `connectivity` for the erosion footprint (default 1: 6-neighbourhood in 3-D). */
  connectivity?: number;
}

function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

function checkSame(a: ArrayLike<number>, b: ArrayLike<number>, shape: readonly number[]): void {
  const n = sizeOf(shape);
  if (a.length !== n || b.length !== n) {
    throw new Error(`arrays of ${a.length} and ${b.length} elements for shape [${shape}] (${n})`);
  }
}

/** Bounding box [lo, hi) per axis of the non-zero elements of a or b (null when both empty). */
function unionBox(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  shape: readonly number[],
): { lo: number[]; hi: number[] } | null {
  const ndim = shape.length;
  const lo = new Array<number>(ndim).fill(Infinity);
  const hi = new Array<number>(ndim).fill(-Infinity);
  const total = sizeOf(shape);
  if (total === 0) return null;
  const L = shape[ndim - 1]!;
  const coord = new Int32Array(ndim);
  let any = false;
  for (let base = 0; base < total; base += L) {
    let first = -1, last = -1;
    for (let q = 0; q < L; q++) {
      if (a[base + q] !== 0 || b[base + q] !== 0) {
        if (first < 0) first = q;
        last = q;
      }
    }
    if (first >= 0) {
      any = true;
      for (let ax = 0; ax < ndim - 1; ax++) {
        const c = coord[ax]!;
        if (c < lo[ax]!) lo[ax] = c;
        if (c + 1 > hi[ax]!) hi[ax] = c + 1;
      }
      if (first < lo[ndim - 1]!) lo[ndim - 1] = first;
      if (last + 1 > hi[ndim - 1]!) hi[ndim - 1] = last + 1;
    }
    for (let ax = ndim - 2; ax >= 0; ax--) {
      if (++coord[ax]! < shape[ax]!) break;
      coord[ax] = 0;
    }
  }
  return any ? { lo, hi } : null;
}

/** Copy the box [lo, hi) of a flat C-order array into a new Uint8Array (non-zero → 1). */
function cropBinary(
  a: ArrayLike<number>,
  shape: readonly number[],
  lo: readonly number[],
  hi: readonly number[],
): Uint8Array {
  const ndim = shape.length;
  const bshape = lo.map((l, ax) => hi[ax]! - l);
  const n = sizeOf(bshape);
  const out = new Uint8Array(n);
  if (n === 0) return out;
  const strides = new Array<number>(ndim).fill(1);
  for (let ax = ndim - 2; ax >= 0; ax--) strides[ax] = strides[ax + 1]! * shape[ax + 1]!;
  const L = bshape[ndim - 1]!;
  const coord = new Int32Array(ndim);
  for (let dst = 0; dst < n; dst += L) {
    let src = lo[ndim - 1]!;
    for (let ax = 0; ax < ndim - 1; ax++) src += (coord[ax]! + lo[ax]!) * strides[ax]!;
    for (let q = 0; q < L; q++) out[dst + q] = a[src + q] !== 0 ? 1 : 0;
    for (let ax = ndim - 2; ax >= 0; ax--) {
      if (++coord[ax]! < bshape[ax]!) break;
      coord[ax] = 0;
    }
  }
  return out;
}

/** Both directions of medpy `__surface_distances`, sharing the crop and the surfaces. */
export interface SurfaceDistancePair {
  /** sd(R, G): one distance per R-surface voxel (C order), to the nearest G-surface voxel. */
  rToG: Float64Array;
  /** sd(G, R). */
  gToR: Float64Array;
}

/**
 * medpy `__surface_distances(result, reference)` in both directions. Throws like medpy when
 * either mask is empty ("The first/second supplied array does not contain any binary object.").
 * Surfaces are extracted on the full array (so the array edge counts, `border_value=0`), the EDT
 * on the bounding box of both surfaces.
 */
export function surfaceDistancePair(
  result: ArrayLike<number>,
  reference: ArrayLike<number>,
  shape: readonly number[],
  options: SurfaceOptions = {},
): SurfaceDistancePair {
  checkSame(result, reference, shape);
  const spacing = resolveSpacing(options.spacing, shape.length);
  const conn = options.connectivity ?? 1;
  let nR = 0, nG = 0;
  for (let i = 0; i < result.length; i++) {
    if (result[i] !== 0) nR++;
    if (reference[i] !== 0) nG++;
  }
  if (nR === 0) throw new Error("The first supplied array does not contain any binary object.");
  if (nG === 0) throw new Error("The second supplied array does not contain any binary object.");
  const rs = surfaceMask(result, shape, conn, 0);
  const gs = surfaceMask(reference, shape, conn, 0);
  return surfaceToSurfaceDistances(rs, gs, shape, spacing);
}

/**
 * Directed nearest-surface distances between two given surface masks (both non-empty):
 * `rToG[k]` = distance (spacing units) from the k-th non-zero of `rs` (C order) to the nearest
 * non-zero of `gs`, and vice versa; exact EDT on the bounding box of rs ∪ gs (exact because all
 * seeds and queries lie in it). Equivalent to a KD-tree nearest-neighbour query on the physical
 * points (WMH/LiTS challenge code) for an orthonormal direction matrix.
 */
export function surfaceToSurfaceDistances(
  rs: ArrayLike<number>,
  gs: ArrayLike<number>,
  shape: readonly number[],
  spacing?: Spacing,
): SurfaceDistancePair {
  checkSame(rs, gs, shape);
  const sp = resolveSpacing(spacing, shape.length);
  const box = unionBox(rs, gs, shape);
  if (!box) return { rToG: new Float64Array(0), gToR: new Float64Array(0) };
  const bshape = box.lo.map((l, ax) => box.hi[ax]! - l);
  const r = cropBinary(rs, shape, box.lo, box.hi);
  const g = cropBinary(gs, shape, box.lo, box.hi);
  const dtG = seedDistanceSquared(g, bshape, { spacing: sp });
  const rToG = gatherSqrt(dtG, r);
  const dtR = seedDistanceSquared(r, bshape, { spacing: sp });
  return { rToG, gToR: gatherSqrt(dtR, g) };
}

/** sqrt of the squared distances at the selected elements, in C order. */
function gatherSqrt(dt2: Float64Array, sel: Uint8Array): Float64Array {
  let n = 0;
  for (let i = 0; i < sel.length; i++) if (sel[i]) n++;
  const out = new Float64Array(n);
  let k = 0;
  for (let i = 0; i < sel.length; i++) if (sel[i]) out[k++] = Math.sqrt(dt2[i]!);
  return out;
}

/** medpy `__surface_distances(result, reference, voxelspacing, connectivity)` (one direction). */
export function surfaceDistances(
  result: ArrayLike<number>,
  reference: ArrayLike<number>,
  shape: readonly number[],
  options: SurfaceOptions = {},
): Float64Array {
  return surfaceDistancePair(result, reference, shape, options).rToG;
}

/**
 * `numpy.percentile(values, q)` with the default "linear" method: sort, `h = (n-1)·q/100`,
 * `x[⌊h⌋] + (h-⌊h⌋)(x[⌊h⌋+1]-x[⌊h⌋])`. NaN for an empty input.
 */
export function percentile(values: ArrayLike<number>, q: number): number {
  const n = values.length;
  if (n === 0) return NaN;
  const s = Float64Array.from(values).sort();
  const h = (n - 1) * (q / 100);
  const lo = Math.floor(h);
  const hi = Math.min(lo + 1, n - 1);
  const frac = h - lo;
  return s[lo]! + frac * (s[hi]! - s[lo]!);
}

function mean(a: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]!;
  return s / a.length;
}

function maxOf(a: Float64Array): number {
  let m = -Infinity;
  for (let i = 0; i < a.length; i++) if (a[i]! > m) m = a[i]!;
  return m;
}

/** Overlap counts of two binary masks. */
export interface OverlapCounts {
  /** |R| */
  result: number;
  /** |G| */
  reference: number;
  /** |R ∩ G| */
  intersection: number;
  /** total elements */
  total: number;
}

/** |R|, |G|, |R∩G| (non-zero = foreground). */
export function overlapCounts(
  result: ArrayLike<number>,
  reference: ArrayLike<number>,
): OverlapCounts {
  if (result.length !== reference.length) throw new Error("size mismatch");
  let r = 0, g = 0, both = 0;
  for (let i = 0; i < result.length; i++) {
    const a = result[i] !== 0, b = reference[i] !== 0;
    if (a) r++;
    if (b) g++;
    if (a && b) both++;
  }
  return { result: r, reference: g, intersection: both, total: result.length };
}

/**
 * medpy `dc(result, reference)`. Both empty: 0 under medpy ≤ 0.4.0 (`version: "0.4"`), 1 under
 * ≥ 0.5.0 (default).
 */
export function dc(
  result: ArrayLike<number>,
  reference: ArrayLike<number>,
  version: "0.4" | "0.5" = "0.5",
): number {
  const c = overlapCounts(result, reference);
  const den = c.result + c.reference;
  if (den === 0) return version === "0.4" ? 0 : 1;
  return (2 * c.intersection) / den;
}

/**
 * medpy `jc(result, reference)`. Both empty: ZeroDivisionError under ≤ 0.4.0 (returned as NaN
 * with `version: "0.4"`), 1 under ≥ 0.5.0 (default).
 */
export function jc(
  result: ArrayLike<number>,
  reference: ArrayLike<number>,
  version: "0.4" | "0.5" = "0.5",
): number {
  const c = overlapCounts(result, reference);
  const union = c.result + c.reference - c.intersection;
  if (union === 0) return version === "0.4" ? NaN : 1;
  return c.intersection / union;
}

/** medpy `ravd(result, reference) = (|R|-|G|)/|G|`; throws like medpy when G is empty. */
export function ravd(result: ArrayLike<number>, reference: ArrayLike<number>): number {
  const c = overlapCounts(result, reference);
  if (c.reference === 0) {
    throw new Error("The second supplied array does not contain any binary object.");
  }
  return (c.result - c.reference) / c.reference;
}

/** medpy `hd`: max of both directed maximum surface distances. */
export function hd(
  result: ArrayLike<number>,
  reference: ArrayLike<number>,
  shape: readonly number[],
  options: SurfaceOptions = {},
): number {
  const p = surfaceDistancePair(result, reference, shape, options);
  return Math.max(maxOf(p.rToG), maxOf(p.gToR));
}

/** medpy `hd95`: 95th percentile (numpy linear) of the POOLED directed surface distances. */
export function hd95(
  result: ArrayLike<number>,
  reference: ArrayLike<number>,
  shape: readonly number[],
  options: SurfaceOptions = {},
): number {
  const p = surfaceDistancePair(result, reference, shape, options);
  return pooledPercentile(p, 95);
}

function pooledPercentile(p: SurfaceDistancePair, q: number): number {
  const all = new Float64Array(p.rToG.length + p.gToR.length);
  all.set(p.rToG);
  all.set(p.gToR, p.rToG.length);
  return percentile(all, q);
}

/** medpy `asd(result, reference)`: mean of sd(R, G), directed (UA-MT calls asd(pred, gt)). */
export function asd(
  result: ArrayLike<number>,
  reference: ArrayLike<number>,
  shape: readonly number[],
  options: SurfaceOptions = {},
): number {
  return mean(surfaceDistances(result, reference, shape, options));
}

/** Which medpy `assd` definition to use. */
export type AssdVersion = "0.4.0" | "0.5.2";

/**
 * medpy `assd`: `"0.4.0"` = mean(asd(R,G), asd(G,R)); `"0.5.2"` (default) = pooled mean of both
 * directions' distances.
 */
export function assd(
  result: ArrayLike<number>,
  reference: ArrayLike<number>,
  shape: readonly number[],
  options: SurfaceOptions & { version?: AssdVersion } = {},
): number {
  return assdOf(surfaceDistancePair(result, reference, shape, options), options.version ?? "0.5.2");
}

function assdOf(p: SurfaceDistancePair, version: AssdVersion): number {
  if (version === "0.4.0") return (mean(p.rToG) + mean(p.gToR)) / 2;
  let s = 0;
  for (const v of p.rToG) s += v;
  for (const v of p.gToR) s += v;
  return s / (p.rToG.length + p.gToR.length);
}

/**
 * What to report when the prediction and/or the reference is empty (recorded with results):
 * - `"reference-code"`: UA-MT/DTC/MC-Net `test_util.py` `calculate_metric_percase` — an empty
 *   prediction scores `(dice, jaccard, hd95, asd) = (0, 0, 0, 0)` (so do hd and assd here); an
 *   empty reference with a non-empty prediction is unguarded there (medpy raises): dice/jaccard
 *   0 and NaN distances here.
 * - `"medpy-0.5"`: medpy ≥ 0.5: dc/jc = 1 when both empty, 0 when exactly one is; every surface
 *   metric raises RuntimeError → NaN.
 * - `"medpy-0.4"`: medpy 0.4.0: dc = 0 when both empty, jc raises (NaN); surface metrics NaN.
 * - `"brats"` [UNVERIFIED: the CBICA convention, its source not found]: both empty →
 *   dice/jaccard 1, distances 0; exactly one empty → dice/jaccard 0, distances 373.13 (the
 *   240×240×155 diagonal, `bratsPenalty`).
 * - `"lits"`: LiTS evaluation notebook: ASSD = MSD = 0 if either is empty (here every distance);
 *   dice/jaccard as medpy 0.4 (0 when both empty).
 */
export type EmptyPolicy = "reference-code" | "medpy-0.5" | "medpy-0.4" | "brats" | "lits";

/** BraTS penalty distance: diagonal of 240×240×155 (`sqrt(139225)` = 373.1287...). */
export const BRATS_PENALTY = Math.sqrt(240 * 240 + 240 * 240 + 155 * 155);

/** Options for {@link binaryMetrics}. */
export interface BinaryMetricOptions extends SurfaceOptions {
  /** Empty-mask policy (default "reference-code"). */
  emptyPolicy?: EmptyPolicy;
  /** assd definition (default "0.5.2"). */
  assdVersion?: AssdVersion;
}

/** Per-case binary metrics plus the conventions that produced them. */
export interface BinaryMetrics {
  dice: number;
  jaccard: number;
  /** medpy hd95 (pooled), in spacing units (voxels when no spacing). */
  hd95: number;
  /** medpy hd. */
  hd: number;
  /** medpy asd(pred, gt): directed pred → gt mean. */
  asd: number;
  /** medpy assd per `assdVersion`. */
  assd: number;
  /** medpy ravd(pred, gt); NaN when gt is empty. */
  ravd: number;
  /** Which mask(s) were empty. */
  empty: "none" | "prediction" | "reference" | "both";
  /** Conventions used, to record with the results. */
  conventions: {
    emptyPolicy: EmptyPolicy;
    assdVersion: AssdVersion;
    spacing: number[] | null;
    connectivity: number;
  };
}

/**
 * All per-case binary metrics of a prediction against a reference, medpy semantics, sharing one
 * surface/EDT computation: `dc, jc, hd95, hd, asd(pred, gt), assd, ravd(pred, gt)`.
 */
export function binaryMetrics(
  prediction: ArrayLike<number>,
  reference: ArrayLike<number>,
  shape: readonly number[],
  options: BinaryMetricOptions = {},
): BinaryMetrics {
  checkSame(prediction, reference, shape);
  const policy = options.emptyPolicy ?? "reference-code";
  const assdVersion = options.assdVersion ?? "0.5.2";
  const connectivity = options.connectivity ?? 1;
  const spacing = options.spacing === undefined
    ? null
    : resolveSpacing(options.spacing, shape.length);
  const conventions = { emptyPolicy: policy, assdVersion, spacing, connectivity };
  const c = overlapCounts(prediction, reference);
  const union = c.result + c.reference - c.intersection;
  const ravdV = c.reference === 0 ? NaN : (c.result - c.reference) / c.reference;
  const empty: BinaryMetrics["empty"] = c.result === 0
    ? (c.reference === 0 ? "both" : "prediction")
    : (c.reference === 0 ? "reference" : "none");
  if (empty !== "none") {
    const both = empty === "both";
    const filled = (d: number, j: number, dist: number): BinaryMetrics => ({
      dice: d,
      jaccard: j,
      hd95: dist,
      hd: dist,
      asd: dist,
      assd: dist,
      ravd: ravdV,
      empty,
      conventions,
    });
    switch (policy) {
      case "reference-code":
        return empty === "prediction" || both ? filled(0, 0, 0) : filled(0, 0, NaN);
      case "medpy-0.5":
        return filled(both ? 1 : 0, both ? 1 : 0, NaN);
      case "medpy-0.4":
        return filled(0, both ? NaN : 0, NaN);
      case "brats":
        return both ? filled(1, 1, 0) : filled(0, 0, BRATS_PENALTY);
      case "lits":
        return filled(0, 0, 0);
    }
  }
  const p = surfaceDistancePair(prediction, reference, shape, {
    ...(spacing ? { spacing } : {}),
    connectivity,
  });
  return {
    dice: (2 * c.intersection) / (c.result + c.reference),
    jaccard: c.intersection / union,
    hd95: pooledPercentile(p, 95),
    hd: Math.max(maxOf(p.rToG), maxOf(p.gToR)),
    asd: mean(p.rToG),
    assd: assdOf(p, assdVersion),
    ravd: ravdV,
    empty,
    conventions,
  };
}
