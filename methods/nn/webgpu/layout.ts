/**
 * Layout kernels for tfjs's `webgpu` backend. `Transpose` of any rank up to 8: tfjs-webgpu
 * 4.22 stops at rank 6 ("GPU for rank 8 is not yet supported"), but the V-Net's 2x2x2
 * transposed convolution is a matMul followed by a rank-8 depth-to-space transpose
 * (`vnet.ts` `transposedConv2x`), so without this kernel no V-Net trains on webgpu.
 * One invocation per output element; the element is copied as raw 32-bit words, so float32,
 * int32 and bool (stored as int32 by tfjs-webgpu) all work. Rank 2 stays with tfjs's
 * shared-memory transpose.
 *
 * `PadV2` of any rank up to 8, one invocation per output element: tfjs-webgpu 4.22's pad
 * ignores the "after" amounts of the last axis (`pad(x, [.., [0, 1]])` returns the same as
 * `[1, 0]`, measured on rank 4 and 5), and the gradient of every `slice` (the loss heads'
 * class slice, MASSL's crops) is such a pad, so every gradient through a slice was wrong.
 *
 * `Slice` of any rank up to 8 (the loss heads' class slice; tfjs-webgpu's is rank <= 6).
 *
 * `Cast` int32/bool -> float32 as a real conversion: tfjs-webgpu 4.22 only relabels the
 * tensor (its buffer keeps int32 words and its own shaders convert on read), so any kernel
 * reading the buffer as f32 (ours) saw integer bit patterns as tiny floats: the Dice
 * denominators' `sum(cast(labels))` came out as 1.9e-42 instead of 1365 (found by the
 * MASSL-on-webgpu test). Transpose and PadV2 copy words, so they keep the input's stored dtype.
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import {
  bindingLimit,
  dispatch,
  type GpuImpl,
  grid,
  kernel,
  newOutput,
  packUniforms,
  sizeOf,
  type WebgpuBackendLike,
  wholeOf,
} from "./gpu.ts";

const MAX_RANK = 8;

/**
 * Strided gather, one invocation per output element: out[i] = x[offset + sum_j coord_j(i)
 * stride_j]. Transpose (offset 0, permuted strides) and Slice (the begin's offset, the input's
 * strides) are both this.
 */
const GATHER_SHADER = `
struct U { shape: array<vec4<i32>, 2>, strides: array<vec4<i32>, 2>, size: i32, rank: i32,
           offset: i32 }
@group(0) @binding(0) var<storage, read_write> O: array<u32>;
@group(0) @binding(1) var<storage, read> X: array<u32>;
@group(0) @binding(2) var<uniform> u: U;
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let i = i32((wg.x + wg.y * nw.x) * 64u + li);
  if (i >= u.size) { return; }
  var rest = i;
  var src = u.offset;
  for (var j = u.rank - 1; j >= 0; j = j - 1) {
    let dim = u.shape[j / 4][j % 4];
    src = src + (rest % dim) * u.strides[j / 4][j % 4];
    rest = rest / dim;
  }
  O[i] = X[src];
}`;

const PAD_SHADER = `
struct U {
  shape: array<vec4<i32>, 2>, before: array<vec4<i32>, 2>, inShape: array<vec4<i32>, 2>,
  size: i32, rank: i32, value: u32,
}
@group(0) @binding(0) var<storage, read_write> O: array<u32>;
@group(0) @binding(1) var<storage, read> X: array<u32>;
@group(0) @binding(2) var<uniform> u: U;
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let i = i32((wg.x + wg.y * nw.x) * 64u + li);
  if (i >= u.size) { return; }
  var rest = i;
  var src = 0;
  var stride = 1;
  var inside = true;
  for (var j = u.rank - 1; j >= 0; j = j - 1) {
    let dim = u.shape[j / 4][j % 4];
    let c = rest % dim - u.before[j / 4][j % 4];
    let n = u.inShape[j / 4][j % 4];
    if (c < 0 || c >= n) { inside = false; }
    src = src + c * stride;
    stride = stride * n;
    rest = rest / dim;
  }
  if (inside) { O[i] = X[src]; } else { O[i] = u.value; }
}`;

const CAST_SHADER = `
struct U { size: i32 }
@group(0) @binding(0) var<storage, read_write> O: array<f32>;
@group(0) @binding(1) var<storage, read> X: array<i32>;
@group(0) @binding(2) var<uniform> u: U;
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let i = i32((wg.x + wg.y * nw.x) * 64u + li);
  if (i >= u.size) { return; }
  O[i] = f32(X[i]);
}`;

/** Output shape and, per output axis, the input stride it walks, for `perm`. */
export function transposePlan(
  shape: readonly number[],
  perm: readonly number[],
): { outShape: number[]; strides: number[] } {
  const inStrides = new Array<number>(shape.length);
  let s = 1;
  for (let j = shape.length - 1; j >= 0; j--) {
    inStrides[j] = s;
    s *= shape[j]!;
  }
  return { outShape: perm.map((p) => shape[p]!), strides: perm.map((p) => inStrides[p]!) };
}

/** The dtype of the words in `t`'s buffer (tfjs-webgpu's Cast may relabel without converting). */
function storedDtype(be: WebgpuBackendLike, t: tf.TensorInfo): string {
  return be.tensorMap.get(t.dataId).dtype;
}

