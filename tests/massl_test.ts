/**
 * MASSL / MSSL / CNN / Pretrain (Chen et al., MICCAI 2019): attention targets and weights,
 * InstanceNorm, PyTorch-aligned strided conv, gradient routing of the reconstruction loss,
 * which optimizer moves which parameters under joint and alternating training, the
 * pre-training phases, conformance of every variant, and the benchmark plans.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { initBackend } from "../methods/nn/backend.ts";
import { Rng } from "../methods/nn/rng.ts";
import { lossAndGrads } from "../methods/nn/optim.ts";
import {
  conv3dTorch,
  instanceNorm,
  stopGradient,
  upsampleNearest2x,
} from "../methods/nn/massl_layers.ts";
import { MasslNet, type ParamGroup } from "../methods/nn/massl_net.ts";
import { masslAttentionLoss, masslAttentionTargets, masslLr } from "../methods/nn/massl_train.ts";
import { massl, type MasslMethod } from "../methods/massl.ts";
import { mssl } from "../methods/mssl.ts";
import { masslCnn } from "../methods/massl_cnn.ts";
import { masslPretrain } from "../methods/massl_pretrain.ts";
import {
  type HyperValue,
  type Method,
  resolveHyperParams,
  type StepInfo,
  type TrainBatch,
} from "../methods/types.ts";
import { checkMethodConformance } from "./conformance.ts";
import { expandGrid } from "../benchmarks/harness/plan.ts";
import { masslTable1Brats18 } from "../benchmarks/massl_table1_brats18.ts";
import { masslTable2Wmh17 } from "../benchmarks/massl_table2_wmh17.ts";
import { BENCHMARKS } from "../benchmarks/mod.ts";

const close = (a: number, b: number, tol = 1e-5, what = "") =>
  assert.ok(Math.abs(a - b) <= tol, `${what} ${a} vs ${b}`);
const arr = (t: tf.Tensor) => Array.from(t.dataSync());

Deno.test("MASSL attention targets, size weights and loss on a 2x2x2 example", async () => {
  await initBackend("cpu");
  tf.tidy(() => {
    const p = tf.tensor5d([0.2, 0.4, 0, 1, 0.6, 0.2, 0.1, 0.5], [1, 2, 2, 2, 1]);
    const x = tf.tensor5d([1, 2, 3, 4, 5, 6, 7, 8], [1, 2, 2, 2, 1]);
    const t = masslAttentionTargets(p, x);
    // (1 - p) x and p x by hand
    [0.8, 1.2, 3, 0, 2, 4.8, 6.3, 4].forEach((v, i) => close(arr(t.back)[i]!, v, 1e-6, "T_b"));
    [0.2, 0.8, 0, 4, 3, 1.2, 0.7, 4].forEach((v, i) => close(arr(t.fore)[i]!, v, 1e-6, "T_f"));
    // sum(p) = 3 of N = 8 voxels
    close(arr(t.wFore)[0]!, 3 / 8, 1e-7, "w_f");
    close(arr(t.wBack)[0]!, 5 / 8, 1e-7, "w_b");
    // R_b = 1, R_f = 2: mse_b = 57.61 / 8, mse_f = 20.01 / 8
    const rec = tf.concat([tf.onesLike(x), tf.mul(2, tf.onesLike(x))], 4) as tf.Tensor5D;
    const l = masslAttentionLoss(rec, p, x);
    close(arr(l.mseBack)[0]!, 57.61 / 8, 1e-5, "mse_b");
    close(arr(l.mseFore)[0]!, 20.01 / 8, 1e-5, "mse_f");
    close(arr(l.loss)[0]!, 0.625 * 57.61 / 8 + 0.375 * 20.01 / 8, 1e-5, "L_rec");
    close(arr(masslAttentionLoss(rec, p, x, false).loss)[0]!, (57.61 + 20.01) / 8, 1e-5, "unw");
  });
});

Deno.test("InstanceNorm: per sample, per channel over D,H,W, biased variance, eps 1e-5", async () => {
  await initBackend("cpu");
  tf.tidy(() => {
    // [N=2, D=2, H=1, W=1, C=2]; s0: c0 = [1, 3], c1 = [10, 10]; s1: c0 = [0, 4], c1 = [-1, 1]
    const x = tf.tensor5d([1, 10, 3, 10, 0, -1, 4, 1], [2, 2, 1, 1, 2]);
    const y = arr(instanceNorm(x));
    const a = 1 / Math.sqrt(1 + 1e-5), b = 2 / Math.sqrt(4 + 1e-5), c = 1 / Math.sqrt(1 + 1e-5);
    [-a, 0, a, 0, -b, -c, b, c].forEach((v, i) => close(y[i]!, v, 1e-5, `IN[${i}]`));
  });
});

Deno.test("strided conv uses PyTorch padding (one zero before); nearest upsampling", async () => {
  await initBackend("cpu");
  tf.tidy(() => {
    const x = tf.tensor5d([1, 2, 3, 4], [1, 4, 1, 1, 1]);
    const wv = new Float32Array(27);
    // w[kd, 1, 1] = 1, 10, 100
    wv[0 * 9 + 4] = 1;
    wv[1 * 9 + 4] = 10;
    wv[2 * 9 + 4] = 100;
    const w = tf.tensor(wv, [3, 3, 3, 1, 1]);
    // out[i] = x[2i-1] + 10 x[2i] + 100 x[2i+1] (+ bias 0.5)
    assert.deepEqual(arr(conv3dTorch(x, w, tf.scalar(0.5), 2)), [210.5, 432.5]);
    const u = upsampleNearest2x(tf.tensor5d([1, 2], [1, 1, 1, 1, 2]));
    assert.deepEqual(u.shape, [1, 2, 2, 2, 2]);
    assert.deepEqual(arr(u), [1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2]);
    // Backward = 2x2x2 sum pooling: input voxel (0, y, 0) collects the weights of its 8 children.
    const wts = tf.range(0, 16);
    const g = tf.grad((t: tf.Tensor) =>
      tf.sum(tf.mul(tf.reshape(upsampleNearest2x(t as tf.Tensor5D), [16]), wts))
    )(
      tf.zeros([1, 1, 2, 1, 1]),
    );
    // children of y=0: (z, y2 in {0,1}, x2) -> flat (z*4 + y2)*2 + x2
    const kids = (y: number) =>
      [0, 1].flatMap((z) =>
        [2 * y, 2 * y + 1].flatMap((y2) => [0, 1].map((x2) => (z * 4 + y2) * 2 + x2))
      );
    assert.deepEqual(arr(g), [0, 1].map((y) => kids(y).reduce((a, b) => a + b, 0)));
  });
});

Deno.test("PadV2 and LeakyRelu gradients registered by massl_net.ts", async () => {
  await initBackend("cpu");
  tf.tidy(() => {
    const x = tf.tensor1d([-2, -0.5, 0.5, 3]);
    const w = tf.tensor1d([1, 2, 3, 4]);
    const g = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(w, tf.leakyRelu(t, 0.01))))(x);
    assert.deepEqual(arr(g).map((v) => Math.round(v * 1e6) / 1e6), [0.01, 0.02, 3, 4]);
    const wp = tf.tensor1d([1, 2, 3, 4, 5, 6, 7]);
    const gp = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(wp, tf.pad(t, [[1, 2]]))))(x);
    assert.deepEqual(arr(gp), [2, 3, 4, 5]);
  });
});

Deno.test("network: shapes, groups, PyTorch names, parameter count", async () => {
  await initBackend("cpu");
  const net = new MasslNet({ inChannels: 1, nFilters: 16, recChannels: 2 }, new Rng(1));
  const groups: Record<ParamGroup, number> = { encoder: 0, segDecoder: 0, recDecoder: 0 };
  for (const [k, v] of net.params) groups[net.groupOf(k)] += v.size;
  // By hand from MASSL_norm (base 16), counting only modules used in forward:
  // encoder sum_l (27 ci co + co) over (1,16),(16,16),(16,32),(32,32),...,(128,256),(256,256)
  const conv = (k: number, ci: number, co: number) => k * k * k * ci * co + co;
  const enc = [[1, 16], [16, 16], [16, 32], [32, 32], [32, 64], [64, 64], [64, 128], [128, 128], [
    128,
    256,
  ], [256, 256]].reduce((s, [ci, co]) => s + conv(3, ci!, co!), 0);
  const seg = conv(3, 256, 128) + conv(1, 128, 128) + conv(3, 256, 256) + conv(1, 256, 128) +
    conv(3, 128, 64) + conv(3, 128, 128) + conv(1, 128, 64) + conv(3, 64, 32) +
    conv(3, 64, 64) + conv(1, 64, 32) + conv(3, 32, 16) + conv(3, 32, 32) + conv(1, 32, 1);
  const rec = conv(3, 256, 128) + conv(1, 128, 128) + conv(3, 128, 64) + conv(1, 64, 64) +
    conv(3, 64, 32) + conv(1, 32, 32) + conv(3, 32, 16) + conv(3, 16, 16) + conv(1, 16, 2);
  assert.deepEqual(groups, { encoder: enc, segDecoder: seg, recDecoder: rec });
  assert.ok(net.params.has("e_conv3d_l2_1.weight"));
  assert.ok(net.params.has("norm_lrelu_upscale_conv_norm_lrelu_l3_seg.3.bias"));
  assert.ok(net.params.has("conv3d_l4_ssl.weight"));
  net.dispose();
  const small = new MasslNet({ inChannels: 1, nFilters: 2, recChannels: 2 }, new Rng(1));
  tf.tidy(() => {
    const o = small.forward(tf.zeros([1, 16, 16, 32, 1]) as tf.Tensor5D);
    assert.deepEqual(o.seg!.shape, [1, 16, 16, 32, 1]);
    assert.deepEqual(o.rec!.shape, [1, 16, 16, 32, 2]);
  });
  small.dispose();
});

/** Max |grad| per group of the attention reconstruction loss. */
function recGradByGroup(net: MasslNet, x: tf.Tensor5D, mode: "stop" | "encoder") {
  const maxAbs: Record<ParamGroup, number> = { encoder: 0, segDecoder: 0, recDecoder: 0 };
  const present: Record<ParamGroup, number> = { encoder: 0, segDecoder: 0, recDecoder: 0 };
  const pDet = mode === "stop" ? tf.tidy(() => net.forward(x, { rec: false }).seg!) : null;
  const { value, grads } = lossAndGrads(() => {
    const o = mode === "stop"
      ? { rec: net.forward(x, { seg: false }).rec!, seg: pDet! }
      : net.forward(x, { freezeSegDecoder: true });
    return masslAttentionLoss(o.rec!, o.seg!, x).loss;
  }, net.params);
  const encGrads = new Map<string, Float32Array>();
  for (const [k, g] of grads) {
    const grp = net.groupOf(k);
    present[grp]++;
    const v = g.dataSync() as Float32Array;
    if (grp === "encoder") encGrads.set(k, Float32Array.from(v));
    for (const e of v) maxAbs[grp] = Math.max(maxAbs[grp], Math.abs(e));
    g.dispose();
  }
  value.dispose();
  pDet?.dispose();
  return { maxAbs, present, encGrads };
}

