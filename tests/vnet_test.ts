import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { initBackend } from "../methods/nn/backend.ts";
import { Rng } from "../methods/nn/rng.ts";
import {
  batchNorm,
  type BnParams,
  channelDropoutMask,
  dtcHeads,
  segHeads,
  transposedConv2x,
  VNet,
} from "../methods/nn/vnet.ts";

const close = (a: number, b: number, tol = 1e-5) =>
  assert.ok(Math.abs(a - b) <= tol, `${a} vs ${b}`);

Deno.test("transposedConv2x equals tf.conv3dTranspose(k2, s2, valid) forward", async () => {
  await initBackend("cpu");
  const rng = new Rng(9);
  const [ci, co] = [3, 4];
  const x = tf.tensor5d(rng.fillNormal(new Float32Array(2 * 2 * 3 * 2 * ci)), [2, 2, 3, 2, ci]);
  const w = tf.tensor(rng.fillNormal(new Float32Array(ci * 8 * co)), [ci, 2, 2, 2, co]);
  const b = tf.tensor1d([0.1, -0.2, 0.3, 0]);
  const ours = transposedConv2x(x, w, b);
  // tfjs filter layout: [kd, kh, kw, outChannels, inChannels]
  const filter = tf.transpose(w, [1, 2, 3, 4, 0]) as tf.Tensor5D;
  const ref = tf.add(tf.conv3dTranspose(x, filter, [2, 4, 6, 4, co], 2, "valid"), b);
  assert.deepEqual(ours.shape, [2, 4, 6, 4, co]);
  const a = ours.dataSync(), r = ref.dataSync();
  for (let i = 0; i < a.length; i++) close(a[i]!, r[i]!, 1e-5);
  tf.dispose([x, w, b, ours, filter, ref]);
});

function bnParams(): BnParams {
  return {
    gamma: tf.variable(tf.tensor1d([2])),
    beta: tf.variable(tf.tensor1d([0.5])),
    mean: tf.variable(tf.tensor1d([0]), false),
    variance: tf.variable(tf.tensor1d([1]), false),
  };
}

Deno.test("BatchNorm: PyTorch train/eval semantics and running stats after 2 steps", async () => {
  await initBackend("cpu");
  const p = bnParams();
  const x1 = tf.tensor5d([1, 2, 3, 6], [2, 1, 1, 2, 1]);
  // batch mean 3, biased var 3.5 (used to normalise), unbiased 14/3 (running update)
  const y1 = batchNorm(x1, p, { training: true }).dataSync();
  [1, 2, 3, 6].forEach((v, i) => close(y1[i]!, 2 * (v - 3) / Math.sqrt(3.5 + 1e-5) + 0.5));
  close(p.mean.dataSync()[0]!, 0.3);
  close(p.variance.dataSync()[0]!, 0.9 + 0.1 * 14 / 3);
  const x2 = tf.tensor5d([0, 0, 2, 2], [1, 2, 2, 1, 1]);
  batchNorm(x2, p, { training: true }).dispose(); // mean 1, biased 1, unbiased 4/3
  const rm = 0.9 * 0.3 + 0.1 * 1;
  const rv = 0.9 * (0.9 + 0.1 * 14 / 3) + 0.1 * 4 / 3;
  close(p.mean.dataSync()[0]!, rm);
  close(p.variance.dataSync()[0]!, rv);
  // eval: running stats, and no update
  const ye = batchNorm(x1, p, { training: false }).dataSync();
  [1, 2, 3, 6].forEach((v, i) => close(ye[i]!, 2 * (v - rm) / Math.sqrt(rv + 1e-5) + 0.5));
  close(p.mean.dataSync()[0]!, rm);
  // training without updateStats leaves the buffers alone
  batchNorm(x1, p, { training: true, updateStats: false }).dispose();
  close(p.mean.dataSync()[0]!, rm);
  tf.dispose([x1, x2, p.gamma, p.beta, p.mean, p.variance]);
});

