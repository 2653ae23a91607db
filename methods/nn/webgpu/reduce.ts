/**
 * Reductions and the softmax of the loss head, in WGSL for the `webgpu` backend: `Sum`,
 * `Mean`, `Max` over any contiguous set of axes, and `Softmax` over the last axis. In the
 * step profile these were the next costs after the convolutions (the loss sums over whole
 * volumes, the bias gradients' sums over N, D, H, W, and log-softmax's max); tfjs-webgpu 4.22
 * reduces a whole tensor in ONE workgroup and transposes first when the axes are not last.
 *
 * The input is viewed as [outer, R, inner] (R = the reduced axes). With R <= {@link BLOCK}
 * one invocation per output loops over R; otherwise pass 1 reduces blocks of BLOCK values per
 * (outer, block, inner) and pass 2 combines each output's blocks in one workgroup (a strided
 * subset per invocation, then a fixed tree): the order is fixed, so results are deterministic.
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import {
  bindingLimit,
  dispatch,
  disposeScratch,
  type GpuImpl,
  grid,
  kernel,
  newOutput,
  packUniforms,
  scratch,
  sizeOf,
  storedAsF32,
  type WebgpuBackendLike,
  wholeOf,
} from "./gpu.ts";

/** Values per pass-1 block. */
export const BLOCK = 256;

/** The reduction operators. */
export type ReduceOp = "sum" | "max";

const OPS: Record<ReduceOp, { init: string; fold: (a: string, b: string) => string }> = {
  sum: { init: "0.0", fold: (a, b) => `${a} + ${b}` },
  max: { init: "-3.4028234663852886e38", fold: (a, b) => `max(${a}, ${b})` },
};

const STRUCT = "struct U { outer: i32, R: i32, inner: i32, nblk: i32, scale: f32 }";

/** Pass 1 (or the only pass): invocation (o, blk, i) folds x[o, blk*BLOCK .., i]. */
function partialShader(op: ReduceOp): string {
  const { init, fold } = OPS[op];
  return `${STRUCT}
@group(0) @binding(0) var<storage, read_write> P: array<f32>;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<uniform> u: U;
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let id = i32((wg.x + wg.y * nw.x) * 64u + li);
  if (id >= u.outer * u.nblk * u.inner) { return; }
  let i = id % u.inner; let ob = id / u.inner; let b = ob % u.nblk; let o = ob / u.nblk;
  let r0 = b * ${BLOCK}; let r1 = min(u.R, r0 + ${BLOCK});
  var acc = ${init};
  for (var r = r0; r < r1; r = r + 1) { acc = ${fold("acc", "X[(o * u.R + r) * u.inner + i]")}; }
  P[id] = acc * u.scale;
}`;
}

/** Pass 2: one workgroup per output (o, i) folds its nblk partials in a fixed order. */
function combineShader(op: ReduceOp): string {
  const { init, fold } = OPS[op];
  return `${STRUCT}
@group(0) @binding(0) var<storage, read_write> O: array<f32>;
@group(0) @binding(1) var<storage, read> P: array<f32>;
@group(0) @binding(2) var<uniform> u: U;
var<workgroup> s: array<f32, 64>;
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let j = i32(wg.x + wg.y * nw.x);
  if (j >= u.outer * u.inner) { return; }
  let t = i32(li);
  let i = j % u.inner; let o = j / u.inner;
  var acc = ${init};
  for (var b = t; b < u.nblk; b = b + 64) { acc = ${
    fold("acc", "P[(o * u.nblk + b) * u.inner + i]")
  }; }
  s[t] = acc;
  workgroupBarrier();
  for (var w = 32; w > 0; w = w / 2) {
    if (t < w) { s[t] = ${fold("s[t]", "s[t + w]")}; }
    workgroupBarrier();
  }
  if (t == 0) { O[j] = s[0] * u.scale; }
}`;
}

/** [outer, R, inner] of `shape` reduced over `axes`, or null when the axes are not contiguous. */
export function reduceView(
  shape: readonly number[],
  axes: readonly number[],
): { outer: number; r: number; inner: number } | null {
  if (axes.length === 0) return null;
  const s = [...axes].sort((a, b) => a - b);
  for (let j = 1; j < s.length; j++) if (s[j] !== s[j - 1]! + 1) return null;
  const a0 = s[0]!, a1 = s[s.length - 1]!;
  return {
    outer: sizeOf(shape.slice(0, a0)),
    r: sizeOf(shape.slice(a0, a1 + 1)),
    inner: sizeOf(shape.slice(a1 + 1)),
  };
}

