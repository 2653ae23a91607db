/**
 * The fused loss-head kernels (methods/nn/native/loss_head.ts) against tfjs's composite graph:
 * softmax cross-entropy (values and gradients, 2 and 3 classes, huge logits, a label outside
 * the classes) and softmax with its one-kernel gradient; then `crossEntropy`, `ceDiceLoss` and
 * `softmaxMse` of losses.ts with the native layer on and off. The pure functions run
 * everywhere; the kernel-level tests are skipped, with a message, when libdnnl.so.2 is absent.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import "../methods/nn/gradients.ts";
import {
  softmaxCrossEntropy,
  softmaxCrossEntropyGrad,
  softmaxGrad,
} from "../methods/nn/native/loss_head.ts";
import { softmaxRows } from "../methods/nn/native/layout.ts";
import { installNativeKernels, uninstallNativeKernels } from "../methods/nn/native/install.ts";
import { ceDiceLoss, crossEntropy, softmaxMse } from "../methods/nn/losses.ts";
import { Rng } from "../methods/nn/rng.ts";
import { dnnlMissing, relDiff } from "./native_util.ts";

tf.env().set("PROD", true);
await tf.setBackend("cpu");
const missing = dnnlMissing("native_loss_head_test");

function randArr(n: number, seed: number, scale = 1): Float32Array {
  const a = new Rng(seed).fillNormal(new Float32Array(n));
  for (let i = 0; i < n; i++) a[i] = a[i]! * scale;
  return a;
}

/** tfjs's composite `F.cross_entropy` (mean) and its gradient w.r.t. the logits. */
function compositeCE(x: Float32Array, lab: Int32Array, c: number): [number, Float32Array] {
  return tf.tidy(() => {
    const lt = tf.tensor1d(lab, "int32");
    const f = (t: tf.Tensor) =>
      tf.neg(tf.mean(tf.sum(tf.mul(tf.logSoftmax(t, -1), tf.oneHot(lt, c)), -1))) as tf.Scalar;
    const { value, grad } = tf.valueAndGrad(f)(tf.tensor2d(x, [lab.length, c]));
    return [value.dataSync()[0]!, grad.dataSync() as Float32Array];
  });
}

Deno.test("softmaxCrossEntropy and its gradient equal the composite tfjs graph", () => {
  for (const [c, scale, seed] of [[2, 1, 1], [3, 4, 2], [2, 30, 3]] as const) {
    const rows = 997;
    const x = randArr(rows * c, seed, scale);
    const lab = Int32Array.from({ length: rows }, (_, i) => (i * 7 + seed) % c);
    lab[5] = c + 2; // outside the classes: tfjs's oneHot row is all zero, the term is 0
    const [want, wantGrad] = compositeCE(x, lab, c);
    const lse = new Float32Array(rows);
    const got = softmaxCrossEntropy(x, lab, c, lse);
    assert.ok(
      Math.abs(got - want) <= 1e-6 * Math.max(1, Math.abs(want)),
      `${c}/${scale}: ${got} vs ${want}`,
    );
    const dx = new Float32Array(rows * c);
    softmaxCrossEntropyGrad(1, x, lab, lse, c, dx);
    assert.ok(relDiff(dx, wantGrad) < 1e-6, `${c}/${scale}: grad ${relDiff(dx, wantGrad)}`);
    for (let k = 0; k < c; k++) assert.equal(dx[5 * c + k], 0, "no gradient for the outside label");
    // Known structure: each valid row's gradient sums to 0 (softmax minus one-hot).
    let worst = 0;
    for (let r = 0; r < rows; r++) {
      if (r === 5) continue;
      let s = 0;
      for (let k = 0; k < c; k++) s += dx[r * c + k]!;
      worst = Math.max(worst, Math.abs(s));
    }
    assert.ok(worst < 1e-5 / rows, `row sums ${worst}`); // float32 rounding of terms ~1/rows
  }
});

Deno.test("softmaxGrad equals the gradient of tfjs's softmax", () => {
  const rows = 513, c = 3;
  const x = randArr(rows * c, 4, 3), w = randArr(rows * c, 5);
  const want = tf.tidy(() =>
    tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.softmax(t, -1), tf.tensor2d(w, [rows, c]))))(
      tf.tensor2d(x, [rows, c]),
    ).dataSync()
  );
  const p = new Float32Array(rows * c);
  softmaxRows(x, c, p);
  const dx = new Float32Array(rows * c);
  softmaxGrad(w, p, c, dx);
  assert.ok(relDiff(dx, want) < 1e-6, `softmax grad ${relDiff(dx, want)}`);
});

Deno.test({
  name:
    "crossEntropy, ceDiceLoss and softmaxMse: native loss head == pure tfjs (values, gradients)",
  ignore: missing !== null,
  fn() {
    const shape = [2, 8, 8, 6, 2];
    const n = shape.reduce((a, b) => a * b, 1);
    const logits = tf.tensor(randArr(n, 6, 2), shape);
    const other = tf.tensor(randArr(n, 7, 2), shape);
    const lab = tf.tensor(
      Int32Array.from(randArr(n / 2, 8), (v) => (v > 0.2 ? 1 : 0)),
      shape.slice(0, 4),
      "int32",
    );
    const run = (): Float32Array[] =>
      tf.tidy(() => {
        const out: tf.Tensor[] = [];
        for (
          const f of [
            (t: tf.Tensor) => crossEntropy(t, lab),
            (t: tf.Tensor) => ceDiceLoss(t, lab).loss,
            (t: tf.Tensor) => tf.mean(softmaxMse(t, other)) as tf.Scalar,
          ]
        ) {
          const g = tf.valueAndGrad(f);
          const { value, grad } = g(logits);
          out.push(value, grad);
        }
        return out.map((t) => t.dataSync() as Float32Array);
      });
    uninstallNativeKernels();
    const off = run();
    assert.ok(installNativeKernels().active);
    const on = run();
    const names = ["CE", "dCE", "CE+Dice", "d(CE+Dice)", "softmax MSE", "d(softmax MSE)"];
    for (let i = 0; i < off.length; i++) {
      assert.ok(relDiff(on[i]!, off[i]!) < 1e-5, `${names[i]}: ${relDiff(on[i]!, off[i]!)}`);
    }
    tf.dispose([logits, other, lab]);
  },
});