/** Analytic PyTorch parameter count of UA-MT VNet(n_channels, n_classes, n_filters, batchnorm). */
function expectedVNetParams(cin: number, ncls: number, nf: number, heads = 1): number {
  const conv = (ci: number, co: number, k: number) => k * k * k * ci * co + co;
  const bn = (c: number) => 2 * c;
  const block = (n: number, ci: number, co: number) => {
    let s = 0;
    for (let i = 0; i < n; i++) s += conv(i === 0 ? ci : co, co, 3) + bn(co);
    return s;
  };
  const dw = (ci: number, co: number) => conv(ci, co, 2) + bn(co);
  const up = (ci: number, co: number) => 8 * ci * co + co + bn(co); // ConvTranspose3d + BN
  return block(1, cin, nf) + dw(nf, 2 * nf) + block(2, 2 * nf, 2 * nf) + dw(2 * nf, 4 * nf) +
    block(3, 4 * nf, 4 * nf) + dw(4 * nf, 8 * nf) + block(3, 8 * nf, 8 * nf) +
    dw(8 * nf, 16 * nf) + block(3, 16 * nf, 16 * nf) + up(16 * nf, 8 * nf) +
    block(3, 8 * nf, 8 * nf) + up(8 * nf, 4 * nf) + block(3, 4 * nf, 4 * nf) +
    up(4 * nf, 2 * nf) + block(2, 2 * nf, 2 * nf) + up(2 * nf, nf) + block(1, nf, nf) +
    heads * conv(nf, ncls, 1);
}

Deno.test("VNet: parameter count equals PyTorch's (9,448,866 for n_filters 16, 1 -> 2 classes)", async () => {
  await initBackend("cpu");
  assert.equal(expectedVNetParams(1, 2, 16), 9_448_866);
  const net = new VNet({ inChannels: 1, nFilters: 16, heads: segHeads(2) }, new Rng(1));
  assert.equal(net.parameterCount(), 9_448_866);
  net.dispose();
  const dtc = new VNet({ inChannels: 1, nFilters: 4, heads: dtcHeads(1) }, new Rng(1));
  assert.equal(dtc.parameterCount(), expectedVNetParams(1, 1, 4, 2));
  dtc.dispose();
});

Deno.test("VNet: deterministic PyTorch-default init, shapes, eval vs train, dropout masks", async () => {
  await initBackend("cpu");
  const a = new VNet({ inChannels: 1, nFilters: 2 }, new Rng(4));
  const b = new VNet({ inChannels: 1, nFilters: 2 }, new Rng(4));
  const c = new VNet({ inChannels: 1, nFilters: 2 }, new Rng(5));
  assert.deepEqual(a.state(), b.state());
  assert.notDeepEqual(a.state(), c.state());
  // kaiming_uniform(a=sqrt 5): |w| <= 1/sqrt(fan_in); fan_in of block_two.conv0 = 27*4
  const w = a.params.get("block_two.conv0.weight")!.dataSync();
  const bound = 1 / Math.sqrt(27 * 4);
  assert.ok(w.every((v) => Math.abs(v) <= bound));
  assert.ok(Math.max(...w.map(Math.abs)) > 0.8 * bound);
  // transposed conv fan_in = 8 * out channels (PyTorch's weight.size(1) * 8)
  const up = a.params.get("block_eight_up.deconv.weight")!.dataSync();
  assert.ok(up.every((v) => Math.abs(v) <= 1 / Math.sqrt(8 * 2)));
  assert.deepEqual([...a.params.get("block_one.bn0.weight")!.dataSync()], [1, 1]);
  const x = tf.randomNormal([2, 16, 16, 16, 1], 0, 1, "float32", 3) as tf.Tensor5D;
  const before = a.buffers.get("block_one.bn0.running_mean")!.dataSync().slice();
  const e1 = tf.tidy(() => a.forward(x, { training: false })[0]!.dataSync());
  const e2 = tf.tidy(() => a.forward(x, { training: false })[0]!.dataSync());
  assert.deepEqual(e1, e2);
  assert.deepEqual(a.buffers.get("block_one.bn0.running_mean")!.dataSync(), before);
  const shape = tf.tidy(() => a.forward(x, { training: true, dropoutRng: new Rng(1) })[0]!.shape);
  assert.deepEqual(shape, [2, 16, 16, 16, 2]);
  assert.notDeepEqual(a.buffers.get("block_one.bn0.running_mean")!.dataSync(), before);
  assert.throws(() => tf.tidy(() => a.forward(x, { training: true })), /dropoutRng/);
  // Dropout3d mask: [N,1,1,1,C], values in {0, 2}, from the Rng (reproducible)
  const m1 = channelDropoutMask(3, 5, 0.5, new Rng(8));
  const m2 = channelDropoutMask(3, 5, 0.5, new Rng(8));
  assert.deepEqual(m1.shape, [3, 1, 1, 1, 5]);
  assert.deepEqual(m1.dataSync(), m2.dataSync());
  assert.ok(m1.dataSync().every((v) => v === 0 || v === 2));
  tf.dispose([x, m1, m2]);
  for (const n of [a, b, c]) n.dispose();
});
