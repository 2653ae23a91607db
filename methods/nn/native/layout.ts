/**
 * Tight-loop JS kernels for ops whose tfjs cpu kernels are generic and slow on 3D networks:
 * `PadV2` (MASSL's stride-2 convs pad one zero before; ~15 ms a call at 32^3 x 4 channels),
 * `Slice` (tfjs copies a non-contiguous slice element by element through index <-> location
 * conversions: ~240 ms for one class channel of a 2x64x64x48x2 softmax) and `Softmax` over the
 * last axis (tfjs runs max, sub, exp, sum, div as five full-size kernels). Each returns null
 * for cases it does not cover, which go to the original JS kernel.
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { f32, type KernelArgs, type NativeImpl, sizeOf } from "./kernel.ts";
import { output, outputZeroed } from "./pool.ts";

function stridesOf(shape: readonly number[]): number[] {
  const st = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    st[i] = acc;
    acc *= shape[i]!;
  }
  return st;
}

/**
 * Copy a box of `size` from row-major `src` (shape `srcShape`, box corner `srcAt`) into
 * row-major `dst` (shape `dstShape`, corner `dstAt`), one contiguous run per innermost row:
 * trailing dims that the box covers whole in both arrays are merged into the run.
 */
export function copyBox(
  src: Float32Array,
  srcShape: readonly number[],
  srcAt: readonly number[],
  dst: Float32Array,
  dstShape: readonly number[],
  dstAt: readonly number[],
  size: readonly number[],
): void {
  const r = size.length;
  if (r === 0) {
    dst[0] = src[0]!;
    return;
  }
  const ss = stridesOf(srcShape), ds = stridesOf(dstShape);
  let last = r - 1, run = size[last]!;
  while (last > 0 && size[last] === srcShape[last] && size[last] === dstShape[last]) {
    last--;
    run *= size[last]!;
  }
  const rows = sizeOf(size.slice(0, last));
  const idx = new Array<number>(last).fill(0);
  let s = 0, d = 0;
  for (let i = 0; i < r; i++) {
    s += srcAt[i]! * ss[i]!;
    d += dstAt[i]! * ds[i]!;
  }
  for (let row = 0; row < rows; row++) {
    if (run < 16) { for (let k = 0; k < run; k++) dst[d + k] = src[s + k]!; }
    else dst.set(src.subarray(s, s + run), d);
    for (let k = last - 1; k >= 0; k--) {
      idx[k]!++;
      s += ss[k]!;
      d += ds[k]!;
      if (idx[k]! < size[k]!) break;
      s -= size[k]! * ss[k]!;
      d -= size[k]! * ds[k]!;
      idx[k] = 0;
    }
  }
}

/** Copy the box `begin`/`size` out of `x` (shape `shape`) into the dense `out`. */
export function sliceInto(
  x: Float32Array,
  shape: readonly number[],
  begin: readonly number[],
  size: readonly number[],
  out: Float32Array,
): void {
  copyBox(x, shape, begin, out, size, size.map(() => 0), size);
}

/** Softmax over the last axis of `x` viewed as [rows, c] (max-subtracted, as tfjs). */
export function softmaxRows(x: Float32Array, c: number, out: Float32Array): void {
  const rows = x.length / c;
  for (let r = 0, o = 0; r < rows; r++, o += c) {
    let m = -Infinity;
    for (let k = 0; k < c; k++) if (x[o + k]! > m) m = x[o + k]!;
    let s = 0;
    for (let k = 0; k < c; k++) {
      const e = Math.exp(x[o + k]! - m);
      out[o + k] = e;
      s += e;
    }
    const inv = 1 / s;
    for (let k = 0; k < c; k++) out[o + k]! *= inv;
  }
}

/** The Slice and Softmax kernels (float32 inputs only). */
export function layoutKernels(): Record<string, NativeImpl> {
  const Slice: NativeImpl = ({ inputs, backend, attrs }: KernelArgs) => {
    const x = inputs["x"];
    const xv = f32(backend, x);
    if (!x || !xv || x.shape.length === 0) return null;
    const [begin, size] = tf.slice_util.parseSliceParams(
      x as unknown as tf.Tensor,
      attrs["begin"] as number[],
      attrs["size"] as number[],
    ) as [number[], number[]];
    const n = sizeOf(size);
    if (n === 0) return null;
    const out = output(backend, n);
    sliceInto(xv, x.shape, begin, size, out);
    return backend.makeTensorInfo(size, "float32", out);
  };
  const Softmax: NativeImpl = ({ inputs, backend, attrs }: KernelArgs) => {
    const x = inputs["logits"];
    const xv = f32(backend, x);
    if (!x || !xv || x.shape.length === 0) return null;
    const r = x.shape.length;
    const dim = attrs["dim"] as number;
    if (dim !== -1 && dim !== r - 1) return null;
    const out = output(backend, xv.length);
    softmaxRows(xv, x.shape[r - 1]!, out);
    return backend.makeTensorInfo([...x.shape], "float32", out);
  };
  const PadV2: NativeImpl = ({ inputs, backend, attrs }: KernelArgs) => {
    const x = inputs["x"];
    const xv = f32(backend, x);
    if (!x || !xv || x.shape.length === 0) return null;
    const pads = attrs["paddings"] as [number, number][];
    if (pads.some(([a, b]) => a < 0 || b < 0)) return null;
    const outShape = x.shape.map((v, i) => v + pads[i]![0] + pads[i]![1]);
    const out = outputZeroed(backend, sizeOf(outShape));
    const c = (attrs["constantValue"] as number | undefined) ?? 0;
    if (c !== 0) out.fill(c);
    copyBox(xv, x.shape, x.shape.map(() => 0), out, outShape, pads.map((p) => p[0]), x.shape);
    return backend.makeTensorInfo(outShape, "float32", out);
  };
  return { Slice, Softmax, PadV2 };
}
