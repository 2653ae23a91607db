/**
 * Every WGSL kernel of `methods/nn/webgpu/` against the pure-JS cpu reference: conv3d forward
 * and both gradients (odd shapes, stride 2, padding, batch > 1, both tile shapes), the
 * transposed conv, fused BatchNorm+ReLU / InstanceNorm+LeakyReLU forward and backward, the SGD
 * update, rank-8 Transpose, PadV2, and the same with the storage-binding limit lowered below
 * the tensors' sizes (the split-dispatch path). Tolerance: max relative difference 1e-4.
 * Runs on the software adapter here and in CI (allowed for tests by `webgpu_util.ts`).
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import "../methods/nn/gradients.ts";
import { Rng } from "../methods/nn/rng.ts";
import { batchNorm, type BnParams, transposedConv2x } from "../methods/nn/vnet.ts";
import { instanceNormLeaky } from "../methods/nn/massl_layers.ts";
import { Sgd, type SgdOptions } from "../methods/nn/optim.ts";
import { dispatchCount, planChunks, setBindingLimit } from "../methods/nn/webgpu/gpu.ts";
import { webgpuCallCounts } from "../methods/nn/webgpu/install.ts";
import { maxRel, onBoth, webgpuMissing } from "./webgpu_util.ts";

const missing = await webgpuMissing("webgpu_kernels_test");
const TOL = 1e-4;

function rand(n: number, seed: number, sd = 1, mean = 0): Float32Array {
  return new Rng(seed).fillNormal(new Float32Array(n), mean, sd);
}

const prod = (s: number[]) => s.reduce((a, b) => a * b, 1);

interface ConvCase {
  x: [number, number, number, number, number];
  w: [number, number, number, number, number];
  stride: number;
  pad: "same" | "valid";
}

const CONV_CASES: ConvCase[] = [
  { x: [1, 6, 5, 7, 3], w: [3, 3, 3, 3, 4], stride: 1, pad: "same" }, // odd shape
  { x: [2, 9, 7, 5, 2], w: [3, 3, 3, 2, 19], stride: 1, pad: "same" }, // batch 2, N > 16
  { x: [2, 8, 6, 10, 3], w: [2, 2, 2, 3, 5], stride: 2, pad: "valid" }, // V-Net down conv
  { x: [3, 7, 9, 5, 33], w: [3, 3, 3, 33, 17], stride: 2, pad: "same" }, // stride 2 + padding
  { x: [2, 4, 4, 4, 16], w: [1, 1, 1, 16, 2], stride: 1, pad: "valid" }, // 1x1x1 head
  { x: [1, 5, 6, 4, 1], w: [3, 3, 3, 1, 16], stride: 1, pad: "same" }, // first V-Net layer
  { x: [2, 6, 5, 7, 32], w: [3, 3, 3, 32, 16], stride: 1, pad: "same" }, // channel-aligned
  { x: [2, 6, 4, 6, 16], w: [2, 2, 2, 16, 32], stride: 2, pad: "valid" }, // aligned, stride 2
];

/** y, dx, dw of `sum(conv3d(x, w) * r)` for a fixed random r. */
function convOutputs(c: ConvCase, seed: number): () => tf.Tensor[] {
  const xv = rand(prod(c.x), seed), wv = rand(prod(c.w), seed + 1, 0.3);
  return () => {
    const x = tf.tensor5d(xv, c.x), w = tf.tensor5d(wv, c.w);
    const y = tf.conv3d(x, w, c.stride, c.pad);
    const r = tf.tensor(rand(y.size, seed + 2), y.shape);
    const f = (a: tf.Tensor, b: tf.Tensor) =>
      tf.sum(tf.mul(tf.conv3d(a as tf.Tensor5D, b as tf.Tensor5D, c.stride, c.pad), r));
    const [dx, dw] = tf.grads(f)([x, w]);
    return [y, dx!, dw!];
  };
}

async function checkConv(label: string): Promise<void> {
  for (const [i, c] of CONV_CASES.entries()) {
    const { ref, gpu } = await onBoth(convOutputs(c, 10 * i));
    ["y", "dx", "dw"].forEach((what, j) => {
      const e = maxRel(gpu[j]!, ref[j]!);
      assert.ok(e <= TOL, `${label} case ${i} ${what}: max rel diff ${e}`);
    });
  }
}

