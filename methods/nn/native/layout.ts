/**
 * Tight-loop JS kernels for two ops whose tfjs cpu kernels are generic and slow on the loss
 * head of a 3D network: `Slice` (tfjs copies a non-contiguous slice element by element through
 * index <-> location conversions: ~240 ms for one class channel of a 2x64x64x48x2 softmax) and
 * `Softmax` over the last axis (tfjs runs max, sub, exp, sum, div as five full-size kernels).
 * Both return null for cases they do not cover, which go to the original JS kernel.
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { f32, type KernelArgs, type NativeImpl, sizeOf } from "./kernel.ts";

/**
 * Copy the box `begin`/`size` out of the row-major array `x` of shape `shape` into `out`,
 * one contiguous run per innermost row (`subarray`+`set` for long runs).
 */
export function sliceInto(
  x: Float32Array,
  shape: readonly number[],
  begin: readonly number[],
  size: readonly number[],
  out: Float32Array,
): void {
  const r = shape.length;
  const strides = new Array<number>(r);
  let st = 1;
  for (let i = r - 1; i >= 0; i--) {
    strides[i] = st;
    st *= shape[i]!;
  }
  // Merge trailing dims copied whole into the run.
  let last = r - 1, run = size[last] ?? 1;
  while (last > 0 && size[last] === shape[last] && begin[last] === 0) {
    last--;
    run *= size[last]!;
  }
  const rows = sizeOf(size.slice(0, last));
  const idx = new Array<number>(last).fill(0);
  let base = 0;
  for (let i = 0; i < r; i++) base += begin[i]! * strides[i]!;
  let src = base, dst = 0;
  for (let row = 0; row < rows; row++) {
    if (run === 1) out[dst] = x[src]!;
    else if (run < 16) { for (let k = 0; k < run; k++) out[dst + k] = x[src + k]!; }
    else out.set(x.subarray(src, src + run), dst);
    dst += run;
    // advance the odometer over dims [0, last)
    for (let d = last - 1; d >= 0; d--) {
      idx[d]!++;
      src += strides[d]!;
      if (idx[d]! < size[d]!) break;
      src -= size[d]! * strides[d]!;
      idx[d] = 0;
    }
  }
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
    const out = new Float32Array(n);
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
    const out = new Float32Array(xv.length);
    softmaxRows(xv, x.shape[r - 1]!, out);
    return backend.makeTensorInfo([...x.shape], "float32", out);
  };
  return { Slice, Softmax };
}