Deno.test("reconstruction gradient reaches the encoder, never the segmentation decoder", async () => {
  await initBackend("cpu");
  const net = new MasslNet({ inChannels: 1, nFilters: 2, recChannels: 2 }, new Rng(5));
  const x = tf.tensor5d(new Rng(8).fillNormal(new Float32Array(16 * 16 * 32)), [1, 16, 16, 32, 1]);
  const stopG = recGradByGroup(net, x, "stop");
  const encG = recGradByGroup(net, x, "encoder");
  for (const r of [stopG, encG]) {
    assert.equal(r.maxAbs.segDecoder, 0, "seg decoder gradient must be zero");
    assert.ok(r.maxAbs.encoder > 0, "encoder gradient");
    assert.ok(r.maxAbs.recDecoder > 0, "rec decoder gradient");
  }
  assert.equal(stopG.present.segDecoder, 0, "stop: the seg decoder is off the tape");
  // "encoder" mode also differentiates through P: its encoder gradient differs.
  let diff = 0;
  for (const [k, g] of stopG.encGrads) {
    const h = encG.encGrads.get(k)!;
    for (let i = 0; i < g.length; i++) diff = Math.max(diff, Math.abs(g[i]! - h[i]!));
  }
  assert.ok(diff > 1e-7, `encoder gradients through P (max diff ${diff})`);
  // stopGradient itself
  const v = tf.variable(tf.scalar(3));
  const { grads, value } = tf.variableGrads(
    () => tf.add(tf.mul(v, v), stopGradient(tf.mul(v, v))),
    [v],
  );
  close(arr(grads[v.name]!)[0]!, 6, 1e-6, "d/dv (v^2 + stop(v^2))");
  value.dispose();
  grads[v.name]!.dispose();
  v.dispose();
  net.dispose();
  x.dispose();
});

