/**
 * Host readback of tensor values on backends that cannot read the GPU synchronously.
 *
 * Under Deno, tfjs-backend-webgpu has no synchronous readback: its `readSync` (behind
 * `dataSync`/`arraySync`) copies a GPU buffer out through an `OffscreenCanvas` 2D context,
 * which Deno does not provide, so `dataSync()` throws on every tensor a GPU kernel wrote. (A
 * tensor made from a JS array keeps its values on the CPU until a kernel first uploads it, and
 * the async `backend.read` caches what it downloads on the CPU; in both cases `dataSync`
 * works.) The
 * training code therefore reads values with `await t.data()` everywhere a step ends (losses,
 * `methods/nn/training.ts` `readLosses`) and the evaluator reads window probabilities the same
 * way; this module covers the one synchronous read left by design, method state capture.
 *
 * Strategy for `Method.state()` (checkpoints and best-val snapshots): {@link captureState}
 * runs the method's synchronous `state()` inside a capture scope. In that scope, on a backend
 * without synchronous readback, `storeTensor` (`methods/nn/state.ts`) does not call
 * `dataSync`: it asks {@link deferredValues} for a zero-filled `Float32Array` of the tensor's
 * size and an async `t.data()` that fills it is started right away (the webgpu backend
 * records the buffer copy at call time, before any later kernel can write the buffer).
 * `captureState` awaits all of them before it returns, so the state it hands back is complete.
 * This reaches every tensor a state stores (weights, BN statistics, optimizer slots that are
 * private to the optimizers, learned scalars) without any method exposing its tensors, and
 * without an async `state()` through every network and optimizer. Pre-reading
 * `tf.engine().state.registeredVariables` before `state()` would have missed the optimizer
 * slots (plain tensors, not variables).
 *
 * On backends with synchronous reads (cpu, cpu-js, node, wasm) `captureState(m)` is exactly
 * `m.state()`: the checkpoint bytes are unchanged. Outside a capture scope, `storeTensor` on
 * webgpu still tries `dataSync` (it works on CPU-resident tensors) and otherwise fails with
 * one line naming `captureState`.
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import type { Method, MethodState } from "../types.ts";

/** Backends whose `dataSync` cannot read a tensor a kernel wrote (under Deno). */
const ASYNC_ONLY_BACKENDS = new Set(["webgpu"]);

/** Reads started by {@link deferredValues} in the open capture scope; null when none is open. */
let pending: Promise<void>[] | null = null;

/** True when `dataSync()` works on every tensor of the active tfjs backend. */
export function hasSyncReadback(): boolean {
  return !ASYNC_ONLY_BACKENDS.has(tf.getBackend());
}

/**
 * For `storeTensor`: inside {@link captureState} on a backend without synchronous readback,
 * a new `Float32Array` of `t`'s size that an already-started `t.data()` fills before
 * `captureState` returns; null otherwise (read with `dataSync`).
 */
export function deferredValues(t: tf.Tensor): Float32Array | null {
  if (pending === null || hasSyncReadback()) return null;
  const out = new Float32Array(t.size);
  pending.push(t.data().then((v) => out.set(v as ArrayLike<number>)));
  return out;
}

/**
 * `method.state()` with every stored value read back, on any backend: on webgpu the values
 * are read asynchronously (see the module comment); elsewhere this is `method.state()`.
 */
export async function captureState(method: Method): Promise<MethodState> {
  if (hasSyncReadback()) return method.state();
  // state() is synchronous, so scopes never interleave; a nested call is a bug.
  if (pending !== null) throw new Error("captureState: already capturing a state");
  const reads: Promise<void>[] = [];
  pending = reads;
  let s: MethodState;
  try {
    s = method.state();
  } catch (e) {
    pending = null;
    await Promise.allSettled(reads); // no read left running (or rejecting) unobserved
    throw e;
  }
  pending = null;
  await Promise.all(reads);
  return s;
}
