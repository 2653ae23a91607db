/**
 * The fused native inference forward (methods/nn/native/infer.ts) against the tfjs path on the
 * reference pure-JS cpu kernels: probabilities of small V-Nets with non-trivial BatchNorm
 * statistics on several window shapes (batch > 1, non-cubic, two input channels, three
 * classes), re-folding after a weight change, flat tensor count and buffer memory over many
 * calls, and the sliding-window evaluator with the fused path against the unfused one. Skipped,
 * with a message, when libdnnl.so.2 is absent.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import {
  installNativeKernels,
  nativeLibrary,
  uninstallNativeKernels,
} from "../methods/nn/native/install.ts";
import {
  disposeInferenceRunners,
  fusedInferenceCounts,
  InferenceRunner,
  type InferStepTime,
  predictingNetwork,
  setFusedInference,
} from "../methods/nn/native/infer.ts";
import { segHeads, VNet } from "../methods/nn/vnet.ts";
import { Rng } from "../methods/nn/rng.ts";
import { supervised } from "../methods/supervised.ts";
import { METHODS } from "../methods/mod.ts";
import { resolveHyperParams } from "../methods/types.ts";
import type { Method } from "../methods/types.ts";
import { EVAL_BATCH, evaluateCase, windowPredictor } from "../benchmarks/harness/evaluate.ts";
import { slidingWindowInference } from "../benchmarks/harness/sliding_window.ts";
import { LA_EVAL } from "../benchmarks/harness/spec.ts";
import type { Case } from "../datasets/types.ts";
import { dnnlMissing } from "./native_util.ts";

tf.env().set("PROD", true);
await tf.setBackend("cpu");

const missing = dnnlMissing("native_infer_test");
const ignore = missing !== null;

type Shape5 = [number, number, number, number, number];

/**
 * Give `net` non-trivial eval-mode BatchNorm (gamma, beta, running mean and variance drawn
 * away from the identity) and a scaled head, so the probabilities span (0, 1) widely.
 */
function perturb(net: VNet, seed: number): void {
  const r = new Rng(seed);
  const set = (v: tf.Variable, lo: number, hi: number) => {
    const a = r.fillUniform(new Float32Array(v.size), lo, hi);
    v.assign(tf.tensor(a, v.shape));
  };
  for (const [k, v] of net.params) {
    if (/\.bn\d?\.weight$/.test(k)) set(v, 0.6, 2.5);
    else if (/\.bn\d?\.bias$/.test(k)) set(v, -0.4, 0.6);
  }
  for (const [k, v] of net.buffers) {
    if (k.endsWith("running_mean")) set(v, -0.3, 0.3);
    else set(v, 0.2, 1.5);
  }
  const head = net.params.get(`${net.heads[0]!.key}.weight`)!;
  tf.tidy(() => head.assign(tf.mul(head, 6)));
}

function input(shape: Shape5, seed: number): Float32Array {
  return new Rng(seed).fillNormal(new Float32Array(shape.reduce((a, b) => a * b, 1)));
}

/** `softmax(net.forward(x, eval)[0])` on the current tfjs kernels. */
function reference(net: VNet, x: Float32Array, shape: Shape5): Float32Array {
  return tf.tidy(() =>
    tf.softmax(net.forward(tf.tensor5d(x, shape), { training: false })[0]!, -1).dataSync()
  ) as Float32Array;
}