/** A [n, 16, 16, 32, 1] batch (bottleneck 1x1x2: instance norm is not degenerate there). */
function batch(labeled: number, unlabeled: number, seed = 4): TrainBatch {
  const rng = new Rng(seed);
  const vox = 16 * 16 * 32;
  const mk = (n: number) => rng.fillNormal(new Float32Array(n * vox), 0.5, 0.5);
  const li = mk(labeled);
  const lab = Int32Array.from(li, (v) => (v > 0.8 ? 1 : 0));
  return {
    labeledImages: tf.tensor5d(li, [labeled, 16, 16, 32, 1]),
    labels: tf.tensor4d(lab, [labeled, 16, 16, 32]),
    unlabeledImages: unlabeled > 0 ? tf.tensor5d(mk(unlabeled), [unlabeled, 16, 16, 32, 1]) : null,
  };
}

function disposeBatch(b: TrainBatch): void {
  b.labeledImages.dispose();
  b.labels.dispose();
  b.unlabeledImages?.dispose();
}

function info(iteration: number): StepInfo {
  return { iteration, totalIterations: 100, random: { noise: new Rng(1), dropout: new Rng(2) } };
}

/** Max |delta| per group after `f` (`net` is read before and after). */
async function deltas(
  net: () => MasslNet,
  f: () => unknown,
): Promise<Record<ParamGroup, number>> {
  const before = new Map<string, Float32Array>();
  for (const [k, v] of net().params) before.set(k, Float32Array.from(v.dataSync()));
  await f();
  const after = net();
  const out: Record<ParamGroup, number> = { encoder: 0, segDecoder: 0, recDecoder: 0 };
  for (const [k, v] of after.params) {
    const a = before.get(k)!, b = v.dataSync();
    const g = after.groupOf(k);
    for (let i = 0; i < a.length; i++) out[g] = Math.max(out[g], Math.abs(a[i]! - b[i]!));
  }
  return out;
}

