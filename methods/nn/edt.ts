/**
 * Exact Euclidean distance transform (EDT) over flat C-order n-D masks, in linear time.
 *
 * Semantics follow `scipy.ndimage.distance_transform_edt(input, sampling)`: every non-zero
 * ("foreground") element gets the Euclidean distance to the nearest zero ("background")
 * element, with per-axis `sampling` (voxel spacing, numpy axis order); zero elements get 0.
 *
 * Algorithm: Felzenszwalb & Huttenlocher, "Distance Transforms of Sampled Functions"
 * (Theory of Computing 8, 2012). The squared transform is separable: start from
 * f = 0 on background and +Infinity on foreground, then run the 1-D lower envelope of
 * parabolas along each axis in turn, with parabola positions scaled by that axis' spacing.
 * Each pass is O(N), so the whole transform is O(ndim · N) and exact (not a chamfer).
 *
 * No background at all: scipy's output is not meaningful there (its feature transform has no
 * site to point at). This module returns `+Infinity` for every element in that case (and for
 * 0-size masks returns an empty array); callers that need another convention test for it with
 * {@link hasZero}.
 * @module
 */

/** Options for {@link edt} / {@link edtSquared}. */
export interface EdtOptions {
  /**
   * Voxel spacing per axis (numpy/C axis order, like scipy's `sampling`); a single number is
   * broadcast to all axes. Default: 1 on every axis (distances in voxel units).
   */
  spacing?: number | readonly number[];
}

/** Product of the dimensions; throws on a negative or non-integer dimension. */
export function shapeSize(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new Error(`bad shape [${shape.join(",")}]`);
    n *= d;
  }
  return n;
}

/** Normalise `spacing` to one positive finite number per axis. */
export function resolveSpacing(
  spacing: number | readonly number[] | undefined,
  ndim: number,
): number[] {
  let s: number[];
  if (spacing === undefined) s = new Array<number>(ndim).fill(1);
  else if (typeof spacing === "number") s = new Array<number>(ndim).fill(spacing);
  else {
    if (spacing.length !== ndim) {
      throw new Error(`spacing has ${spacing.length} entries for a ${ndim}-D array`);
    }
    s = [...spacing];
  }
  for (const v of s) {
    if (!(v > 0) || !Number.isFinite(v)) throw new Error(`spacing must be positive: ${s}`);
  }
  return s;
}

/** True when some element of `mask` is zero (i.e. the EDT is finite everywhere). */
export function hasZero(mask: ArrayLike<number>): boolean {
  for (let i = 0; i < mask.length; i++) if (mask[i] === 0) return true;
  return false;
}

/**
 * One 1-D squared-distance pass (Felzenszwalb-Huttenlocher lower envelope) in place on
 * `f[0..n)`, sample positions `q * h`. `+Infinity` samples contribute no parabola.
 * `v`, `z`, `d` are scratch buffers of length ≥ n, n+1, n.
 */
function envelope1d(
  f: Float64Array,
  n: number,
  h: number,
  v: Int32Array,
  z: Float64Array,
  d: Float64Array,
): void {
  let k = -1;
  for (let q = 0; q < n; q++) {
    const fq = f[q]!;
    if (fq === Infinity) continue;
    const xq = q * h;
    const cq = fq + xq * xq;
    if (k < 0) {
      k = 0;
      v[0] = q;
      z[0] = -Infinity;
      z[1] = Infinity;
      continue;
    }
    let s: number;
    for (;;) {
      const p = v[k]!;
      const xp = p * h;
      s = (cq - (f[p]! + xp * xp)) / (2 * (xq - xp));
      if (s <= z[k]! && k > 0) k--;
      else break;
    }
    // When k reached 0 with s <= z[0] = -Infinity (impossible for finite s) the loop exits.
    k++;
    v[k] = q;
    z[k] = s;
    z[k + 1] = Infinity;
  }
  if (k < 0) return; // whole line is +Infinity: stays so
  let j = 0;
  for (let q = 0; q < n; q++) {
    const xq = q * h;
    while (z[j + 1]! < xq) j++;
    const p = v[j]!;
    const dx = xq - p * h;
    d[q] = dx * dx + f[p]!;
  }
  for (let q = 0; q < n; q++) f[q] = d[q]!;
}

/**
 * Squared exact EDT of a flat C-order mask of the given shape (1-D, 2-D, 3-D or any n-D):
 * for each non-zero element the squared Euclidean distance (in spacing units) to the nearest
 * zero element, 0 on zero elements, `+Infinity` everywhere when the mask has no zero element.
 * Same semantics as `scipy.ndimage.distance_transform_edt(mask, sampling=spacing) ** 2`.
 */
