/**
 * Whether two oneDNN memory descriptors put every element at the same byte, though they are
 * different descriptors: a blocked layout whose blocked dimension is exactly one block is the
 * plain layout. At 16 channels oneDNN's `nCdhw16c` is tfjs's NDHWC, and 16x16 `OIdhw16i16o`
 * weights are DHWIO, yet `dnnl_memory_desc_equal` says no and the conv kernels reordered such
 * tensors (the largest activations of the V-Net, stage 1) into a copy of themselves around
 * every call.
 *
 * The descriptor is read as oneDNN 2.x's `dnnl_memory_desc_t` (dnnl_types.h): ndims, dims,
 * data_type, padded_dims, padded_offsets, offset0, format_kind, then the blocking descriptor
 * (strides, inner_nblks, inner_blks, inner_idxs). {@link layoutReader} checks that reading on
 * descriptors with known answers first and returns null (no skipping) if it does not hold.
 * @module
 */
import { ABI } from "./abi.ts";
import type { Dnnl, MemDesc } from "./dnnl.ts";

const MAX_DIMS = 12;
const OFF = {
  ndims: 0,
  dims: 8,
  paddedDims: 112,
  paddedOffsets: 208,
  offset0: 304,
  formatKind: 312,
  strides: 320,
  innerNblks: 416,
  innerBlks: 424,
  innerIdxs: 520,
} as const;
/** `dnnl_blocked` in `dnnl_format_kind_t`. */
const FORMAT_BLOCKED = 2;

/** A descriptor's element strides, when its layout is a plain strided one (else null). */
export type Strides = number[] | null;

function i64(v: DataView, at: number): number {
  return Number(v.getBigInt64(at, true));
}

/**
 * The element strides of `md` as a plain layout: a blocked dimension counts only when one inner
 * block covers it whole (no padding), and then its stride is its position in the block; any
 * other blocking, a padded dimension or another format kind gives null. Dimensions of size 1
 * get stride 0 (where they sit does not matter).
 */
export function plainStrides(md: MemDesc): Strides {
  const v = new DataView(md.buffer, md.byteOffset, md.byteLength);
  const n = v.getInt32(OFF.ndims, true);
  if (n < 1 || n > MAX_DIMS || v.getInt32(OFF.formatKind, true) !== FORMAT_BLOCKED) return null;
  if (i64(v, OFF.offset0) !== 0) return null;
  const dims: number[] = [];
  for (let d = 0; d < n; d++) {
    const size = i64(v, OFF.dims + 8 * d);
    if (i64(v, OFF.paddedDims + 8 * d) !== size || i64(v, OFF.paddedOffsets + 8 * d) !== 0) {
      return null;
    }
    dims.push(size);
  }
  const nb = v.getInt32(OFF.innerNblks, true);
  if (nb < 0 || nb > MAX_DIMS) return null;
  const blks: number[] = [], idxs: number[] = [];
  for (let k = 0; k < nb; k++) {
    blks.push(i64(v, OFF.innerBlks + 8 * k));
    idxs.push(i64(v, OFF.innerIdxs + 8 * k));
  }
  const strides = dims.map((_, d) => i64(v, OFF.strides + 8 * d));
  // Inner blocks are laid out last to first: block k's stride is the product of those after.
  let inner = 1;
  for (let k = nb - 1; k >= 0; k--) {
    const d = idxs[k]!;
    if (d < 0 || d >= n || idxs.indexOf(d) !== k || blks[k] !== dims[d]) return null;
    strides[d] = inner;
    inner *= blks[k]!;
  }
  return strides.map((s, d) => (dims[d] === 1 ? 0 : s));
}

/** Whether `a` and `b` have the same dims and place every element at the same offset. */
export function sameLayout(a: MemDesc, b: MemDesc): boolean {
  const va = new DataView(a.buffer, a.byteOffset, a.byteLength);
  const vb = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const n = va.getInt32(OFF.ndims, true);
  if (n !== vb.getInt32(OFF.ndims, true)) return false;
  for (let d = 0; d < n; d++) {
    if (i64(va, OFF.dims + 8 * d) !== i64(vb, OFF.dims + 8 * d)) return false;
  }
  const sa = plainStrides(a), sb = plainStrides(b);
  return sa !== null && sb !== null && sa.every((s, d) => s === sb[d]);
}

/**
 * {@link sameLayout} for library `d` once its reading of descriptors is confirmed on known
 * cases (16-channel nCdhw16c = ndhwc; 32 channels is not; 8-channel nCdhw16c is padded), or
 * null when the descriptor layout is not the one this module reads.
 */
export function layoutReader(d: Dnnl): ((a: MemDesc, b: MemDesc) => boolean) | null {
  try {
    const same = d.mdTag([2, 16, 3, 4, 5], ABI.dnnl_ndhwc);
    const blk = d.mdTag([2, 16, 3, 4, 5], ABI.dnnl_nCdhw16c);
    const wide = d.mdTag([2, 32, 3, 4, 5], ABI.dnnl_nCdhw16c);
    const wideP = d.mdTag([2, 32, 3, 4, 5], ABI.dnnl_ndhwc);
    const pad = d.mdTag([2, 8, 3, 4, 5], ABI.dnnl_nCdhw16c);
    const padP = d.mdTag([2, 8, 3, 4, 5], ABI.dnnl_ndhwc);
    const s = plainStrides(same);
    const ok = s !== null && s.join() === [960, 1, 320, 80, 16].join() &&
      sameLayout(blk, same) && !sameLayout(wide, wideP) && !sameLayout(pad, padP) &&
      d.mdBytes(blk) === d.mdBytes(same);
    return ok ? sameLayout : null;
  } catch {
    return null;
  }
}
