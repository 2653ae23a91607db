/** Every registered gradient (methods/nn/gradients.ts) against central finite differences. */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { initBackend } from "../methods/nn/backend.ts";
import "../methods/nn/gradients.ts";
import { Rng } from "../methods/nn/rng.ts";
import { transposedConv2x } from "../methods/nn/vnet.ts";

/** Compare d/dx sum(r * f(x)) by tf.grads with central differences (eps 1e-2, float32). */
function check(
  name: string,
  f: (...xs: tf.Tensor[]) => tf.Tensor,
  shapes: number[][],
  seed = 1,
  positive = false,
) {
  const rng = new Rng(seed);
  const xs = shapes.map((s) => {
    const v = rng.fillNormal(new Float32Array(s.reduce((a, b) => a * b, 1)));
    return tf.tensor(positive ? v.map((u) => Math.abs(u) + 0.5) : v, s);
  });
  const outShape = f(...xs).shape;
  const r = tf.tensor(
    rng.fillNormal(new Float32Array(outShape.reduce((a, b) => a * b, 1))),
    outShape,
  );
  const loss = (...a: tf.Tensor[]) => tf.sum(tf.mul(f(...a), r));
  const grads = tf.grads(loss)(xs);
  const eps = 1e-2;
  xs.forEach((x, xi) => {
    const base = x.dataSync() as Float32Array;
    const g = grads[xi]!.dataSync();
    let worst = 0, scale = 1e-3;
    for (let i = 0; i < base.length; i++) {
      const plus = base.slice(), minus = base.slice();
      plus[i]! += eps;
      minus[i]! -= eps;
      const at = (v: Float32Array) =>
        tf.tidy(() =>
          loss(...xs.map((y, j) => (j === xi ? tf.tensor(v, x.shape) : y))).dataSync()[0]!
        );
      const num = (at(plus) - at(minus)) / (2 * eps);
      worst = Math.max(worst, Math.abs(num - g[i]!));
      scale = Math.max(scale, Math.abs(num));
    }
    assert.ok(
      worst / scale < 2e-2,
      `${name}: input ${xi} gradient off by ${worst} (scale ${scale})`,
    );
  });
  tf.dispose([...xs, r, ...grads]);
}

Deno.test("gradients: elementwise and broadcasting ops", async () => {
  await initBackend("cpu");
  check("add-broadcast", (a, b) => tf.add(a!, b!), [[2, 3], [3]]);
  check("sub-broadcast", (a, b) => tf.sub(a!, b!), [[2, 3], [2, 1]]);
  check("mul-broadcast", (a, b) => tf.mul(a!, b!), [[2, 3], [1, 3]]);
  check("div", (a, b) => tf.div(a!, b!), [[2, 3], [2, 3]], 2, true);
  check("squaredDifference", (a, b) => tf.squaredDifference(a!, b!), [[4], [4]]);
  check("square/neg/exp", (a) => tf.neg(tf.exp(tf.square(a!))), [[5]], 3);
  check(
    "log/log1p/sqrt/rsqrt",
    (a) => tf.add(tf.add(tf.log(a!), tf.log1p(a!)), tf.add(tf.sqrt(a!), tf.rsqrt(a!))),
    [[5]],
    4,
    true,
  );
  check("abs/relu", (a) => tf.add(tf.abs(a!), tf.relu(a!)), [[6]], 5);
  check("sigmoid/tanh", (a) => tf.mul(tf.sigmoid(a!), tf.tanh(a!)), [[6]], 6);
  check(
    "softmax/logSoftmax",
    (a) => tf.add(tf.softmax(a!, -1), tf.logSoftmax(a!, -1)),
    [[2, 4]],
    7,
  );
});

Deno.test("gradients: shape ops and reductions", async () => {
  await initBackend("cpu");
  check("reshape/transpose", (a) => tf.transpose(tf.reshape(a!, [2, 3, 2]), [2, 0, 1]), [[3, 4]]);
  check("slice", (a) => tf.slice(a!, [1, 0], [2, 2]), [[4, 3]]);
  check("sum/mean axes", (a) => tf.add(tf.sum(a!, [0, 2], true), tf.mean(a!, 1, true)), [[
    2,
    3,
    2,
  ]]);
  check("sum/mean all", (a) => tf.add(tf.sum(a!), tf.mean(a!)), [[2, 3]]);
  check("moments", (a) => tf.add(tf.moments(a!, [0, 1]).variance, tf.moments(a!, [0, 1]).mean), [[
    3,
    2,
    2,
  ]]);
  check("matMul", (a, b) => tf.matMul(a!, b!), [[3, 4], [4, 2]]);
  check("matMul-tA-tB", (a, b) => tf.matMul(a!, b!, true, true), [[4, 3], [2, 4]]);
});

Deno.test("gradients: conv3d (same/stride-1 and valid/stride-2) and the transposed conv", async () => {
  await initBackend("cpu");
  check("conv3d same", (x, w) => tf.conv3d(x as tf.Tensor5D, w as tf.Tensor5D, 1, "same"), [[
    1,
    3,
    3,
    2,
    2,
  ], [3, 3, 3, 2, 2]]);
  check("conv3d s2", (x, w) => tf.conv3d(x as tf.Tensor5D, w as tf.Tensor5D, 2, "valid"), [[
    2,
    4,
    2,
    4,
    2,
  ], [2, 2, 2, 2, 3]]);
  check("transposedConv2x", (x, w, b) => transposedConv2x(x as tf.Tensor5D, w!, b!), [
    [1, 2, 1, 2, 3],
    [3, 2, 2, 2, 2],
    [2],
  ]);
});

Deno.test("gradients: Slice with a number `begin` (axis 0 only) scatters back to the right rows", () => {
  const g = tf.tidy(() =>
    tf.grad((x: tf.Tensor) => tf.sum(tf.mul(tf.slice(x, 1, 2), tf.tensor2d([[1, 2], [3, 4]]))))(
      tf.zeros([4, 2]),
    ).dataSync()
  );
  assert.deepEqual(Array.from(g), [0, 0, 1, 2, 3, 4, 0, 0]);
});