/** Reduce `x` ([outer, R, inner]) with `op`, times `scale`, into a new [outShape] tensor. */
function reduce(
  be: WebgpuBackendLike,
  x: tf.TensorInfo,
  view: { outer: number; r: number; inner: number },
  op: ReduceOp,
  scale: number,
  outShape: number[],
): tf.TensorInfo {
  const out = newOutput(be, outShape);
  const nOut = view.outer * view.inner;
  const p1 = kernel(
    be.device,
    `semiseg-reduce-${op}`,
    ["write", "read", "uniform"],
    () => partialShader(op),
  );
  const xb = wholeOf(be, x).bound;
  if (view.r <= BLOCK) {
    const u = packUniforms([{ i: view.outer }, { i: view.r }, { i: view.inner }, { i: 1 }, {
      f: scale,
    }]);
    dispatch(be, p1, [wholeOf(be, out).bound, xb], u, grid(be.device, Math.ceil(nOut / 64)), [
      out,
      x,
    ]);
    return out;
  }
  const nblk = Math.ceil(view.r / BLOCK);
  const part = scratch(be, nOut * nblk);
  const u1 = packUniforms([{ i: view.outer }, { i: view.r }, { i: view.inner }, { i: nblk }, {
    f: 1,
  }]);
  dispatch(
    be,
    p1,
    [wholeOf(be, part).bound, xb],
    u1,
    grid(
      be.device,
      Math.ceil((nOut * nblk) / 64),
    ),
    [part, x],
  );
  const p2 = kernel(
    be.device,
    `semiseg-reduce-${op}-combine`,
    ["write", "read", "uniform"],
    () => combineShader(op),
  );
  const u2 = packUniforms([{ i: view.outer }, { i: view.r }, { i: view.inner }, { i: nblk }, {
    f: scale,
  }]);
  dispatch(be, p2, [wholeOf(be, out).bound, wholeOf(be, part).bound], u2, grid(be.device, nOut), [
    out,
    part,
  ]);
  disposeScratch(be, part);
  return out;
}

/** Softmax over the last axis: one invocation per row (max, sum of exp, normalise). */
const SOFTMAX_SHADER = `
struct U { rows: i32, c: i32 }
@group(0) @binding(0) var<storage, read_write> Y: array<f32>;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<uniform> u: U;
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let row = i32((wg.x + wg.y * nw.x) * 64u + li);
  if (row >= u.rows) { return; }
  let base = row * u.c;
  var m = X[base];
  for (var k = 1; k < u.c; k = k + 1) { m = max(m, X[base + k]); }
  var s = 0.0;
  for (var k = 0; k < u.c; k = k + 1) { s = s + exp(X[base + k] - m); }
  for (var k = 0; k < u.c; k = k + 1) { Y[base + k] = exp(X[base + k] - m) / s; }
}`;

function reduceKernel(op: ReduceOp, mean: boolean): GpuImpl {
  return (args) => {
    const x = args.inputs["x"];
    const be = args.backend;
    if (!storedAsF32(be, x) || sizeOf(x.shape) === 0) return null;
    if (sizeOf(x.shape) * 4 > bindingLimit(be.device)) return null;
    const a = args.attrs as Record<string, unknown>;
    // Sum and Mean name the attribute `axis`, Max names it `reductionIndices`.
    const axis = (op === "max" ? a["reductionIndices"] : a["axis"]) as number | number[];
    const axes = tf.util.parseAxisParam(axis, x.shape);
    const view = reduceView(x.shape, axes);
    if (view === null) return null;
    const keep = a["keepDims"] === true;
    const outShape = x.shape.flatMap((d, j) => (axes.includes(j) ? (keep ? [1] : []) : [d]));
    return reduce(be, x, view, op, mean ? 1 / view.r : 1, outShape);
  };
}

/** The reduction and softmax kernels by tfjs kernel name (null result: use tfjs's kernel). */
export function reduceKernels(): Record<string, GpuImpl> {
  return {
    Sum: reduceKernel("sum", false),
    Mean: reduceKernel("sum", true),
    Max: reduceKernel("max", false),
    Softmax: (args) => {
      const x = args.inputs["logits"];
      const dim = (args.attrs as Record<string, unknown>)["dim"] as number;
      const be = args.backend;
      if (!storedAsF32(be, x) || sizeOf(x.shape) === 0) return null;
      if (dim !== -1 && dim !== x.shape.length - 1) return null;
      if (sizeOf(x.shape) * 4 > bindingLimit(be.device)) return null;
      const c = x.shape[x.shape.length - 1]!, rows = sizeOf(x.shape) / c;
      const out = newOutput(be, [...x.shape]);
      const k = kernel(
        be.device,
        "semiseg-softmax",
        ["write", "read", "uniform"],
        () => SOFTMAX_SHADER,
      );
      dispatch(
        be,
        k,
        [wholeOf(be, out).bound, wholeOf(be, x).bound],
        packUniforms([{ i: rows }, {
          i: c,
        }]),
        grid(be.device, Math.ceil(rows / 64)),
        [out, x],
      );
      return out;
    },
  };
}
