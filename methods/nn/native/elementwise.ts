/**
 * oneDNN element-wise kernels for the tfjs cpu backend: broadcasting binary ops (Add, Sub,
 * Multiply, RealDiv), Relu and Neg (plus JS fast paths for Greater and the reductions Sum and
 * Mean), on float32 tensors of at least {@link MIN_ELEMENTS} elements (smaller ones stay in JS,
 * where the FFI round trip would dominate). Shapes are first collapsed (adjacent dims with the
 * same broadcast / reduce role merged), so a per-channel bias on NDHWC becomes a
 * `[rows, C] (+) [1, C]` problem that oneDNN's jit kernels handle.
 *
 * Sum and Mean accumulate in float64 (as tfjs's own JS kernel), never on oneDNN's reduction
 * primitive: that one accumulates in float32, which put a whole-tensor CE mean off by 1.8e-5
 * relative at 2x64^3 and 7.5e-5 at 4x112x112x80 (float64: one float32 rounding, <= 6e-8).
 * Cost, measured on 8M elements (1 thread): whole-tensor sum 14 ms (oneDNN 1.2 ms), rows of 2
 * (last axis of [N,D,H,W,2]) 18 ms (oneDNN 35 ms); a few whole sums per training step.
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { ABI } from "./abi.ts";
import type { Dnnl, Primitive } from "./dnnl.ts";
import { PrimitiveCache } from "./dnnl.ts";
import { f32, type KernelArgs, type NativeImpl, sizeOf } from "./kernel.ts";
import { output } from "./pool.ts";

/** Tensors smaller than this (output elements) use the JS kernels. */
export const MIN_ELEMENTS = 4096;

/**
 * Collapse `dims` by role: drop size-1 dims, merge neighbours whose `role` is equal. Returns the
 * merged sizes and roles (at least one dim).
 */
export function collapse(
  dims: readonly number[],
  role: readonly boolean[],
): { dims: number[]; role: boolean[] } {
  const out: number[] = [], r: boolean[] = [];
  for (let i = 0; i < dims.length; i++) {
    if (dims[i] === 1) continue;
    if (r.length > 0 && r[r.length - 1] === role[i]) out[out.length - 1]! *= dims[i]!;
    else {
      out.push(dims[i]!);
      r.push(role[i]!);
    }
  }
  if (out.length === 0) return { dims: [1], role: [false] };
  return { dims: out, role: r };
}

const BINARY_ALG: Record<string, number> = {
  Add: ABI.dnnl_binary_add,
  Sub: ABI.dnnl_binary_sub,
  Multiply: ABI.dnnl_binary_mul,
  RealDiv: ABI.dnnl_binary_div,
};
const COMMUTATIVE = new Set(["Add", "Multiply"]);

/** `y[a, c] = sum_r x[a, r, c]` (or the mean), float64 accumulation. */
function reduceMiddle(
  x: Float32Array,
  y: Float32Array,
  aa: number,
  rr: number,
  cc: number,
  mean: boolean,
): void {
  const acc = new Float64Array(cc);
  const s = mean ? 1 / rr : 1;
  for (let a = 0; a < aa; a++) {
    acc.fill(0);
    let o = a * rr * cc;
    for (let r = 0; r < rr; r++, o += cc) {
      for (let c = 0; c < cc; c++) acc[c]! += x[o + c]!;
    }
    for (let c = 0; c < cc; c++) y[a * cc + c] = acc[c]! * s;
  }
}

/**
 * `y[a] = sum_r x[a, r]` (or the mean) for `x` [aa, rr]: one float64 accumulator per row, added
 * in index order (the order of tfjs's JS Sum, so the sums are the same bits). Four interleaved
 * accumulators measured no faster here (11 vs 14 ms for 8M elements, slower for short rows).
 */
function reduceRows(x: Float32Array, y: Float32Array, aa: number, rr: number, mean: boolean) {
  for (let a = 0, o = 0; a < aa; a++) {
    let acc = 0;
    const end = o + rr;
    for (; o < end; o++) acc += x[o]!;
    y[a] = mean ? acc / rr : acc;
  }
}

/**
 * Any other collapsed pattern (e.g. `[R, A, R]`): float64 accumulators, one per output, `x`
 * walked once in memory order, a run of the innermost dim at a time.
 */
