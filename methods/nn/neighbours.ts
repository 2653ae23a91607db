/**
 * The 3^n neighbourhood of an element of a flat C-order n-D array, in one place for every
 * caller: the offsets of `scipy.ndimage.generate_binary_structure(ndim, connectivity)` (1 = face
 * neighbours, 6 in 3-D; 2 = faces and edges, 18; ndim = full, 26), and the surface mask such a
 * structure defines (medpy's surfaces, skimage's inner boundary, the challenges' borders).
 *
 * Offsets are listed in C order of the 3x3x...x3 cube (last axis fastest, from (-1, ..., -1) to
 * (1, ..., 1)); callers that accumulate over neighbours in this order rely on it.
 * @module
 */

/**
 * Every offset of the 3^ndim cube, the zero offset included, in C order (last axis fastest):
 * the raw neighbourhood that {@link structureOffsets} and other footprints filter.
 */
export function cubeOffsets(ndim: number): number[][] {
  const res: number[][] = [];
  for (let k = 0; k < 3 ** ndim; k++) {
    const off: number[] = [];
    let r = k;
    for (let a = 0; a < ndim; a++) {
      off.unshift((r % 3) - 1);
      r = Math.floor(r / 3);
    }
    res.push(off);
  }
  return res;
}

/** How many axes an offset moves along (0 for the element itself). */
export function nonZeroAxes(off: readonly number[]): number {
  let nz = 0;
  for (const o of off) if (o !== 0) nz++;
  return nz;
}

/**
 * Non-zero offsets of `generate_binary_structure(ndim, connectivity)`: those that move along
 * 1..connectivity axes (a connectivity above ndim is the full cube). Throws on a connectivity
 * that is not an integer >= 1.
 */
export function structureOffsets(ndim: number, connectivity: number): number[][] {
  if (!Number.isInteger(connectivity) || connectivity < 1) {
    throw new Error(`connectivity must be an integer >= 1, got ${connectivity}`);
  }
  return cubeOffsets(ndim).filter((off) => {
    const nz = nonZeroAxes(off);
    return nz > 0 && nz <= connectivity;
  });
}

/** C-order strides (in elements) of `shape`. */
export function cStrides(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length).fill(1);
  for (let a = shape.length - 2; a >= 0; a--) strides[a] = strides[a + 1]! * shape[a + 1]!;
  return strides;
}

/** The flat (C-order) displacement of each offset in an array of `shape`. */
export function flatOffsets(offsets: number[][], shape: readonly number[]): Int32Array {
  const strides = cStrides(shape);
  return Int32Array.from(offsets.map((o) => o.reduce((s, v, a) => s + v * strides[a]!, 0)));
}

/** Whether the element at `coord + off` lies inside an array of `shape`. */
export function insideAt(
  coord: ArrayLike<number>,
  off: readonly number[],
  shape: readonly number[],
): boolean {
  for (let a = 0; a < shape.length; a++) {
    const c = coord[a]! + off[a]!;
    if (c < 0 || c >= shape[a]!) return false;
  }
  return true;
}

/**
 * Visit the rows of a non-empty array of `shape` along its last axis, in C order: `visit(base,
 * interior, coord)` gets the row's first flat index, whether every other coordinate is off the
 * array edge (then the row's inner elements have all their neighbours inside: no bounds
 * checks), and the coordinates of the row, whose last entry the visitor may set (it is 0 again
 * for the next row).
 */
export function forEachRow(
  shape: readonly number[],
  visit: (base: number, interior: boolean, coord: Int32Array) => void,
): void {
  const ndim = shape.length;
  let total = 1;
  for (const d of shape) total *= d;
  const L = shape[ndim - 1]!;
  const coord = new Int32Array(ndim);
  for (let base = 0; base < total && L > 0; base += L) {
    let interior = true;
    for (let a = 0; a < ndim - 1; a++) {
      if (coord[a]! === 0 || coord[a]! === shape[a]! - 1) interior = false;
    }
    visit(base, interior, coord);
    // next row: advance the outer coordinates
    coord[ndim - 1] = 0;
    for (let a = ndim - 2; a >= 0; a--) {
      if (++coord[a]! < shape[a]!) break;
      coord[a] = 0;
    }
  }
}

/**
 * Surface (border) of a binary mask: `mask XOR binary_erosion(mask, structure, border_value)`
 * as medpy `__surface_distances` (and the LiTS `Surface` class with connectivity 2). An element
 * is surface when it is non-zero and some structure neighbour is zero or lies outside the array
 * (`borderValue` 0, scipy's default; with `borderValue` 1 the outside counts as foreground,
 * which is skimage's `find_boundaries(mode='inner')`). `offsets` overrides the structure (used
 * for WMH's in-plane kernel). Returns a 0/1 Uint8Array of the mask's size.
 */
export function surfaceMask(
  mask: ArrayLike<number>,
  shape: readonly number[],
  connectivity = 1,
  borderValue: 0 | 1 = 0,
  offsets?: number[][],
): Uint8Array {
  const ndim = shape.length;
  let total = 1;
  for (const d of shape) total *= d;
  const out = new Uint8Array(total);
  if (total === 0) return out;
  const offs = offsets ?? structureOffsets(ndim, connectivity);
  const flat = flatOffsets(offs, shape);
  const nOff = flat.length;
  const L = shape[ndim - 1]!;
  forEachRow(shape, (base, interior, coord) => {
    for (let q = 0; q < L; q++) {
      const i = base + q;
      if (mask[i] === 0) continue;
      if (interior && q > 0 && q < L - 1) {
        for (let k = 0; k < nOff; k++) {
          if (mask[i + flat[k]!] === 0) {
            out[i] = 1;
            break;
          }
        }
        continue;
      }
      coord[ndim - 1] = q;
      for (let k = 0; k < nOff; k++) {
        if (insideAt(coord, offs[k]!, shape) ? mask[i + flat[k]!] === 0 : borderValue === 0) {
          out[i] = 1;
          break;
        }
      }
    }
  });
  return out;
}
