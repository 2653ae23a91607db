/**
 * Shared types and helpers for native tfjs `cpu` kernels: a native implementation returns a
 * TensorInfo, or `null` to hand the call to the original JS kernel.
 * @module
 */
import type * as tf from "@tensorflow/tfjs-core";

/** The parts of tfjs-backend-cpu's MathBackendCPU that native kernels use. */
export interface CpuBackendLike {
  data: { get(id: tf.DataId): { values?: unknown } };
  makeTensorInfo(
    shape: number[],
    dtype: tf.DataType,
    values: Float32Array | Uint8Array,
  ): tf.TensorInfo;
}

/** Arguments of a tfjs kernel function. */
export interface KernelArgs {
  inputs: tf.NamedTensorInfoMap;
  backend: CpuBackendLike;
  attrs: tf.NamedAttrMap;
}

/** A native kernel: a result, or `null` for "not supported here, use the JS kernel". */
export type NativeImpl = (args: KernelArgs) => tf.TensorInfo | null;

/**
 * The float32 values of `t` on the cpu backend, or null (other dtype, or not materialised).
 * tfjs's cpu Cast from int32 or bool to float32 keeps the integer array under the float32
 * tensor (no copy); those values are converted here (exact below 2^24), so such tensors (cast
 * labels, masks) take the native kernels too instead of tfjs's generic JS loops.
 */
export function f32(be: CpuBackendLike, t: tf.TensorInfo | undefined): Float32Array | null {
  if (!t || t.dtype !== "float32") return null;
  const v = be.data.get(t.dataId).values;
  if (v instanceof Float32Array) return v.length > 0 ? v : null;
  if ((v instanceof Int32Array || v instanceof Uint8Array) && v.length > 0) {
    return Float32Array.from(v);
  }
  return null;
}

/** Number of elements of `shape`. */
export function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/**
 * The Float32Array behind input `name` of a fused kernel's call, or a one-line error naming
 * `kernel` and the input (the fused kernels take float32 tensors only).
 */
export function inputF32(args: KernelArgs, name: string, kernel: string): Float32Array {
  const t = args.inputs[name];
  const v = t ? args.backend.data.get(t.dataId).values : undefined;
  if (!(v instanceof Float32Array)) throw new Error(`${kernel}: input '${name}' is not float32`);
  return v;
}
