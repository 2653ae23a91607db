import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { entropyMin, meanNormalisedEntropy } from "../methods/entropy_min.ts";
import { getMethod } from "../methods/mod.ts";
import { initBackend } from "../methods/nn/backend.ts";

await initBackend("cpu");

Deno.test("entropy-min: normalised entropy is 1 for uniform, ~0 for one-hot, exact in between", () => {
  const h = (p: number[][]) => tf.tidy(() => meanNormalisedEntropy(tf.tensor2d(p)).dataSync()[0]!);
  const e = (q: number) =>
    -(q * Math.log(q + 1e-6) + (1 - q) * Math.log(1 - q + 1e-6)) / Math.log(2);
  assert.ok(Math.abs(h([[0.5, 0.5]]) - e(0.5)) < 1e-6);
  assert.ok(Math.abs(h([[0.5, 0.5]]) - 1) < 1e-5);
  assert.ok(Math.abs(h([[1, 0]])) < 1e-5);
  // Mean over voxels: one uniform and one 0.25/0.75 voxel.
  assert.ok(Math.abs(h([[0.5, 0.5], [0.25, 0.75]]) - (e(0.5) + e(0.25)) / 2) < 1e-6);
});

Deno.test("entropy-min: registered, and its entropy term sharpens unlabeled predictions", () => {
  assert.equal(getMethod("entropy-min"), entropyMin);
  // The gradient of the term pushes logits apart: at logits [0.5, 0] it is (-g, +g), g > 0.
  const g = tf.tidy(() => {
    const f = (z: tf.Tensor) => meanNormalisedEntropy(tf.softmax(z, -1));
    return tf.grad(f)(tf.tensor2d([[0.5, 0]])).dataSync();
  });
  assert.ok(g[0]! < 0 && g[1]! > 0 && Math.abs(g[0]! + g[1]!) < 1e-6, `gradient ${g}`);
});