function build(def: typeof massl, over: Record<string, HyperValue>): MasslMethod {
  const hp = resolveHyperParams(def, { nFilters: 2, ...over });
  return def.create(hp, { initSeed: 3, inChannels: 1, nClasses: 2 }) as MasslMethod;
}

Deno.test("alternating: seg Adam (1e-2) moves encoder+seg, rec Adam (1e-3) encoder+rec", async () => {
  await initBackend("cpu");
  const b = batch(1, 1);
  const cases = [[massl, "stop"], [massl, "encoder"], [mssl, "stop"]] as const;
  for (const [def, attentionGrad] of cases) {
    const m = build(def, { strategy: "alternating", attentionGrad });
    let losses: Record<string, number> = {};
    // Adam's first step moves each parameter with a non-zero gradient by exactly lr.
    const d = await deltas(() => m.net, async () => (losses = await m.trainStep(b, info(0))));
    const what = `${def.id}/${attentionGrad}`;
    close(d.segDecoder, 1e-2, 1e-6, `${what} seg decoder`);
    close(d.recDecoder, 1e-3, 1e-6, `${what} rec decoder`);
    assert.ok(d.encoder > 1e-2 && d.encoder <= 1.1e-2 + 1e-6, `${what} encoder ${d.encoder}`);
    close(losses.loss!, losses.seg! + losses.rec!, 1e-6, "loss");
    const st = m.state();
    const keys = Object.keys(st.tensors);
    const optKeys = (p: string) =>
      keys.filter((k) => k.startsWith(p) && k.endsWith(".exp_avg")).map((k) =>
        m.net.groupOf(k.slice(p.length, -".exp_avg".length))
      );
    assert.deepEqual(new Set(optKeys("optim_seg.")), new Set(["encoder", "segDecoder"]));
    assert.deepEqual(new Set(optKeys("optim_rec.")), new Set(["encoder", "recDecoder"]));
    m.dispose();
  }
  disposeBatch(b);
});

