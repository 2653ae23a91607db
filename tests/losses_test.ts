import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { initBackend } from "../methods/nn/backend.ts";
import {
  bceWithLogits,
  ceDiceLoss,
  crossEntropy,
  diceLoss,
  masslDiceLoss,
  mse,
  softmaxMse,
} from "../methods/nn/losses.ts";

const close = (a: number, b: number, tol = 1e-6) =>
  assert.ok(Math.abs(a - b) <= tol, `${a} vs ${b}`);
const val = (t: tf.Tensor) => {
  const v = t.dataSync()[0]!;
  t.dispose();
  return v;
};
const L3 = Math.log(3);

Deno.test("losses: CE and Dice on a 4-voxel example match hand computation", async () => {
  await initBackend("cpu");
  // softmax(.)[1] = 0.5, 0.75, 0.25, 0.5 ; labels 0, 1, 0, 1
  const logits = tf.tensor2d([[0, 0], [0, L3], [L3, 0], [0, 0]]);
  const labels = tf.tensor1d([0, 1, 0, 1], "int32");
  // CE = mean(-ln .5, -ln .75, -ln .75, -ln .5) = (ln 2 + ln 4/3) / 2
  const ce = (Math.log(2) + Math.log(4 / 3)) / 2;
  close(val(crossEntropy(logits, labels)), ce);
  // Dice: sum pg = 1.25, sum p^2 = 1.125, sum g^2 = 2
  const dice = 1 - (2.5 + 1e-5) / (3.125 + 1e-5);
  const p1 = tf.tensor1d([0.5, 0.75, 0.25, 0.5]);
  close(val(diceLoss(p1, labels)), dice);
  const r = ceDiceLoss(logits, labels);
  close(val(r.ce), ce);
  close(val(r.dice), dice);
  close(val(r.loss), 0.5 * (ce + dice));
  // MASSL: 1 - 2*1.25 / (2 + 2 + 1e-4)
  close(val(masslDiceLoss(p1, labels)), 1 - 2.5 / 4.0001);
  tf.dispose([logits, labels, p1]);
});

Deno.test("losses: softmax-MSE, MSE, BCE with logits", async () => {
  await initBackend("cpu");
  const a = tf.tensor2d([[0, 0]]), b = tf.tensor2d([[L3, 0]]);
  // softmax 0.5/0.5 vs 0.75/0.25 -> 0.0625 per class
  const d = softmaxMse(a, b).dataSync();
  close(d[0]!, 0.0625);
  close(d[1]!, 0.0625);
  close(val(mse(tf.tensor1d([1, 2]), tf.tensor1d([0, 4]))), 2.5);
  // x = [0, ln3, 200], z = [1, 0, 1]: -ln .5, -ln(1 - .75) = ln 4, ~0 (stable for large x)
  close(
    val(bceWithLogits(tf.tensor1d([0, L3, 200]), tf.tensor1d([1, 0, 1]))),
    (3 * Math.log(2)) / 3,
  );
  close(val(bceWithLogits(tf.tensor1d([-200]), tf.tensor1d([0]))), 0);
  tf.dispose([a, b]);
});