export function reduceStrided(
  x: Float32Array,
  y: Float32Array,
  dims: readonly number[],
  role: readonly boolean[],
  mean: boolean,
): void {
  const last = dims.length - 1;
  const run = dims[last]!;
  const outStride = new Array<number>(dims.length).fill(0);
  let outSize = 1, count = 1;
  for (let i = last; i >= 0; i--) {
    if (role[i]) count *= dims[i]!;
    else {
      outStride[i] = outSize;
      outSize *= dims[i]!;
    }
  }
  const acc = new Float64Array(outSize);
  const idx = new Array<number>(last).fill(0);
  const innerReduced = role[last] === true;
  for (let p = 0, o = 0; p < x.length;) {
    if (innerReduced) {
      let t = 0;
      for (let j = 0; j < run; j++, p++) t += x[p]!;
      acc[o]! += t;
    } else {
      for (let j = 0; j < run; j++, p++) acc[o + j]! += x[p]!;
    }
    for (let i = last - 1; i >= 0; i--) {
      o += outStride[i]!;
      if (++idx[i]! < dims[i]!) break;
      o -= outStride[i]! * dims[i]!;
      idx[i] = 0;
    }
  }
  for (let i = 0; i < outSize; i++) y[i] = mean ? acc[i]! / count : acc[i]!;
}

/** `s - b` / `s / b` for a scalar `s` (oneDNN binary broadcasts only its second input). */
function scalarFirst(
  name: string,
  a: tf.TensorInfo,
  b: tf.TensorInfo,
  outShape: number[],
  backend: KernelArgs["backend"],
): tf.TensorInfo | null {
  const av = f32(backend, a), bv = f32(backend, b);
  if (!av || !bv || av.length !== 1) return null;
  const s = av[0]!, y = output(backend, bv.length);
  if (name === "Sub") { for (let i = 0; i < y.length; i++) y[i] = s - bv[i]!; }
  else if (name === "RealDiv") { for (let i = 0; i < y.length; i++) y[i] = s / bv[i]!; }
  else return null;
  return backend.makeTensorInfo(outShape, "float32", y);
}

