/**
 * Conversions between tfjs tensors and the serialisable {@link StoredTensor} of
 * `methods/types.ts` (the analogue of a PyTorch `state_dict` entry).
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import type { StoredTensor } from "../types.ts";
import { deferredValues, hasSyncReadback } from "./readback.ts";

/**
 * Copy a tensor's values out (float32) as a {@link StoredTensor}. On a backend without
 * synchronous readback (webgpu under Deno) call it inside `captureState` (`readback.ts`),
 * which fills the values asynchronously before the state is handed back.
 */
export function storeTensor(t: tf.Tensor): StoredTensor {
  const deferred = deferredValues(t);
  if (deferred !== null) return { shape: [...t.shape], values: deferred };
  return { shape: [...t.shape], values: Float32Array.from(syncValues(t)) };
}

function syncValues(t: tf.Tensor): Float32Array {
  if (hasSyncReadback()) return t.dataSync() as Float32Array;
  try {
    return t.dataSync() as Float32Array; // CPU-resident values (not yet uploaded, or read back)
  } catch (e) {
    throw new Error(
      `storeTensor: backend ${tf.getBackend()} cannot read a GPU tensor synchronously; take ` +
        `method state with captureState (methods/nn/readback.ts) (${
          (e instanceof Error ? e.message : String(e)).split("\n")[0]
        })`,
    );
  }
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

/** Variables of `maps`, in order, as stored tensors named `prefix + key` (a network's state). */
export function storeVariables(
  prefix: string,
  ...maps: ReadonlyMap<string, tf.Variable>[]
): Record<string, StoredTensor> {
  const out: Record<string, StoredTensor> = {};
  for (const m of maps) for (const [k, v] of m) out[prefix + k] = storeTensor(v);
  return out;
}

/** Inverse of {@link storeVariables}: every variable of `maps` from `tensors[prefix + key]`. */
export function restoreVariables(
  tensors: Record<string, StoredTensor>,
  prefix: string,
  ...maps: ReadonlyMap<string, tf.Variable>[]
): void {
  for (const m of maps) {
    for (const [k, v] of m) assignStored(v, getStored(tensors, prefix + k), prefix + k);
  }
}
