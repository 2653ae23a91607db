/**
 * Conversions between tfjs tensors and the serialisable {@link StoredTensor} of
 * `methods/types.ts` (the analogue of a PyTorch `state_dict` entry).
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import type { StoredTensor } from "../types.ts";

/** Copy a tensor's values out (float32) as a {@link StoredTensor}. */
export function storeTensor(t: tf.Tensor): StoredTensor {
  return { shape: [...t.shape], values: Float32Array.from(t.dataSync() as Float32Array) };
}

/** Look a stored tensor up by name, throwing one line when it is missing or misshaped. */
export function getStored(
  tensors: Record<string, StoredTensor>,
  name: string,
  shape?: readonly number[],
): StoredTensor {
  const s = tensors[name];
  if (s === undefined) throw new Error(`state: missing tensor '${name}'`);
  if (
    shape !== undefined && (s.shape.length !== shape.length ||
      s.shape.some((d, i) => d !== shape[i]))
  ) {
    throw new Error(`state: tensor '${name}' has shape [${s.shape}], expected [${shape}]`);
  }
  return s;
}

/** Assign a stored value to a variable (shapes must match). */
export function assignStored(v: tf.Variable, s: StoredTensor, name = v.name): void {
  if (s.shape.length !== v.shape.length || s.shape.some((d, i) => d !== v.shape[i])) {
    throw new Error(`state: tensor '${name}' has shape [${s.shape}], expected [${v.shape}]`);
  }
  tf.tidy(() => v.assign(tf.tensor(s.values, s.shape, "float32")));
}

/** A new (kept) tensor from a stored value. */
export function loadTensor(s: StoredTensor): tf.Tensor {
  return tf.tensor(Float32Array.from(s.values), s.shape, "float32");
}