/** The same, on tfjs's own pure-JS kernels (native layer off), then the layer back on. */
function pureJsReference(net: VNet, x: Float32Array, shape: Shape5): Float32Array {
  uninstallNativeKernels();
  try {
    return reference(net, x, shape);
  } finally {
    assert.ok(installNativeKernels().active);
  }
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

function range(a: ArrayLike<number>): [number, number] {
  let lo = Infinity, hi = -Infinity;
  for (let i = 0; i < a.length; i++) {
    lo = Math.min(lo, a[i]!);
    hi = Math.max(hi, a[i]!);
  }
  return [lo, hi];
}

const CASES: { name: string; inChannels: number; classes: number; nf: number; shapes: Shape5[] }[] =
  [
    {
      name: "1 channel, 2 classes",
      inChannels: 1,
      classes: 2,
      nf: 4,
      shapes: [[1, 16, 16, 16, 1], [2, 32, 16, 48, 1], [3, 16, 32, 16, 1]],
    },
    {
      name: "2 channels, 3 classes",
      inChannels: 2,
      classes: 3,
      nf: 8,
      shapes: [[2, 16, 32, 32, 2]],
    },
  ];

for (const c of CASES) {
  Deno.test({
    name: `fused V-Net inference (${c.name}) equals softmax(forward) on pure-JS tfjs kernels`,
    ignore,
    fn() {
      assert.ok(installNativeKernels().active);
      const net = new VNet(
        { inChannels: c.inChannels, nFilters: c.nf, heads: segHeads(c.classes) },
        new Rng(7),
      );
      perturb(net, 11);
      const runner = new InferenceRunner(nativeLibrary()!, net);
      try {
        for (const [i, shape] of c.shapes.entries()) {
          const x = input(shape, 100 + i);
          const fused = runner.run(x, shape).slice();
          const ref = pureJsReference(net, x, shape);
          const d = maxAbsDiff(fused, ref);
          assert.ok(d <= 1e-4, `[${shape}]: max |fused - pure JS| = ${d}`);
          const [lo, hi] = range(ref);
          // The comparison means something only if the probabilities are far from uniform.
          assert.ok(lo < 0.05 && hi > 0.95, `[${shape}]: probabilities only span [${lo}, ${hi}]`);
          for (let v = 0; v < fused.length; v += c.classes) {
            let s = 0;
            for (let k = 0; k < c.classes; k++) s += fused[v + k]!;
            assert.ok(
              Math.abs(s - 1) < 1e-5,
              `probabilities at voxel ${v / c.classes} sum to ${s}`,
            );
          }
        }
      } finally {
        runner.dispose();
        net.dispose();
      }
    },
  });
}

Deno.test({
  name:
    "fused V-Net inference: the other machines' paths (blocked nCdhw8c/16c, deconvolution ups) agree too",
  ignore,
  fn() {
    assert.ok(installNativeKernels().active);
    const net = new VNet({ inChannels: 1, nFilters: 8 }, new Rng(12));
    perturb(net, 13);
    const shape: Shape5 = [2, 16, 32, 16, 1];
    const x = input(shape, 14);
    const ref = pureJsReference(net, x, shape);
    const variants = [{ blocked: 8 as const }, { blocked: 16 as const }, { deconv: true }, {
      blocked: 8 as const,
      deconv: true,
    }];
    try {
      for (const opts of variants) {
        const runner = new InferenceRunner(nativeLibrary()!, net, opts);
        try {
          const steps = runner.describe(shape);
          const ups = steps.filter((s) => s.label.endsWith("_up.deconv")).map((s) => s.kind);
          if (opts.deconv) assert.ok(ups.every((k) => k.startsWith("deconv")), ups.join());
          else if (opts.blocked) assert.ok(ups.includes("up: skip add"), ups.join());
          const d = maxAbsDiff(runner.run(x, shape), ref);
          assert.ok(d <= 1e-4, `${JSON.stringify(opts)}: max |fused - pure JS| = ${d}`);
        } finally {
          runner.dispose();
        }
      }
    } finally {
      net.dispose();
    }
  },
});

Deno.test({
  name: "fused V-Net inference: every up layer and conv runs a non-reference oneDNN kernel",
  ignore,
  fn() {
    assert.ok(installNativeKernels().active);
    const net = new VNet({ inChannels: 1, nFilters: 4 }, new Rng(3));
    const runner = new InferenceRunner(nativeLibrary()!, net);
    try {
      const steps = runner.describe([2, 16, 16, 32, 1]);
      // 21 3x3x3 convolutions, 4 downs, 4 ups (one or more primitives each), the head.
      assert.equal(steps.filter((s) => /conv\d$/.test(s.label)).length, 21);
      assert.equal(steps.filter((s) => s.label.endsWith("_dw.conv")).length, 4);
      assert.equal(
        new Set(steps.filter((s) => s.label.endsWith("_up.deconv")).map((s) => s.label)).size,
        4,
      );
      assert.equal(steps.filter((s) => s.label === "out_conv").length, 1);
      const slow = steps.filter((s) => s.impl.startsWith("ref"));
      assert.deepEqual(slow, [], `reference kernels: ${JSON.stringify(slow)}`);
    } finally {
      runner.dispose();
      net.dispose();
    }
  },
});

Deno.test({
  name: "fused V-Net inference re-folds after a weight or BN statistic changes",
  ignore,
  fn() {
    assert.ok(installNativeKernels().active);
    const net = new VNet({ inChannels: 1, nFilters: 4 }, new Rng(5));
    perturb(net, 2);
    const runner = new InferenceRunner(nativeLibrary()!, net);
    try {
      const shape: Shape5 = [1, 16, 16, 32, 1];
      const x = input(shape, 9);
      const before = runner.run(x, shape).slice();
      const v0 = runner.version;
      // Same weights again: no re-fold.
      runner.run(x, shape);
      assert.equal(runner.version, v0);
      perturb(net, 3);
      const after = runner.run(x, shape).slice();
      assert.equal(runner.version, v0 + 1);
      assert.ok(maxAbsDiff(before, after) > 0.01, "the output did not change with the weights");
      const ref = reference(net, x, shape);
      const d = maxAbsDiff(after, ref);
      assert.ok(d <= 1e-4, `after the change: max |fused - tfjs| = ${d}`);
    } finally {
      runner.dispose();
      net.dispose();
    }
  },
});

Deno.test({
  name: "fused V-Net inference: tensor count and buffer memory flat over many calls; profile",
  ignore,
  fn() {
    assert.ok(installNativeKernels().active);
    const net = new VNet({ inChannels: 1, nFilters: 4 }, new Rng(8));
    const runner = new InferenceRunner(nativeLibrary()!, net);
    try {
      const a: Shape5 = [2, 16, 32, 16, 1], b: Shape5 = [1, 16, 32, 16, 1];
      const xa = input(a, 1), xb = input(b, 2);
      // Warm up both batch shapes (as a sliding window's full and last batches).
      runner.run(xa, a);
      runner.run(xb, b);
      const tensors = tf.memory().numTensors;
      const bytes = runner.bytes;
      const ext0 = Deno.memoryUsage().external;
      for (let i = 0; i < 40; i++) runner.run(i % 3 ? xa : xb, i % 3 ? a : b);
      assert.equal(tf.memory().numTensors, tensors);
      assert.equal(runner.bytes, bytes);
      const grew = Deno.memoryUsage().external - ext0;
      // 40 calls of ~1 MB of activations each: anything allocated per call would show.
      assert.ok(grew < 4 * 2 ** 20, `ArrayBuffer memory grew by ${grew} bytes over 40 calls`);
      const prof: InferStepTime[] = [];
      runner.run(xa, a, prof);
      assert.ok(prof.some((p) => p.kind.startsWith("conv3x3x3")));
      assert.ok(prof.some((p) => p.kind === "softmax (JS)"));
      assert.ok(prof.every((p) => p.ms >= 0 && Number.isFinite(p.ms)));
    } finally {
      runner.dispose();
      net.dispose();
    }
  },
});

Deno.test({
  name: "methods: every declared inference network's fused softmax equals the method's predict",
  ignore,
  fn() {
    assert.ok(installNativeKernels().active);
    // The single-V-Net softmax methods must declare theirs (MT / UA-MT: the student).
    const expected = new Set(["supervised", "mean-teacher", "ua-mt", "entropy-min"]);
    const shape: Shape5 = [1, 16, 16, 16, 1];
    const x = input(shape, 31);
    const declared: string[] = [];
    for (const def of METHODS) {
      const over = "nFilters" in def.defaults ? { nFilters: 4 } : {};
      const m = def.create(resolveHyperParams(def, over), {
        initSeed: 3,
        inChannels: 1,
        nClasses: 2,
      });
      try {
        const net = predictingNetwork(m);
        if (net === null) {
          assert.ok(!expected.has(def.id), `${def.id} declares no inference network`);
          continue;
        }
        declared.push(def.id);
        perturb(net, 5);
        const runner = new InferenceRunner(nativeLibrary()!, net);
        try {
          const fused = runner.run(x, shape);
          const ref = tf.tidy(() => m.predict(tf.tensor5d(x, shape)).dataSync());
          const d = maxAbsDiff(fused, ref);
          assert.ok(d <= 1e-4, `${def.id}: max |fused - predict| = ${d}`);
        } finally {
          runner.dispose();
        }
      } finally {
        m.dispose();
      }
    }
    for (const id of expected) assert.ok(declared.includes(id), `${id} is not registered`);
  },
});

function caseOf(shape: [number, number, number], seed: number): Case {
  const n = shape[0] * shape[1] * shape[2];
  const img = new Rng(seed).fillNormal(new Float32Array(n));
  const lab = new Uint8Array(n);
  for (let i = 0; i < n; i++) lab[i] = img[i]! > 0.3 ? 1 : 0;
  return {
    id: "synthetic",
    image: { data: img, shape, channels: 1, spacing: [1, 1, 1] },
    label: { data: lab, shape, spacing: [1, 1, 1] },
  };
}

Deno.test({
  name:
    "evaluator: the fused window predictor equals method.predict's (probabilities, labels, metrics)",
  ignore,
  async fn() {
    assert.ok(installNativeKernels().active);
    disposeInferenceRunners();
    const hp = resolveHyperParams(supervised, { nFilters: 4 });
    const method = supervised.create(hp, { initSeed: 4, inChannels: 1, nClasses: 2 });
    try {
      const net = method.inferenceNetwork?.();
      assert.ok(net, "the supervised V-Net method declares no inference network");
      perturb(net, 21);
      // 3 x 3 x 3 = 27 windows: batches of EVAL_BATCH and a smaller last one.
      const c = caseOf([40, 40, 20], 5);
      const protocol = {
        ...LA_EVAL,
        patch: [32, 32, 16] as [number, number, number],
        strideXY: 6,
        strideZ: 3,
        lcc: false,
        metrics: ["dice" as const, "jaccard" as const],
      };
      const opts = {
        patch: protocol.patch,
        numClasses: 2,
        stride: [6, 6, 3] as [number, number, number],
        batchSize: EVAL_BATCH,
      };
      const image = { data: c.image.data, shape: c.image.shape, channels: 1 };
      const before = fusedInferenceCounts();
      const fused = await slidingWindowInference(image, windowPredictor(method), opts);
      const mFused = await evaluateCase(method, c, protocol, 2);
      const after = fusedInferenceCounts();
      assert.ok(
        fused.plan.count >= 6 && fused.plan.count % EVAL_BATCH === 1,
        `${fused.plan.count} windows`,
      );
      assert.equal(after.fellBack, before.fellBack);
      assert.equal(after.checked, before.checked + 1, "the first batch was not checked once");
      assert.ok(after.fused - before.fused >= fused.plan.count / EVAL_BATCH, "fused path unused");
      setFusedInference(false);
      let plain, mPlain;
      try {
        plain = await slidingWindowInference(image, windowPredictor(method), opts);
        mPlain = await evaluateCase(method, c, protocol, 2);
      } finally {
        setFusedInference(null);
      }
      assert.equal(fusedInferenceCounts().fused, after.fused, "setFusedInference(false) ignored");
      const d = maxAbsDiff(fused.probs, plain.probs);
      assert.ok(d <= 1e-4, `stitched probabilities: max diff ${d}`);
      const [lo, hi] = range(plain.probs);
      assert.ok(lo < 0.05 && hi > 0.95, `probabilities only span [${lo}, ${hi}]`);
      for (let v = 0; v < plain.labels.length; v++) {
        if (fused.labels[v] === plain.labels[v]) continue;
        const margin = Math.abs(plain.probs[2 * v + 1]! - plain.probs[2 * v]!);
        assert.ok(margin <= 2e-4, `label differs at voxel ${v} with margin ${margin}`);
      }
      for (const k of ["dice", "jaccard"]) {
        assert.ok(Math.abs(mFused.values[k]! - mPlain.values[k]!) < 1e-3, `${k} differs`);
      }
    } finally {
      method.dispose();
      disposeInferenceRunners();
    }
  },
});

Deno.test({
  name: "evaluator: a fused path that disagrees with method.predict falls back to it",
  ignore,
  async fn() {
    assert.ok(installNativeKernels().active);
    const net = new VNet({ inChannels: 1, nFilters: 4 }, new Rng(1));
    const other = new VNet({ inChannels: 1, nFilters: 4 }, new Rng(2));
    // Claims `net` but predicts with `other`: the first-batch check must catch it.
    const liar: Method = {
      trainStep: () => ({ loss: 0 }),
      predict: (x) =>
        tf.tidy(() => tf.softmax(other.forward(x, { training: false })[0]!, -1) as tf.Tensor5D),
      inferenceNetwork: () => net,
      state: () => ({ tensors: {}, extra: {} }),
      restore: () => {},
      dispose: () => {},
    };
    try {
      const shape: Shape5 = [1, 16, 16, 16, 1];
      const x = input(shape, 3);
      const before = fusedInferenceCounts();
      const p = windowPredictor(liar);
      const first = (await p(x, shape)).slice();
      const second = (await p(x, shape)).slice();
      const ref = reference(other, x, shape);
      assert.ok(maxAbsDiff(first, ref) <= 1e-6 && maxAbsDiff(second, ref) <= 1e-6);
      assert.equal(fusedInferenceCounts().fellBack, before.fellBack + 1);
    } finally {
      net.dispose();
      other.dispose();
      disposeInferenceRunners();
    }
  },
});
