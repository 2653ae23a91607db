/**
 * Every backend that initialises here must agree with `cpu` on conv3d forward and both
 * gradients, or be refused for training (wasm 4.22's Conv3DBackpropInputV2 is wrong).
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { BACKEND_CHOICES, type BackendChoice, initBackend } from "../methods/nn/backend.ts";
import { Rng } from "../methods/nn/rng.ts";

interface ConvResult {
  y: Float32Array;
  dx: Float32Array;
  dw: Float32Array;
}

function convAndGrads(x: Float32Array, w: Float32Array): ConvResult {
  return tf.tidy(() => {
    const xt = tf.tensor5d(x, [1, 6, 5, 7, 3]);
    const wt = tf.tensor5d(w, [3, 3, 3, 3, 4]);
    const f = (a: tf.Tensor5D, b: tf.Tensor5D) => tf.sum(tf.square(tf.conv3d(a, b, 1, "same")));
    const [dx, dw] = tf.grads(f as (...a: tf.Tensor[]) => tf.Tensor)([xt, wt]);
    const y = tf.conv3d(xt, wt, 1, "same");
    return {
      y: y.dataSync() as Float32Array,
      dx: dx!.dataSync() as Float32Array,
      dw: dw!.dataSync() as Float32Array,
    };
  });
}

function maxRelDiff(a: Float32Array, b: Float32Array): number {
  let m = 0, scale = 1e-6;
  for (let i = 0; i < a.length; i++) {
    m = Math.max(m, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  return m / scale;
}

const silent = () => {};

Deno.test("backend: unknown name and wasm-for-training are refused with one line", async () => {
  await assert.rejects(
    () => initBackend("gpu" as BackendChoice, { notice: silent }),
    (e: Error) => /--backend: unknown backend 'gpu'/.test(e.message) && !e.message.includes("\n"),
  );
  await assert.rejects(() => initBackend("wasm", { notice: silent }), /refused for training/);
});

Deno.test("backend: auto falls back to a working backend with one notice per fallback", async () => {
  const lines: string[] = [];
  const p = await initBackend("auto", { notice: (l) => lines.push(l) });
  assert.ok(["node-gpu", "node", "webgpu", "cpu"].includes(p.backend));
  for (const l of lines) {
    assert.ok(!l.includes("\n"));
    assert.match(l, /^backend (node-gpu|node|webgpu) unavailable: .*; falling back$/);
  }
  assert.equal(p.tfjsVersion, "4.22.0");
  assert.equal(p.denoVersion, Deno.version.deno);
});

Deno.test("backend: conv3d forward and gradients of every initialising backend vs cpu", async () => {
  const rng = new Rng(5);
  const x = rng.fillNormal(new Float32Array(1 * 6 * 5 * 7 * 3));
  const w = rng.fillNormal(new Float32Array(3 * 3 * 3 * 3 * 4), 0, 0.3);
  await initBackend("cpu");
  const ref = convAndGrads(x, w);
  const tried: string[] = [];
  for (const b of BACKEND_CHOICES) {
    if (b === "auto" || b === "cpu") continue;
    try {
      await initBackend(b, { inferenceOnly: true, notice: silent });
    } catch {
      continue; // not available on this machine (node bindings, hardware GPU)
    }
    tried.push(b);
    const got = convAndGrads(x, w);
    assert.ok(maxRelDiff(got.y, ref.y) < 1e-4, `${b} forward`);
    assert.ok(maxRelDiff(got.dw, ref.dw) < 1e-4, `${b} filter gradient`);
    const dxOk = maxRelDiff(got.dx, ref.dx) < 1e-4;
    if (!dxOk) {
      // A backend with wrong input gradients must be refused for training.
      await assert.rejects(() => initBackend(b, { notice: silent }), /refused for training/);
    }
  }
  await initBackend("cpu");
  // wasm ships with tfjs and initialises everywhere: it must have been compared.
  assert.ok(tried.includes("wasm"), `compared: ${tried.join(", ")}`);
});