export function edtSquared(
  mask: ArrayLike<number>,
  shape: readonly number[],
  options: EdtOptions = {},
): Float64Array {
  return edtCore(mask, shape, options, false);
}

/**
 * Squared distance from every element to the nearest NON-zero element of `seeds` (i.e.
 * `distance_transform_edt(seeds == 0, sampling) ** 2`), without building the inverted mask.
 * `+Infinity` everywhere when `seeds` is all zero.
 */
export function seedDistanceSquared(
  seeds: ArrayLike<number>,
  shape: readonly number[],
  options: EdtOptions = {},
): Float64Array {
  return edtCore(seeds, shape, options, true);
}

/**
 * Shared core: `sites` are the zero elements of `mask` (or its non-zero elements when
 * `seedsAreNonZero`). The first pass (last, contiguous axis) is a two-sided linear scan along
 * each line; the remaining axes run the Felzenszwalb-Huttenlocher lower envelope.
 */
function edtCore(
  mask: ArrayLike<number>,
  shape: readonly number[],
  options: EdtOptions,
  seedsAreNonZero: boolean,
): Float64Array {
  const total = shapeSize(shape);
  if (mask.length !== total) {
    throw new Error(`mask has ${mask.length} elements, shape [${shape.join(",")}] needs ${total}`);
  }
  const ndim = shape.length;
  const spacing = resolveSpacing(options.spacing, ndim);
  const out = new Float64Array(total);
  if (total === 0) return out;
  // pass 1: last axis, 1-D distance to the nearest site on the same line
  {
    const n = shape[ndim - 1]!;
    const h = spacing[ndim - 1]!;
    for (let base = 0; base < total; base += n) {
      let last = -1;
      for (let q = 0; q < n; q++) {
        const isSite = (mask[base + q] !== 0) === seedsAreNonZero;
        if (isSite) last = q;
        out[base + q] = last < 0 ? Infinity : q - last;
      }
      last = -1;
      for (let q = n - 1; q >= 0; q--) {
        const isSite = (mask[base + q] !== 0) === seedsAreNonZero;
        if (isSite) last = q;
        if (last >= 0 && last - q < out[base + q]!) out[base + q] = last - q;
      }
      for (let q = 0; q < n; q++) {
        const d = out[base + q]! * h;
        out[base + q] = d * d;
      }
    }
  }
  const maxLen = Math.max(...shape);
  const f = new Float64Array(maxLen);
  const d = new Float64Array(maxLen);
  const v = new Int32Array(maxLen);
  const z = new Float64Array(maxLen + 1);
  let stride = shape[ndim - 1]!;
  for (let a = ndim - 2; a >= 0; a--) {
    const n = shape[a]!;
    const h = spacing[a]!;
    const block = n * stride;
    const nOuter = total / block;
    if (n > 1) {
      for (let o = 0; o < nOuter; o++) {
        const base0 = o * block;
        for (let i = 0; i < stride; i++) {
          const base = base0 + i;
          let nonZero = false;
          let finite = false;
          for (let q = 0, idx = base; q < n; q++, idx += stride) {
            const val = out[idx]!;
            f[q] = val;
            if (val !== 0) nonZero = true;
            if (val !== Infinity) finite = true;
          }
          // all zero (sites) or all +Infinity (no site reachable yet): the pass changes nothing
          if (!nonZero || !finite) continue;
          envelope1d(f, n, h, v, z, d);
          for (let q = 0, idx = base; q < n; q++, idx += stride) out[idx] = f[q]!;
        }
      }
    }
    stride = block;
  }
  return out;
}

/**
 * Exact Euclidean distance transform: `scipy.ndimage.distance_transform_edt(mask,
 * sampling=spacing)` for a flat C-order mask. Non-zero elements get the distance to the
 * nearest zero element, zero elements 0; `+Infinity` everywhere when there is no zero element
 * (scipy's value there is undefined). O(ndim · N) time, O(N) memory.
 */
export function edt(
  mask: ArrayLike<number>,
  shape: readonly number[],
  options: EdtOptions = {},
): Float64Array {
  const out = edtSquared(mask, shape, options);
  for (let i = 0; i < out.length; i++) out[i] = Math.sqrt(out[i]!);
  return out;
}

/**
 * Distance from every element to the nearest element where `seeds` is non-zero, i.e.
 * `distance_transform_edt(~seeds, sampling)` as medpy's `__surface_distances` calls it with
 * the reference border as seeds. `+Infinity` everywhere when `seeds` is empty.
 */
export function distanceToSeeds(
  seeds: ArrayLike<number>,
  shape: readonly number[],
  options: EdtOptions = {},
): Float64Array {
  const out = seedDistanceSquared(seeds, shape, options);
  for (let i = 0; i < out.length; i++) out[i] = Math.sqrt(out[i]!);
  return out;
}
