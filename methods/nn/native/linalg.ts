/**
 * oneDNN BatchMatMul (matmul primitive, transposes as strides, batch broadcast) and Transpose
 * (a reorder between a permuted-strides view and a dense layout) for the tfjs cpu backend.
 * float32 only; small problems stay in JS.
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { ABI } from "./abi.ts";
import type { Dnnl, Primitive } from "./dnnl.ts";
import { PrimitiveCache } from "./dnnl.ts";
import { MIN_ELEMENTS } from "./elementwise.ts";
import { f32, type KernelArgs, type NativeImpl, sizeOf } from "./kernel.ts";
import { output } from "./pool.ts";

/**
 * Simplify a transpose of `shape` by `perm`: drop size-1 dims and merge input dims that stay
 * adjacent and in order. Returns the reduced input shape and permutation.
 */
export function simplifyTranspose(
  shape: readonly number[],
  perm: readonly number[],
): { shape: number[]; perm: number[] } {
  const keep = shape.map((d) => d !== 1);
  const idx = new Array<number>(shape.length).fill(-1);
  let k = 0;
  for (let i = 0; i < shape.length; i++) if (keep[i]) idx[i] = k++;
  const s1 = shape.filter((_, i) => keep[i]);
  const p1 = perm.filter((p) => keep[p]).map((p) => idx[p]!);
  if (s1.length === 0) return { shape: [1], perm: [0] };
  // groups: maximal runs of p1 with consecutive input axes
  const groups: number[][] = [];
  for (const p of p1) {
    const g = groups[groups.length - 1];
    if (g && g[g.length - 1]! + 1 === p) g.push(p);
    else groups.push([p]);
  }
  const order = [...groups].sort((a, b) => a[0]! - b[0]!);
  const newShape = order.map((g) => g.reduce((acc, a) => acc * s1[a]!, 1));
  const newPerm = groups.map((g) => order.indexOf(g));
  return { shape: newShape, perm: newPerm };
}

function denseStrides(dims: readonly number[]): number[] {
  const s = new Array<number>(dims.length);
  let acc = 1;
  for (let i = dims.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= dims[i]!;
  }
  return s;
}

/** Build BatchMatMul and Transpose on library `d`. */
export function linalgKernels(d: Dnnl): Record<string, NativeImpl> {
  const cache = new PrimitiveCache(256);

  const transposePrim = (shape: number[], perm: number[]): Primitive | null =>
    cache.get(`t|${shape}|${perm}`, () => {
      const xs = denseStrides(shape);
      const outDims = perm.map((p) => shape[p]!);
      const src = d.mdStrides(outDims, perm.map((p) => xs[p]!));
      return d.reorder(src, d.mdDense(outDims));
    });

  const Transpose: NativeImpl = ({ inputs, backend, attrs }: KernelArgs) => {
    const x = inputs["x"];
    const xv = f32(backend, x);
    if (!x || !xv || xv.length < MIN_ELEMENTS) return null;
    const perm = attrs["perm"] as number[];
    const outShape = perm.map((p) => x.shape[p]!);
    const s = simplifyTranspose(x.shape, perm);
    const y = output(backend, xv.length);
    if (s.perm.every((p, i) => p === i)) {
      y.set(xv);
      return backend.makeTensorInfo(outShape, "float32", y);
    }
    const prim = transposePrim(s.shape, s.perm);
    if (!prim) return null;
    prim.exec([xv, y]);
    return backend.makeTensorInfo(outShape, "float32", y);
  };

  const matmulPrim = (
    batchA: number,
    batchB: number,
    m: number,
    k: number,
    n: number,
    ta: boolean,
    tb: boolean,
  ): Primitive | null =>
    cache.get(`mm|${batchA}|${batchB}|${m}|${k}|${n}|${ta}|${tb}`, () => {
      const b = Math.max(batchA, batchB);
      // logical src [B, M, K], weights [B, K, N]; a transposed operand is a strided view
      const src = d.mdStrides(
        [batchA, m, k],
        ta ? [m * k, 1, m] : [m * k, k, 1],
      );
      const wei = d.mdStrides(
        [batchB, k, n],
        tb ? [k * n, 1, k] : [k * n, n, 1],
      );
      const dst = d.mdDense([b, m, n]);
      const op = new Uint8Array(ABI.sizeof_dnnl_matmul_desc_t);
      d.check("matmul_desc_init", d.sym.dnnl_matmul_desc_init(op, src, wei, null, dst));
      return d.primitive(op, [[ABI.DNNL_ARG_SRC, src], [ABI.DNNL_ARG_WEIGHTS, wei], [
        ABI.DNNL_ARG_DST,
        dst,
      ]]);
    });

  const BatchMatMul: NativeImpl = ({ inputs, backend, attrs }: KernelArgs) => {
    const a = inputs["a"], b = inputs["b"];
    const av = f32(backend, a), bv = f32(backend, b);
    if (!a || !b || !av || !bv) return null;
    const ta = attrs["transposeA"] === true, tb = attrs["transposeB"] === true;
    const ra = a.shape.length, rb = b.shape.length;
    if (ra < 2 || rb < 2) return null;
    const m = ta ? a.shape[ra - 1]! : a.shape[ra - 2]!;
    const k = ta ? a.shape[ra - 2]! : a.shape[ra - 1]!;
    const k2 = tb ? b.shape[rb - 1]! : b.shape[rb - 2]!;
    const n = tb ? b.shape[rb - 2]! : b.shape[rb - 1]!;
    if (k !== k2) return null;
    const batchShapeA = a.shape.slice(0, -2), batchShapeB = b.shape.slice(0, -2);
    const batchA = sizeOf(batchShapeA), batchB = sizeOf(batchShapeB);
    if (batchA !== batchB && batchA !== 1 && batchB !== 1) return null;
    const outBatch = tf.backend_util.assertAndGetBroadcastShape(batchShapeA, batchShapeB);
    if (sizeOf(outBatch) !== Math.max(batchA, batchB)) return null;
    const total = Math.max(batchA, batchB) * m * n;
    if (total * k < MIN_ELEMENTS * 16) return null;
    const prim = matmulPrim(batchA, batchB, m, k, n, ta, tb);
    if (!prim) return null;
    const y = output(backend, total);
    prim.exec([av, bv, y]);
    return backend.makeTensorInfo([...outBatch, m, n], "float32", y);
  };

  return { Transpose, BatchMatMul };
}