Deno.test("joint: one Adam (lrJoint) on alpha*L_seg + (1-alpha)*L_rec moves everything", async () => {
  await initBackend("cpu");
  const b = batch(1, 1);
  for (const [def, alpha] of [[massl, 0.7], [mssl, 0.9]] as const) {
    const m = build(def, { strategy: "joint", alpha, lrJoint: 2e-3 });
    assert.equal(m.optRec, null);
    let l: Record<string, number> = {};
    const d = await deltas(() => m.net, async () => (l = await m.trainStep(b, info(0))));
    for (const g of ["encoder", "segDecoder", "recDecoder"] as const) {
      close(d[g], 2e-3, 1e-6, `${def.id} alpha ${alpha} ${g}`);
    }
    close(l.loss!, alpha * l.seg! + (1 - alpha) * l.rec!, 1e-6, "joint loss");
    assert.ok(!Object.keys(m.state().tensors).some((k) => k.startsWith("optim_rec.")));
    m.dispose();
  }
  disposeBatch(b);
});

Deno.test("StepLR(500, 0.5) stepped before the update; no unlabeled images = labeled reused", async () => {
  assert.equal(masslLr(1e-2, 0), 1e-2);
  assert.equal(masslLr(1e-2, 498), 1e-2);
  assert.equal(masslLr(1e-2, 499), 5e-3);
  assert.equal(masslLr(1e-3, 999), 2.5e-4);
  await initBackend("cpu");
  const b = batch(1, 0);
  const m = build(massl, {});
  const l = await m.trainStep(b, info(499));
  close(l.lrSeg!, 5e-3, 1e-12, "lrSeg");
  close(l.lrRec!, 5e-4, 1e-12, "lrRec");
  assert.ok(Number.isFinite(l.rec!) && l.rec! > 0);
  m.dispose();
  disposeBatch(b);
});

function groupDeltas(m: Method, net: () => MasslNet, it: number, b: TrainBatch) {
  return deltas(net, () => m.trainStep(b, info(it)));
}

