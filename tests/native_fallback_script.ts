/**
 * Subprocess of tests/native_test.ts: selects the `cpu` backend (which installs the native
 * kernels, or prints one notice when the library is missing), calls installNativeKernels a
 * second time (must not print again), and prints a conv3d forward + gradients as JSON on
 * stdout together with the native status and the provenance details.
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import "../methods/nn/gradients.ts";
import { initBackend } from "../methods/nn/backend.ts";
import { installNativeKernels } from "../methods/nn/native/install.ts";
import { Rng } from "../methods/nn/rng.ts";

const prov = await initBackend("cpu");
const status = installNativeKernels();

function rand(shape: number[], seed: number): tf.Tensor {
  const r = new Rng(seed);
  return tf.tensor(r.fillNormal(new Float32Array(shape.reduce((a, b) => a * b, 1))), shape);
}

const out = tf.tidy(() => {
  const x = rand([2, 5, 6, 7, 3], 1) as tf.Tensor5D, w = rand([3, 3, 3, 3, 4], 2) as tf.Tensor5D;
  const y = tf.conv3d(x, w, 1, "same");
  const r = rand(y.shape, 3);
  const f = (a: tf.Tensor, b: tf.Tensor) =>
    tf.sum(tf.mul(tf.conv3d(a as tf.Tensor5D, b as tf.Tensor5D, 1, "same"), r));
  const [dx, dw] = tf.grads(f)([x, w]);
  return {
    y: Array.from(y.dataSync()),
    dx: Array.from(dx!.dataSync()),
    dw: Array.from(dw!.dataSync()),
  };
});
Deno.stdout.writeSync(
  new TextEncoder().encode(JSON.stringify({ status, details: prov.details, ...out }) + "\n"),
);