Deno.test({
  name: "webgpu conv3d: forward, dx, dw equal the cpu reference (odd shapes, stride 2, padding)",
  ignore: missing !== null,
  async fn() {
    const before = webgpuCallCounts();
    await checkConv("conv");
    const after = webgpuCallCounts();
    for (const k of ["Conv3D", "Conv3DBackpropInputV2", "Conv3DBackpropFilterV2"]) {
      assert.ok((after[k] ?? 0) > (before[k] ?? 0), `${k} served by the WGSL kernel`);
    }
  },
});

Deno.test({
  name: "webgpu conv3d: split dispatches under a lowered binding limit give the same results",
  ignore: missing !== null,
  async fn() {
    // 24 KiB: below every activation of the larger cases, above one depth plane of each.
    setBindingLimit(24 * 1024);
    try {
      const d0 = dispatchCount();
      await checkConv("conv (split)");
      const perCase = (dispatchCount() - d0) / CONV_CASES.length;
      assert.ok(perCase > 6, `split path taken (${perCase} dispatches per case)`);
    } finally {
      setBindingLimit(null);
    }
  },
});

Deno.test({
  name: "webgpu transposed conv: conv3dTranspose and the V-Net's depth-to-space up-conv",
  ignore: missing !== null,
  async fn() {
    const xv = rand(2 * 3 * 4 * 5 * 6, 3), wv = rand(2 * 2 * 2 * 7 * 6, 4, 0.3);
    const uv = rand(6 * 8 * 7, 5, 0.3);
    const { ref, gpu } = await onBoth(() => {
      const x = tf.tensor5d(xv, [2, 3, 4, 5, 6]);
      const w = tf.tensor5d(wv, [2, 2, 2, 7, 6]); // [kd, kh, kw, out, in] for conv3dTranspose
      const y = tf.conv3dTranspose(x, w, [2, 6, 8, 10, 7], 2, "valid");
      const u = tf.tensor(uv, [6, 2, 2, 2, 7]);
      const z = transposedConv2x(x, u);
      const r = tf.tensor(rand(z.size, 6), z.shape);
      const [dx, du] = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
        tf.sum(tf.mul(transposedConv2x(a as tf.Tensor5D, b), r))
      )([x, u]);
      return [y, z, dx!, du!];
    });
    ["conv3dTranspose", "up-conv", "up-conv dx", "up-conv dw"].forEach((what, j) => {
      const e = maxRel(gpu[j]!, ref[j]!);
      assert.ok(e <= TOL, `${what}: max rel diff ${e}`);
    });
  },
});

interface NormCase {
  shape: [number, number, number, number, number];
  kind: "bn-relu" | "in-leaky";
}

const NORM_CASES: NormCase[] = [
  { shape: [2, 5, 4, 3, 7], kind: "bn-relu" },
  { shape: [3, 9, 11, 13, 5], kind: "in-leaky" }, // blocks of 256 voxels: 5 per sample
  { shape: [2, 16, 16, 16, 16], kind: "bn-relu" }, // 32 blocks, larger than the lowered limit
  { shape: [1, 2, 3, 2, 4], kind: "in-leaky" },
  { shape: [2, 7, 6, 5, 3], kind: "in-leaky" },
];

function normOutputs(c: NormCase, seed: number): () => tf.Tensor[] {
  const ch = c.shape[c.shape.length - 1]!;
  const xv = rand(prod(c.shape), seed, 2, 3), rv = rand(prod(c.shape), seed + 1);
  const gv = rand(ch, seed + 2, 0.3, 1), bv = rand(ch, seed + 3, 0.3);
  return () => {
    const x = tf.tensor5d(xv, c.shape), r = tf.tensor5d(rv, c.shape);
    const gamma = tf.variable(tf.tensor1d(gv)), beta = tf.variable(tf.tensor1d(bv));
    const p: BnParams = {
      gamma,
      beta,
      mean: tf.variable(tf.zeros([ch])),
      variance: tf.variable(tf.ones([ch])),
    };
    const f = (a: tf.Tensor) =>
      c.kind === "bn-relu"
        ? batchNorm(a as tf.Tensor5D, p, { training: true, relu: true, updateStats: false })
        : instanceNormLeaky(a as tf.Tensor5D);
    const y = f(x);
    const [dx] = tf.grads((a: tf.Tensor) => tf.sum(tf.mul(f(a), r)))([x]);
    const res = [y, dx!];
    if (c.kind === "bn-relu") {
      const vg = tf.variableGrads(() => tf.sum(tf.mul(f(x), r)) as tf.Scalar, [gamma, beta]);
      res.push(vg.grads[gamma.name]!, vg.grads[beta.name]!);
      vg.value.dispose();
    }
    tf.dispose([p.mean, p.variance]);
    gamma.dispose();
    beta.dispose();
    return res;
  };
}

