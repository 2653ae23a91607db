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

/** The float32 values of `t` on the cpu backend, or null (other dtype, or not materialised). */
export function f32(be: CpuBackendLike, t: tf.TensorInfo | undefined): Float32Array | null {
  if (!t || t.dtype !== "float32") return null;
  const v = be.data.get(t.dataId).values;
  return v instanceof Float32Array && v.length > 0 ? v : null;
}

/** Number of elements of `shape`. */
export function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}