/** An output stored like `x` (same word dtype) and labelled with `x`'s dtype, as tfjs does. */
function sameStorage(be: WebgpuBackendLike, x: tf.TensorInfo, shape: number[]): tf.TensorInfo {
  const out = be.makeTensorInfo(shape, storedDtype(be, x) as tf.DataType);
  be.uploadToGPU(out.dataId);
  return { ...out, dtype: x.dtype };
}

/** One invocation per output element (64 per workgroup): `shader` with bindings out, x, u. */
function perElement(
  be: WebgpuBackendLike,
  name: string,
  shader: string,
  out: tf.TensorInfo,
  x: tf.TensorInfo,
  uniforms: ArrayBuffer,
  n: number,
): void {
  const k = kernel(be.device, name, ["write", "read", "uniform"], () => shader);
  const groups = grid(be.device, Math.ceil(n / 64));
  dispatch(be, k, [wholeOf(be, out).bound, wholeOf(be, x).bound], uniforms, groups, [out, x]);
}

/** `a` extended with 1s to {@link MAX_RANK} entries (uniform arrays are fixed-size). */
function padTo8(a: readonly number[]): number[] {
  return [...a, ...new Array<number>(MAX_RANK - a.length).fill(1)];
}

/** The layout kernels by tfjs kernel name (null result: use tfjs's kernel). */
export function layoutKernels(): Record<string, GpuImpl> {
  return {
    Slice: (args) => {
      const x = args.inputs["x"] as tf.TensorInfo | undefined;
      const a = args.attrs as Record<string, unknown>;
      if (!x || x.shape.length === 0 || x.shape.length > MAX_RANK) return null;
      if (!["float32", "int32", "bool"].includes(x.dtype)) return null;
      const be = args.backend;
      if (sizeOf(x.shape) * 4 > bindingLimit(be.device)) return null;
      const [begin, size] = tf.slice_util.parseSliceParams(
        x as unknown as tf.Tensor,
        a["begin"] as number | number[],
        a["size"] as number | number[],
      ) as [number[], number[]];
      const n = sizeOf(size);
      if (n === 0) return null;
      const { strides } = transposePlan(x.shape, x.shape.map((_, j) => j));
      const offset = begin.reduce((s, b, j) => s + b * strides[j]!, 0);
      const out = sameStorage(be, x, size);
      const u = packUniforms([
        ...padTo8(size).map((i) => ({ i })),
        ...padTo8(strides).map((i) => ({ i })),
        { i: n },
        { i: x.shape.length },
        { i: offset },
      ]);
      perElement(be, "semiseg-gather", GATHER_SHADER, out, x, u, n);
      return out;
    },
    Cast: (args) => {
      const x = args.inputs["x"] as tf.TensorInfo | undefined;
      const to = (args.attrs as Record<string, unknown>)["dtype"];
      if (!x || to !== "float32" || (x.dtype !== "int32" && x.dtype !== "bool")) return null;
      const be = args.backend;
      const n = sizeOf(x.shape);
      if (n === 0 || n * 4 > bindingLimit(be.device)) return null;
      const out = newOutput(be, [...x.shape]);
      perElement(be, "semiseg-cast-f32", CAST_SHADER, out, x, packUniforms([{ i: n }]), n);
      return out;
    },
    PadV2: (args) => {
      const x = args.inputs["x"] as tf.TensorInfo | undefined;
      const a = args.attrs as Record<string, unknown>;
      const paddings = a["paddings"] as [number, number][];
      const value = Number(a["constantValue"] ?? 0);
      if (!x || x.shape.length > MAX_RANK || sizeOf(x.shape) === 0) return null;
      if (x.dtype !== "float32" && x.dtype !== "int32") return null;
      const be = args.backend;
      const outShape = x.shape.map((d, j) => d + paddings[j]![0] + paddings[j]![1]);
      const n = sizeOf(outShape);
      if (n * 4 > bindingLimit(be.device)) return null;
      const out = sameStorage(be, x, outShape);
      const bits = new DataView(new ArrayBuffer(4));
      if (storedDtype(be, x) === "float32") bits.setFloat32(0, value, true);
      else bits.setInt32(0, value, true);
      const u = packUniforms([
        ...padTo8(outShape).map((i) => ({ i })),
        ...padTo8(paddings.map((p) => p[0])).map((i) => ({ i })),
        ...padTo8(x.shape).map((i) => ({ i })),
        { i: n },
        { i: x.shape.length },
        { i: bits.getInt32(0, true) },
      ]);
      perElement(be, "semiseg-pad", PAD_SHADER, out, x, u, n);
      return out;
    },
    Transpose: (args) => {
      const x = args.inputs["x"] as tf.TensorInfo | undefined;
      const perm = (args.attrs as Record<string, unknown>)["perm"] as number[];
      if (!x || x.shape.length < 3 || x.shape.length > MAX_RANK) return null;
      if (!["float32", "int32", "bool"].includes(x.dtype)) return null;
      const be = args.backend;
      const n = sizeOf(x.shape);
      if (n === 0 || n * 4 > bindingLimit(be.device)) return null;
      const { outShape, strides } = transposePlan(x.shape, perm);
      const out = sameStorage(be, x, outShape);
      const u = packUniforms([
        ...padTo8(outShape).map((i) => ({ i })),
        ...padTo8(strides).map((i) => ({ i })),
        { i: n },
        { i: x.shape.length },
        { i: 0 },
      ]);
      perElement(be, "semiseg-gather", GATHER_SHADER, out, x, u, n);
      return out;
    },
  };
}