async function checkNorm(label: string): Promise<void> {
  for (const [i, c] of NORM_CASES.entries()) {
    const { ref, gpu } = await onBoth(normOutputs(c, 100 + i));
    ["y", "dx", "dgamma", "dbeta"].slice(0, ref.length).forEach((what, j) => {
      const e = maxRel(gpu[j]!, ref[j]!);
      assert.ok(e <= TOL, `${label} ${c.kind} ${c.shape} ${what}: max rel diff ${e}`);
    });
  }
}

Deno.test({
  name: "webgpu fused norm+activation: BN+ReLU and IN+LeakyReLU values and gradients",
  ignore: missing !== null,
  async fn() {
    const before = webgpuCallCounts()["SemisegNormActGrad"] ?? 0;
    await checkNorm("norm");
    assert.ok((webgpuCallCounts()["SemisegNormActGrad"] ?? 0) > before, "fused backward used");
  },
});

Deno.test({
  name: "webgpu fused norm+activation: split dispatches under a lowered binding limit",
  ignore: missing !== null,
  async fn() {
    setBindingLimit(64 * 1024); // one block of 256 voxels x 16 channels = 16 KiB
    try {
      await checkNorm("norm (split)");
    } finally {
      setBindingLimit(null);
    }
  },
});

Deno.test({
  name: "webgpu SGD: the one-pass update equals the composite update (4 variants, split too)",
  ignore: missing !== null,
  async fn() {
    const variants: SgdOptions[] = [
      { momentum: 0.9, weightDecay: 1e-4 },
      { momentum: 0.9, weightDecay: 0.1, nesterov: true },
      { momentum: 0.5, weightDecay: 0, dampening: 0.3 },
      { momentum: 0, weightDecay: 0.01 },
    ];
    for (const limit of [null, 4096]) {
      setBindingLimit(limit);
      try {
        for (const o of variants) {
          const { ref, gpu } = await onBoth(() => {
            const p = tf.variable(tf.tensor1d(rand(5003, 1)));
            const opt = new Sgd(new Map([["p", p]]), o);
            for (let i = 0; i < 3; i++) {
              const g = tf.tensor1d(rand(5003, 2 + i));
              opt.step(new Map([["p", g]]), 0.05);
              g.dispose();
            }
            const out = tf.clone(p);
            opt.dispose();
            p.dispose();
            return [out];
          });
          const e = maxRel(gpu[0]!, ref[0]!);
          assert.ok(e <= 1e-6, `${JSON.stringify(o)} limit ${limit}: ${e}`);
        }
      } finally {
        setBindingLimit(null);
      }
    }
  },
});

Deno.test({
  name: "webgpu layout: rank-8 Transpose, Slice and PadV2 (last-axis after-padding) equal cpu",
  ignore: missing !== null,
  async fn() {
    const before = webgpuCallCounts();
    const v = rand(2 * 3 * 2 * 2 * 3 * 2 * 2 * 3, 7);
    const { ref, gpu } = await onBoth(() => {
      const x = tf.tensor(v, [2, 3, 2, 2, 3, 2, 2, 3]);
      const t = tf.transpose(x, [0, 1, 4, 2, 5, 3, 6, 7]);
      const x5 = tf.tensor(v.slice(0, 2 * 3 * 4 * 5), [1, 2, 3, 4, 5]);
      const p = tf.pad(x5, [[0, 1], [1, 0], [0, 2], [1, 1], [0, 1]], 0.5);
      const s = tf.grads((a: tf.Tensor) => tf.sum(tf.square(tf.slice(a, [0, 1, 0, 1, 1]))))([x5]);
      const pi = tf.cast(
        tf.pad(tf.cast(x5, "int32"), [[0, 0], [0, 0], [0, 0], [0, 0], [0, 1]], 3),
        "float32",
      );
      const sl = tf.slice(x5, [0, 1, 1, 0, 2], [1, 1, 2, -1, 2]);
      const s8 = tf.slice(x, [1, 0, 1, 0, 1, 0, 1, 1], [1, 2, 1, 2, 2, 2, 1, 2]);
      const si = tf.cast(
        tf.slice(tf.cast(x5, "int32"), [0, 0, 1, 1, 1], [1, 2, 2, 2, 3]),
        "float32",
      );
      return [t, p, s[0]!, pi, sl, s8, si];
    });
    ["transpose", "pad", "slice gradient", "int32 pad", "slice", "rank-8 slice", "int32 slice"]
      .forEach((what, j) => {
        assert.equal(maxRel(gpu[j]!, ref[j]!), 0, what);
      });
    const after = webgpuCallCounts();
    for (const k of ["Transpose", "Slice", "PadV2"]) {
      assert.ok((after[k] ?? 0) > (before[k] ?? 0), `${k} served by the WGSL kernel`);
    }
  },
});

