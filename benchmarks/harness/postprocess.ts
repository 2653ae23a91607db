/**
 * Connected components and largest-connected-component post-processing over flat C-order
 * n-D binary masks (union-find over typed arrays, one raster pass plus one relabel pass).
 *
 * Connectivity follows `scipy.ndimage.generate_binary_structure(ndim, connectivity)` /
 * `skimage.measure.label(connectivity=...)`: 1 = face neighbours (6 in 3-D), 2 = faces+edges
 * (18), 3 = full (26). The default is full connectivity (`ndim`), skimage's default, which DTC's
 * `getLargestCC` uses (HiLab-git/DTC `code/test_util.py`; skimage `measure.label` default).
 * @module
 */
import {
  flatOffsets,
  forEachRow,
  insideAt,
  structureOffsets,
} from "../../methods/nn/neighbours.ts";

/** Result of {@link labelComponents}. */
export interface Components {
  /** Component id per element (0 = background, 1..count in raster order of first element). */
  labels: Int32Array;
  /** Number of components. */
  count: number;
  /** `sizes[id]` = element count of component id (`sizes[0]` = background count). */
  sizes: Int32Array;
}

function find(parent: Int32Array, i: number): number {
  let r = i;
  while (parent[r]! !== r) r = parent[r]!;
  // path compression
  while (parent[i]! !== r) {
    const n = parent[i]!;
    parent[i] = r;
    i = n;
  }
  return r;
}

/** Offsets of the neighbours that precede an element in C order, for the given connectivity. */
function backwardOffsets(ndim: number, connectivity: number): number[][] {
  if (!Number.isInteger(connectivity) || connectivity < 1 || connectivity > ndim) {
    throw new Error(`connectivity must be an integer in 1..${ndim}, got ${connectivity}`);
  }
  // lexicographically negative = precedes in C order
  return structureOffsets(ndim, connectivity).filter((off) => off.find((o) => o !== 0)! < 0);
}

/**
 * Label the connected components of the non-zero elements of `mask` (flat C order over
 * `shape`), like `skimage.measure.label(mask, connectivity=connectivity)`: ids are assigned in
 * raster (C) order of each component's first element, 0 is background.
 * `connectivity` defaults to `shape.length` (full: 26-neighbourhood in 3-D).
 */
export function labelComponents(
  mask: ArrayLike<number>,
  shape: readonly number[],
  connectivity: number = shape.length,
): Components {
  const ndim = shape.length;
  let total = 1;
  for (const d of shape) total *= d;
  if (mask.length !== total) throw new Error(`mask size ${mask.length} != shape size ${total}`);
  const offs = backwardOffsets(ndim, connectivity);
  const flatOff = flatOffsets(offs, shape);
  const parent = new Int32Array(total).fill(-1);
  const nOff = offs.length;
  const L = shape[ndim - 1]!;
  forEachRow(shape, (base, interior, coord) => {
    for (let q = 0; q < L; q++) {
      const i = base + q;
      if (mask[i] === 0) continue;
      parent[i] = i;
      let root = i;
      const fast = interior && q > 0 && q < L - 1;
      coord[ndim - 1] = q;
      for (let k = 0; k < nOff; k++) {
        if (!fast && !insideAt(coord, offs[k]!, shape)) continue;
        const j = i + flatOff[k]!;
        if (parent[j]! < 0) continue;
        const rj = find(parent, j);
        if (rj === root) continue;
        // union: keep the smaller index as root (so roots are first raster elements)
        if (rj < root) {
          parent[root] = rj;
          root = rj;
        } else parent[rj] = root;
      }
    }
  });
  const labels = new Int32Array(total);
  let count = 0;
  const sizeList: number[] = [0];
  for (let i = 0; i < total; i++) {
    if (parent[i]! < 0) {
      sizeList[0]!++;
      continue;
    }
    const r = find(parent, i);
    if (r === i) {
      labels[i] = ++count;
      sizeList.push(1);
    } else {
      const id = labels[r]!; // r < i, already labelled
      labels[i] = id;
      sizeList[id]!++;
    }
  }
  return { labels, count, sizes: Int32Array.from(sizeList) };
}

/** Options for {@link largestConnectedComponent}. */
export interface LccOptions {
  /** 1..ndim as scipy/skimage (default: full = ndim, skimage's `label` default). */
  connectivity?: number;
  /**
   * Empty input: `"empty"` returns an all-zero mask (default); `"throw"` mirrors DTC's
   * `getLargestCC`, which asserts at least one component (AssertionError).
   */
  onEmpty?: "empty" | "throw";
}

/**
 * Keep only the largest connected component (DTC `test_util.py` `getLargestCC`:
 * `labels = skimage.measure.label(seg)`, keep `argmax(bincount(labels.flat)[1:]) + 1`, so ties go
 * to the component that appears first in raster order). Returns a 0/1 Uint8Array.
 */
export function largestConnectedComponent(
  mask: ArrayLike<number>,
  shape: readonly number[],
  options: LccOptions = {},
): Uint8Array {
  const { labels, count, sizes } = labelComponents(
    mask,
    shape,
    options.connectivity ?? shape.length,
  );
  const out = new Uint8Array(labels.length);
  if (count === 0) {
    if (options.onEmpty === "throw") throw new Error("largestConnectedComponent: no component");
    return out;
  }
  let best = 1;
  for (let id = 2; id <= count; id++) if (sizes[id]! > sizes[best]!) best = id;
  for (let i = 0; i < labels.length; i++) out[i] = labels[i] === best ? 1 : 0;
  return out;
}
