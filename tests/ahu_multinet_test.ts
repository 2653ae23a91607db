/**
 * AHU-MultiNet (methods/ahu_multinet.ts, reconstructed): the homoscedastic weighting at
 * s_i = 0 (plain sum for "simplified"/"none", Kendall's 1/2 on the regression term), gradients
 * reaching the log-variances (analytically and through a train step), the contour target and
 * the soft boundary equal to `innerBoundary` on a cube, and the AHU benchmark plan sizes.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { initBackend } from "../methods/nn/backend.ts";
import { Rng } from "../methods/nn/rng.ts";
import { innerBoundary } from "../methods/nn/sdf.ts";
import { resolveHyperParams, type StepLosses } from "../methods/types.ts";
import {
  ahuMultiNet,
  contourTargets,
  homoscedasticLoss,
  softBoundary,
  type WeightedTask,
  type Weighting,
} from "../methods/ahu_multinet.ts";
import { expandGrid } from "../benchmarks/harness/plan.ts";
import { ahuMultiNetLa } from "../benchmarks/ahu_multinet_la.ts";
import { ahuMultiNetLits } from "../benchmarks/ahu_multinet_lits.ts";
import { BENCHMARKS } from "../benchmarks/mod.ts";
import { disposeBatch, syntheticBatch } from "./conformance.ts";

function close(a: number, b: number, tol: number, msg: string): void {
  assert.ok(Math.abs(a - b) <= tol, `${msg}: expected ${b}, got ${a}`);
}

function num(t: tf.Tensor): number {
  const v = (t.dataSync() as Float32Array)[0]!;
  t.dispose();
  return v;
}

function g(l: StepLosses, k: string): number {
  const v = l[k];
  assert.ok(v !== undefined, `loss '${k}' missing`);
  return v;
}

const L = { seg: 0.7, sdf: 0.2, contour: 1.3 };

function tasks(s: tf.Variable[]): WeightedTask[] {
  return [
    { loss: tf.scalar(L.seg), logVar: s[0]!, kind: "classification" },
    { loss: tf.scalar(L.sdf), logVar: s[1]!, kind: "regression" },
    { loss: tf.scalar(L.contour), logVar: s[2]!, kind: "classification" },
  ];
}

Deno.test("ahu-multinet: with s_i = 0 the weighted loss is the plain sum (Kendall: 1/2 on regression)", async () => {
  await initBackend("cpu");
  const start = tf.memory().numTensors;
  const s = [0, 1, 2].map((i) =>
    tf.tidy(() => tf.variable(tf.scalar(0), true, `ahu_test_s0_${i}`))
  );
  const plain = L.seg + L.sdf + L.contour;
  const ts = tasks(s);
  close(num(homoscedasticLoss(ts, "simplified")), plain, 1e-6, "simplified at s = 0");
  close(num(homoscedasticLoss(ts, "none")), plain, 1e-6, "none");
  close(num(homoscedasticLoss(ts, "kendall")), L.seg + 0.5 * L.sdf + L.contour, 1e-6, "kendall");
  // Non-zero s: closed forms.
  tf.tidy(() => {
    s[0]!.assign(tf.scalar(0.5));
    s[1]!.assign(tf.scalar(-0.3));
    s[2]!.assign(tf.scalar(1.1));
  });
  const simp = Math.exp(-0.5) * L.seg + 0.5 + Math.exp(0.3) * L.sdf - 0.3 +
    Math.exp(-1.1) * L.contour + 1.1;
  const kend = Math.exp(-0.5) * L.seg + 0.25 + 0.5 * Math.exp(0.3) * L.sdf - 0.15 +
    Math.exp(-1.1) * L.contour + 0.55;
  close(num(homoscedasticLoss(ts, "simplified")), simp, 1e-5, "simplified closed form");
  close(num(homoscedasticLoss(ts, "kendall")), kend, 1e-5, "kendall closed form");
  // An undeclared value never reaches the loss: resolveHyperParams refuses it (one line).
  assert.throws(() => homoscedasticLoss(ts, "gradnorm" as Weighting), /unknown weighting/);
  assert.throws(
    () => resolveHyperParams(ahuMultiNet, { weighting: "gradnorm" }),
    /^Error: method ahu-multinet: weighting must be one of "kendall", "simplified", "none", got "gradnorm"$/,
  );
  assert.throws(
    () => resolveHyperParams(ahuMultiNet, { contourConnectivity: 4 }),
    /contourConnectivity must be one of 1, 2, 3, got 4/,
  );
  for (const t of ts) t.loss.dispose();
  for (const v of s) v.dispose();
  assert.equal(tf.memory().numTensors, start);
});

Deno.test("ahu-multinet: gradients reach s_i (d/ds at s = 0)", async () => {
  await initBackend("cpu");
  const s = [0, 1, 2].map((i) =>
    tf.tidy(() => tf.variable(tf.scalar(0), true, `ahu_test_s1_${i}`))
  );
  const ts = tasks(s);
  const expect: Record<string, number[]> = {
    // d/ds [exp(-s) L + s] = 1 - L
    simplified: [1 - L.seg, 1 - L.sdf, 1 - L.contour],
    // regression d/ds [0.5 exp(-s) L + 0.5 s] = 0.5 - 0.5 L; classification 0.5 - L
    kendall: [0.5 - L.seg, 0.5 - 0.5 * L.sdf, 0.5 - L.contour],
  };
  for (const [mode, want] of Object.entries(expect)) {
    const { value, grads } = tf.variableGrads(() => homoscedasticLoss(ts, mode as Weighting), s);
    value.dispose();
    s.forEach((v, i) => close(num(grads[v.name]!), want[i]!, 1e-6, `${mode} d/ds_${i}`));
  }
  for (const t of ts) t.loss.dispose();
  for (const v of s) v.dispose();
});

async function oneStep(over: Record<string, string | number | boolean>): Promise<StepLosses> {
  await initBackend("cpu");
  const hp = resolveHyperParams(ahuMultiNet, { nFilters: 2, ...over });
  const m = ahuMultiNet.create(hp, { initSeed: 5, inChannels: 1, nClasses: 2 });
  const batch = syntheticBatch(16, 1, 1);
  const l = await m.trainStep(batch, {
    iteration: 0,
    totalIterations: 6000,
    random: { noise: new Rng(1), dropout: new Rng(2) },
  });
  m.dispose();
  disposeBatch(batch);
  return l;
}

Deno.test("ahu-multinet: a train step: plain sum at s = 0, s_i updated by SGD", async () => {
  const simp = await oneStep({ weighting: "simplified" });
  const plain = g(simp, "seg") + g(simp, "sdf") + g(simp, "contour");
  close(g(simp, "supervised"), plain, 1e-5, "supervised = plain sum at s = 0");
  // SGD first step (momentum buffer = grad): s = -lr (1 - L_i).
  for (const t of ["seg", "sdf", "contour"]) {
    close(g(simp, `log_var.${t}`), -0.01 * (1 - g(simp, t)), 1e-6, `s_${t} after one step`);
  }
  const kend = await oneStep({ weighting: "kendall" });
  close(
    g(kend, "supervised"),
    g(kend, "seg") + 0.5 * g(kend, "sdf") + g(kend, "contour"),
    1e-5,
    "kendall at s = 0",
  );
  close(g(kend, "log_var.sdf"), -0.01 * (0.5 - 0.5 * g(kend, "sdf")), 1e-6, "kendall s_sdf");
  const none = await oneStep({ weighting: "none" });
  assert.equal(g(none, "log_var.seg"), 0);
  // Consistency terms on the ramp: loss = supervised + w (L_sdf-cons + L_cnt-cons).
  const w = g(simp, "consistencyWeight");
  close(
    simp.loss,
    g(simp, "supervised") + w * (g(simp, "sdfConsistency") + g(simp, "contourConsistency")),
    1e-5,
    "total",
  );
});

Deno.test("ahu-multinet: contour target = innerBoundary of the label; soft boundary agrees on binary masks", async () => {
  await initBackend("cpu");
  const n = 8;
  const lab = new Int32Array(2 * n * n * n);
  // Sample 0: cube [2, 6)^3; sample 1: cube touching the volume edge [0, 3) x [2, 6) x [2, 6).
  for (let b = 0; b < 2; b++) {
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        for (let k = 0; k < n; k++) {
          const inX = b === 0 ? i >= 2 && i < 6 : i < 3;
          lab[((b * n + i) * n + j) * n + k] = inX && j >= 2 && j < 6 && k >= 2 && k < 6 ? 1 : 0;
        }
      }
    }
  }
  const labels = tf.tensor4d(lab, [2, n, n, n], "int32");
  for (const conn of [1, 3]) {
    const c = contourTargets(labels, conn);
    const cv = c.dataSync();
    const per = n * n * n;
    for (let b = 0; b < 2; b++) {
      const want = innerBoundary(lab.subarray(b * per, (b + 1) * per), [n, n, n], conn);
      assert.deepEqual(Array.from(cv.subarray(b * per, (b + 1) * per)), Array.from(want));
    }
    // Cube [2,6)^3: 4^3 - 2^3 = 56 boundary voxels (either connectivity).
    let s0 = 0;
    for (let i = 0; i < per; i++) s0 += cv[i]!;
    assert.equal(s0, 56, `conn ${conn}: cube boundary`);
    // The soft boundary of the binary mask is exactly the contour target.
    const p = tf.tidy(() => tf.expandDims(tf.cast(labels, "float32"), -1) as tf.Tensor5D);
    const sb = softBoundary(p, conn);
    assert.deepEqual(Array.from(sb.dataSync()), Array.from(cv), `conn ${conn}: softBoundary`);
    p.dispose();
    sb.dispose();
    c.dispose();
  }
  labels.dispose();
});

Deno.test("ahu-multinet: the soft boundary is differentiable", async () => {
  await initBackend("cpu");
  const x = tf.variable(tf.randomUniform([1, 4, 4, 4, 1], 0, 1, "float32", 3), true, "ahu_sb_x");
  const { value, grads } = tf.variableGrads(() => tf.sum(softBoundary(x as tf.Tensor5D, 1)), [x]);
  value.dispose();
  const gv = grads[x.name]!;
  assert.ok(Array.from(gv.dataSync()).every(Number.isFinite));
  assert.ok(Array.from(gv.dataSync()).some((v) => v !== 0));
  gv.dispose();
  x.dispose();
});

Deno.test("ahu-multinet benchmarks: registered; plans have the expected number of runs", () => {
  for (const b of [ahuMultiNetLa, ahuMultiNetLits]) {
    assert.ok(BENCHMARKS.includes(b), `${b.id} registered`);
    // 6 rows x 2 labeled settings x 3 seeds; no paper numbers.
    assert.equal(expandGrid(b).length, 6 * 2 * 3);
    assert.equal(b.table.reported.length, 0);
  }
  const runs = expandGrid(ahuMultiNetLa, { seeds: [1337], labeled: [8] });
  assert.deepEqual(
    runs.filter((r) => r.method === "ahu-multinet").map((r) => r.hyperParams.weighting),
    ["kendall", "simplified", "none"],
  );
  assert.equal(ahuMultiNetLits.dataset.id, "lits");
});