Deno.test({
  name: "webgpu reductions and softmax: Sum/Mean/Max over contiguous axes, softmax, log-softmax",
  ignore: missing !== null,
  async fn() {
    const v = rand(3 * 17 * 9 * 5 * 2, 8, 2);
    const big = rand(70001, 9);
    const before = webgpuCallCounts();
    const { ref, gpu } = await onBoth(() => {
      const x = tf.tensor5d(v, [3, 17, 9, 5, 2]);
      const b = tf.tensor1d(big);
      return [
        tf.sum(x), // whole tensor, two passes (R > 256)
        tf.sum(x, [0, 1, 2, 3]), // leading axes: a bias gradient
        tf.mean(x, [1, 2], true), // middle axes, keepDims
        tf.max(x, -1), // last axis, one pass
        tf.mean(b), // 70001 values: 274 blocks
        tf.max(b),
        tf.softmax(x),
        tf.logSoftmax(x),
      ];
    });
    [
      "sum all",
      "sum leading",
      "mean middle",
      "max last",
      "mean 70001",
      "max 70001",
      "softmax",
      "logSoftmax",
    ]
      .forEach((what, j) => {
        const e = maxRel(gpu[j]!, ref[j]!);
        assert.ok(e <= TOL, `${what}: max rel diff ${e}`);
      });
    const after = webgpuCallCounts();
    for (const k of ["Sum", "Mean", "Max", "Softmax"]) {
      assert.ok((after[k] ?? 0) > (before[k] ?? 0), `${k} served by the WGSL kernel`);
    }
  },
});

Deno.test({
  name: "webgpu Cast: int32/bool -> float32 converts, so f32 kernels downstream read numbers",
  ignore: missing !== null,
  async fn() {
    const ints = Int32Array.from({ length: 4096 }, (_, i) => i % 3);
    const { ref, gpu } = await onBoth(() => {
      const a = tf.add(tf.tensor1d(ints, "int32"), 0); // an int32 tensor computed on the device
      const x = tf.cast(tf.equal(a, 1), "float32"); // bool -> float32
      const y = tf.cast(a, "float32"); // int32 -> float32
      const x4 = tf.reshape(x, [2, 8, 16, 16]);
      return [tf.sum(x), tf.mean(x), tf.max(y), tf.sum(x4, 1), tf.transpose(x4, [0, 3, 2, 1])];
    });
    assert.equal(ref[0]![0], 1365);
    ["sum", "mean", "max", "sum axis 1", "transpose"].forEach((what, j) => {
      assert.ok(
        maxRel(gpu[j]!, ref[j]!) <= TOL,
        `${what}: ${gpu[j]!.slice(0, 3)} vs ${ref[j]!.slice(0, 3)}`,
      );
    });
  },
});

Deno.test("webgpu planChunks: contiguous ranges whose windows fit; one range when all fits", () => {
  const ranges = (p: number): [number, number][] => [[p * 100, (p + 1) * 100], [
    Math.max(0, p - 1) * 50,
    (p + 2) * 50,
  ]];
  assert.deepEqual(planChunks(10, ranges, 1e9, 64, "t"), [[0, 10]]);
  const chunks = planChunks(10, ranges, 1600, 64, "t");
  assert.equal(chunks[0]![0], 0);
  assert.equal(chunks[chunks.length - 1]![1], 10);
  for (let i = 1; i < chunks.length; i++) assert.equal(chunks[i]![0], chunks[i - 1]![1]);
  for (const [a, b] of chunks) {
    const r0 = ranges(a), r1 = ranges(b - 1);
    for (let k = 0; k < 2; k++) {
      assert.ok((r1[k]![1] - Math.floor(r0[k]![0] / 64) * 64) * 4 <= 1600, `${a}-${b}`);
    }
  }
  assert.ok(chunks.length > 1);
  assert.throws(
    () => planChunks(3, ranges, 256, 64, "conv3d"),
    /one unit .* exceeds the storage binding limit \(256 bytes\)/,
  );
});