Deno.test("pretrain: autoencoder phase, then Dec (encoder fixed) or CNN fine-tuning", async () => {
  await initBackend("cpu");
  const b = batch(1, 1);
  for (const finetune of ["dec", "cnn"]) {
    const hp = resolveHyperParams(masslPretrain, { nFilters: 2, finetune, pretrainIterations: 1 });
    const m = masslPretrain.create(hp, { initSeed: 3, inChannels: 1, nClasses: 2 });
    // The net is private: reach it through a state round trip into a probe network.
    const probe = new MasslNet({ inChannels: 1, nFilters: 2, recChannels: 1 }, new Rng(0));
    const sync = () => {
      probe.restore(m.state().tensors, "net.");
      return probe;
    };
    sync();
    const d0 = await groupDeltas(m, sync, 0, b);
    assert.equal(d0.segDecoder, 0, "phase 0 leaves the seg decoder");
    close(d0.recDecoder, 1e-3, 1e-6, "phase 0 rec");
    close(d0.encoder, 1e-3, 1e-6, "phase 0 encoder");
    const n0 = tf.memory().numTensors;
    const d1 = await groupDeltas(m, sync, 1, b);
    const n1 = tf.memory().numTensors;
    assert.equal(d1.recDecoder, 0, "phase 1 leaves the rec decoder");
    close(d1.segDecoder, 1e-2, 1e-6, "phase 1 seg");
    if (finetune === "dec") assert.equal(d1.encoder, 0, "Pretrain(Dec) keeps the encoder");
    else close(d1.encoder, 1e-2, 1e-6, "Pretrain(CNN) fine-tunes the encoder");
    await groupDeltas(m, sync, 2, b);
    assert.equal(tf.memory().numTensors, n1, "flat after the phase switch");
    assert.ok(n1 >= n0);
    probe.dispose();
    m.dispose();
  }
  disposeBatch(b);
});

Deno.test("cnn baseline: seg path only, no reconstruction parameters", async () => {
  await initBackend("cpu");
  const hp = resolveHyperParams(masslCnn, { nFilters: 2 });
  const m = masslCnn.create(hp, { initSeed: 3, inChannels: 1, nClasses: 2 });
  const keys = Object.keys(m.state().tensors);
  assert.ok(!keys.some((k) => k.includes("_rec") || k.includes("_ssl")));
  m.dispose();
});

for (
  const [def, over] of [
    [massl, { strategy: "joint", attentionGrad: "encoder" }],
  ] as const
) {
  // The defaults of every registered id are checked by tests/conformance_test.ts.
  Deno.test(`conformance variant: ${def.id} ${JSON.stringify(over)}`, async () => {
    // deno-lint-ignore no-explicit-any
    await checkMethodConformance(def as any, { overrides: over, startIteration: 1 });
  });
}

Deno.test("benchmark plans: 9 rows x 3 settings x 5 folds per table, cells over folds", () => {
  for (const spec of [masslTable1Brats18, masslTable2Wmh17]) {
    assert.deepEqual(spec.dataset.folds, ["fold1", "fold2", "fold3", "fold4", "fold5"]);
    assert.ok(BENCHMARKS.includes(spec), `${spec.id} registered`);
    const runs = expandGrid(spec);
    assert.equal(runs.length, 135, spec.id);
    assert.equal(new Set(runs.map((r) => r.runId)).size, 135);
    assert.deepEqual([...new Set(runs.map((r) => r.split))].sort(), spec.dataset.folds);
    assert.equal(spec.table.reported.length, 27);
    for (const r of spec.table.reported) {
      assert.ok(spec.methods.some((m) => m.key === r.key), r.key);
      assert.ok(spec.labeled.includes(r.labeled));
    }
  }
  const t1 = masslTable1Brats18.table.reported;
  assert.deepEqual(t1.find((r) => r.key === "massl-alter" && r.labeled === 20), {
    key: "massl-alter",
    labeled: 20,
    unlabeled: 100,
    values: { dice: 0.7553 },
    marks: { dice: "*" },
  });
  const t2 = masslTable2Wmh17.table.reported;
  assert.equal(t2.find((r) => r.key === "pretrain-dec" && r.labeled === 30)!.values.dice, 0.6439);
});
