/**
 * Subprocess of tests/native_threads_test.ts: on the native cpu layer (oneDNN threads from
 * OMP_NUM_THREADS), runs the JS-and-oneDNN kernels that carry no oneDNN reduction (the fused
 * BatchNorm+ReLU with a conv bias, forward and backward, the instance-norm variant, the loss
 * head and the SGD update) on fixed inputs, four times so the output pool is recycled, and
 * prints one SHA-256 per kernel output as JSON on stdout.
 * @module
 */
import { createHash } from "node:crypto";
import * as tf from "@tensorflow/tfjs-core";
import "../methods/nn/gradients.ts";
import { initBackend } from "../methods/nn/backend.ts";
import { fusedNormAct, NORM_ACT_GRAD } from "../methods/nn/native/norm.ts";
import { fusedSoftmax, fusedSoftmaxCrossEntropy } from "../methods/nn/native/loss_head.ts";
import { Sgd } from "../methods/nn/optim.ts";
import { Rng } from "../methods/nn/rng.ts";

await initBackend("cpu");

function rand(shape: number[], seed: number, scale = 1, offset = 0): tf.Tensor {
  const a = new Rng(seed).fillNormal(new Float32Array(shape.reduce((x, y) => x * y, 1)));
  for (let i = 0; i < a.length; i++) a[i] = a[i]! * scale + offset;
  return tf.tensor(a, shape);
}

const hashes: Record<string, string> = {};
const put = (name: string, t: tf.Tensor) => {
  const h = createHash("sha256").update(new Uint8Array((t.dataSync() as Float32Array).buffer))
    .digest("hex").slice(0, 16);
  if (hashes[name] !== undefined && hashes[name] !== h) hashes[name] = "differs between repeats";
  else hashes[name] ??= h;
};

for (let rep = 0; rep < 4; rep++) {
  tf.tidy(() => {
    const shape = [2, 24, 20, 16, 16];
    const x = rand(shape, 1, 2, 0.5), dy = rand(shape, 2);
    const gamma = rand([16], 3, 0.3, 1), beta = rand([16], 4, 0.2), bias = rand([16], 5, 0.5);
    for (const perSample of [false, true]) {
      const attrs = {
        perSample,
        eps: 1e-5,
        act: perSample ? "leaky" : "relu",
        slope: 0.01,
      } as const;
      const [y, mean, variance] = fusedNormAct(x, gamma, beta, attrs, perSample ? undefined : bias);
      const inputs: tf.NamedTensorMap = { dy, x, y: y!, gamma, mean: mean!, variance: variance! };
      if (!perSample) inputs["bias"] = bias;
      const grads = tf.engine().runKernel(NORM_ACT_GRAD, inputs, attrs as never) as tf.Tensor[];
      const tag = perSample ? "instance" : "batch";
      put(`${tag}.y`, y!);
      grads.forEach((g, i) => put(`${tag}.grad${i}`, g));
    }
    const logits = rand([2, 24, 20, 16, 2], 6, 3);
    const labels = tf.cast(tf.greater(rand([2, 24, 20, 16], 7), 0), "int32");
    const { value, grad } = tf.valueAndGrad((t: tf.Tensor) => fusedSoftmaxCrossEntropy(t, labels))(
      logits,
    );
    put("ce", value);
    put("ce.grad", grad);
    const { grad: sg } = tf.valueAndGrad((t: tf.Tensor) =>
      tf.sum(tf.mul(fusedSoftmax(t), rand([2, 24, 20, 16, 2], 8)))
    )(logits);
    put("softmax.grad", sg);
  });
  const p = tf.variable(rand([3, 3, 3, 64, 64], 9));
  const opt = new Sgd(new Map([["w", p]]), { momentum: 0.9, weightDecay: 1e-4 });
  for (let i = 0; i < 3; i++) {
    const g = rand([3, 3, 3, 64, 64], 10 + i);
    opt.step(new Map([["w", g]]), 0.01);
    g.dispose();
  }
  put("sgd", p);
  opt.dispose();
  p.dispose();
}

Deno.stdout.writeSync(
  new TextEncoder().encode(
    JSON.stringify({ threads: Deno.env.get("OMP_NUM_THREADS") ?? null, hashes }) + "\n",
  ),
);
