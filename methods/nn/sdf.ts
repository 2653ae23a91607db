/**
 * Signed distance maps as DTC (Luo et al., AAAI 2021; `code/utils/util.py` `compute_sdf`)
 * builds its regression target, plus the inner boundary of a binary mask
 * (`skimage.segmentation.find_boundaries(mask, mode='inner')`).
 *
 * Per sample (DTC loops over the batch; each sample's patch is normalised on its own):
 * ```
 * posdis   = distance_transform_edt(mask)      // fg voxels: distance to nearest bg
 * negdis   = distance_transform_edt(~mask)     // bg voxels: distance to nearest fg
 * boundary = find_boundaries(mask, mode='inner')
 * sdf = (negdis - min negdis)/(max negdis - min negdis) - (posdis - min posdis)/(max posdis - min posdis)
 * sdf[boundary] = 0
 * ```
 * so the map is positive outside, negative inside, in [-1, 1], with unit voxel spacing unless
 * `spacing` is given. A sample without foreground is all zeros (DTC's `if posmask.any()`).
 *
 * Deviation (documented): a sample that is *entirely* foreground has no background, so DTC's
 * formula divides 0 by 0 (NaN target). This module returns all zeros for it instead.
 * @module
 */
import { edt, type EdtOptions, shapeSize } from "./edt.ts";
import { structureOffsets, surfaceMask } from "./neighbours.ts";

/**
 * Inner boundary of a binary mask, as `skimage.segmentation.find_boundaries(mask,
 * mode='inner', connectivity=1)`: skimage computes `dilation(m, fp) != erosion(m, fp)` with the
 * connectivity-1 footprint (`generate_binary_structure(ndim, 1)`, the face neighbours) and
 * keeps foreground pixels. For a 0/1 mask that is: **foreground elements with at least one
 * background face-neighbour inside the array**. skimage's grey erosion pads by reflection,
 * so the array edge does not create boundary (unlike medpy's surfaces, where scipy's
 * `binary_erosion` uses `border_value=0`). `connectivity` (1..ndim) selects the footprint
 * like `generate_binary_structure(ndim, connectivity)`.
 * Returns a 0/1 Uint8Array of the same size.
 */
export function innerBoundary(
  mask: ArrayLike<number>,
  shape: readonly number[],
  connectivity = 1,
): Uint8Array {
  const total = shapeSize(shape);
  if (mask.length !== total) throw new Error(`mask size ${mask.length} != shape size ${total}`);
  // The outside counts as foreground (border value 1): the array edge is no boundary.
  return surfaceMask(mask, shape, connectivity, 1, structureOffsets(shape.length, connectivity));
}

/** Options for {@link computeSdf}. */
export interface SdfOptions {
  /** Voxel spacing for both EDTs (DTC uses unit spacing, the default). */
  spacing?: EdtOptions["spacing"];
}

/**
 * DTC `compute_sdf` for ONE mask (flat C-order over `shape`, any non-zero = foreground):
 * normalised signed distance map, positive outside, negative inside, 0 on the inner boundary,
 * all zeros when the mask has no foreground (DTC) or no background (deviation: DTC gives NaN).
 */
export function computeSdfSingle(
  mask: ArrayLike<number>,
  shape: readonly number[],
  options: SdfOptions = {},
): Float32Array {
  const total = shapeSize(shape);
  if (mask.length !== total) throw new Error(`mask size ${mask.length} != shape size ${total}`);
  const out = new Float32Array(total);
  let nFg = 0;
  const pos = new Uint8Array(total);
  const neg = new Uint8Array(total);
  for (let i = 0; i < total; i++) {
    const fg = mask[i] !== 0;
    if (fg) nFg++;
    pos[i] = fg ? 1 : 0;
    neg[i] = fg ? 0 : 1;
  }
  if (nFg === 0 || nFg === total) return out;
  const edtOpts: EdtOptions = options.spacing === undefined ? {} : { spacing: options.spacing };
  const posdis = edt(pos, shape, edtOpts);
  const negdis = edt(neg, shape, edtOpts);
  const [pMin, pMax] = minMax(posdis);
  const [nMin, nMax] = minMax(negdis);
  const boundary = innerBoundary(pos, shape);
  const pr = pMax - pMin;
  const nr = nMax - nMin;
  for (let i = 0; i < total; i++) {
    out[i] = boundary[i] ? 0 : (negdis[i]! - nMin) / nr - (posdis[i]! - pMin) / pr;
  }
  return out;
}

function minMax(a: Float64Array): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < a.length; i++) {
    const v = a[i]!;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return [lo, hi];
}

/**
 * DTC `compute_sdf(img_gt, out_shape)` over a batch: `masks` is flat C-order over
 * `[B, ...spatial]` (e.g. `[B, x, y, z]`; a trailing channel of 1 may be included in
 * `spatialShape` only if you want it treated as an axis, so normally pass the 3 spatial dims).
 * Each sample is normalised independently (see {@link computeSdfSingle}); the result has the
 * same layout as `masks`.
 */
export function computeSdf(
  masks: ArrayLike<number>,
  batch: number,
  spatialShape: readonly number[],
  options: SdfOptions = {},
): Float32Array {
  const per = shapeSize(spatialShape);
  if (masks.length !== batch * per) {
    throw new Error(`masks has ${masks.length} elements, expected ${batch} x ${per}`);
  }
  const out = new Float32Array(batch * per);
  const isTyped = ArrayBuffer.isView(masks);
  for (let b = 0; b < batch; b++) {
    const slice: ArrayLike<number> = isTyped
      ? (masks as unknown as Uint8Array).subarray(b * per, (b + 1) * per)
      : Array.prototype.slice.call(masks, b * per, (b + 1) * per) as number[];
    out.set(computeSdfSingle(slice, spatialShape, options), b * per);
  }
  return out;
}