/** Build the element-wise kernels on library `d`. */
export function elementwiseKernels(d: Dnnl): Record<string, NativeImpl> {
  const cache = new PrimitiveCache(512);

  const binaryPrim = (alg: number, dims0: number[], dims1: number[]): Primitive | null =>
    cache.get(`b${alg}|${dims0}|${dims1}`, () => {
      const m0 = d.mdDense(dims0), m1 = d.mdDense(dims1), mo = d.mdDense(dims0);
      const op = new Uint8Array(ABI.sizeof_dnnl_binary_desc_t);
      d.check("binary_desc_init", d.sym.dnnl_binary_desc_init(op, alg, m0, m1, mo));
      return d.primitive(op, [[ABI.DNNL_ARG_SRC, m0], [ABI.DNNL_ARG_SRC_1, m1], [
        ABI.DNNL_ARG_DST,
        mo,
      ]]);
    });

  const binary = (name: string): NativeImpl => ({ inputs, backend }: KernelArgs) => {
    let a = inputs["a"], b = inputs["b"];
    if (!a || !b) return null;
    const outShape = tf.backend_util.assertAndGetBroadcastShape(a.shape, b.shape);
    const n = sizeOf(outShape);
    if (n < MIN_ELEMENTS) return null;
    const same = (s: number[]) =>
      s.length === outShape.length && s.every((v, i) => v === outShape[i]);
    if (!same(a.shape)) {
      if (!same(b.shape)) return null;
      if (!COMMUTATIVE.has(name)) return scalarFirst(name, a, b, outShape, backend);
      [a, b] = [b, a];
    }
    const av = f32(backend, a), bv = f32(backend, b);
    if (!av || !bv) return null;
    const pad = outShape.length - b.shape.length;
    const bDims = outShape.map((_, i) => (i < pad ? 1 : b.shape[i - pad]!));
    const c = collapse(outShape, outShape.map((v, i) => bDims[i] === 1 && v !== 1));
    const dims1 = c.dims.map((v, i) => (c.role[i] ? 1 : v));
    const prim = binaryPrim(BINARY_ALG[name]!, c.dims, dims1);
    if (!prim) return null;
    const y = output(backend, n);
    prim.exec([av, bv, y]);
    return backend.makeTensorInfo(outShape, "float32", y);
  };

  const reduce = (mean: boolean): NativeImpl => ({ inputs, backend, attrs }: KernelArgs) => {
    const x = inputs["x"];
    const xv = f32(backend, x);
    if (!x || !xv || xv.length < MIN_ELEMENTS) return null;
    const axes = tf.util.parseAxisParam(attrs["axis"] as number | number[], x.shape);
    const reduced = x.shape.map((_, i) => axes.includes(i));
    const c = collapse(x.shape, reduced);
    if (!c.role.includes(true)) return null; // nothing to reduce: leave it to JS (a copy)
    const dst = c.dims.map((v, i) => (c.role[i] ? 1 : v));
    const y = output(backend, sizeOf(dst));
    const last = c.role.length - 1;
    if (c.role[last] && c.role.length <= 2) {
      // [R] (whole tensor) or [A, R]
      reduceRows(xv, y, c.role.length === 2 ? c.dims[0]! : 1, c.dims[last]!, mean);
    } else if (!c.role[last] && c.role.length <= 3 && (c.role.length === 2 || !c.role[0])) {
      // [A?, R, C] with C > 1 (oneDNN 2.6 only has a reference kernel for this one)
      const cc = c.dims[last]!, rr = c.dims[last - 1]!, aa = c.role.length === 3 ? c.dims[0]! : 1;
      reduceMiddle(xv, y, aa, rr, cc, mean);
    } else {
      reduceStrided(xv, y, c.dims, c.role, mean);
    }
    const keep = attrs["keepDims"] === true;
    const outShape = keep
      ? x.shape.map((v, i) => (reduced[i] ? 1 : v))
      : x.shape.filter((_, i) => !reduced[i]);
    return backend.makeTensorInfo(outShape, "float32", y);
  };

  const eltwisePrim = (alg: number, alpha: number, n: number): Primitive | null =>
    cache.get(`e${alg}|${alpha}|${n}`, () => {
      const m = d.mdDense([n]);
      const op = new Uint8Array(ABI.sizeof_dnnl_eltwise_desc_t);
      d.check(
        "eltwise_forward_desc_init",
        d.sym.dnnl_eltwise_forward_desc_init(
          op,
          ABI.dnnl_forward_inference,
          alg,
          m,
          alpha,
          0,
        ),
      );
      return d.primitive(op, [[ABI.DNNL_ARG_SRC, m], [ABI.DNNL_ARG_DST, m]]);
    });

  const eltwise = (alg: number, alpha: number): NativeImpl => ({ inputs, backend }: KernelArgs) => {
    const x = inputs["x"];
    const xv = f32(backend, x);
    if (!x || !xv || xv.length < MIN_ELEMENTS) return null;
    const prim = eltwisePrim(alg, alpha, xv.length);
    if (!prim) return null;
    const y = output(backend, xv.length);
    prim.exec([xv, y]);
    return backend.makeTensorInfo([...x.shape], "float32", y);
  };

  // tfjs's Greater goes through its generic broadcasting loop; the common `x > scalar` and
  // same-shape cases are one tight JS loop (bool output, as tfjs: Uint8Array).
  const Greater: NativeImpl = ({ inputs, backend }: KernelArgs) => {
    const a = inputs["a"], b = inputs["b"];
    const av = f32(backend, a), bv = f32(backend, b);
    if (!a || !b || !av || !bv || av.length < MIN_ELEMENTS) return null;
    const y = new Uint8Array(av.length);
    if (bv.length === 1) {
      const s = bv[0]!;
      for (let i = 0; i < y.length; i++) y[i] = av[i]! > s ? 1 : 0;
    } else if (bv.length === av.length && a.shape.join() === b.shape.join()) {
      for (let i = 0; i < y.length; i++) y[i] = av[i]! > bv[i]! ? 1 : 0;
    } else return null;
    return backend.makeTensorInfo([...a.shape], "bool", y);
  };

  return {
    Add: binary("Add"),
    Sub: binary("Sub"),
    Multiply: binary("Multiply"),
    RealDiv: binary("RealDiv"),
    Sum: reduce(false),
    Mean: reduce(true),
    Relu: eltwise(ABI.dnnl_eltwise_relu, 0),
    Neg: eltwise(ABI.dnnl_eltwise_linear, -1),
    Greater,
  };
}
