/**
 * UG-MCL (methods/ug_mcl.ts): the intra-task term (Eq. 4 and the released code's seg-only
 * form) against a hand-computed masked mean, the cross-task term (Eq. 6) at agreement, the
 * Table 1 loss switches removing exactly their terms, and the plan sizes of the UG-MCL
 * benchmarks.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { initBackend } from "../methods/nn/backend.ts";
import { Rng } from "../methods/nn/rng.ts";
import { sgdLr } from "../methods/nn/training.ts";
import { resolveHyperParams, type StepLosses } from "../methods/types.ts";
import {
  crossTaskConsistency,
  type DualOutputs,
  intraTaskConsistency,
  supervisedLoss,
  ugMcl,
  ugMclRampup,
} from "../methods/ug_mcl.ts";
import { expandGrid } from "../benchmarks/harness/plan.ts";
import { ugMclTable3La } from "../benchmarks/ug_mcl_table3_la.ts";
import { ugMclTable4Brats19 } from "../benchmarks/ug_mcl_table4_brats19.ts";
import { ugMclTable1AblationLa } from "../benchmarks/ug_mcl_table1_ablation_la.ts";
import { ugMclTable2BetaLa } from "../benchmarks/ug_mcl_table2_beta_la.ts";
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

function softmax2(a: number, b: number): [number, number] {
  const m = Math.max(a, b);
  const ea = Math.exp(a - m), eb = Math.exp(b - m);
  return [ea / (ea + eb), eb / (ea + eb)];
}

// 4 voxels (shape [1, 2, 2, 1]); student/teacher logits, SDFs and a certainty mask.
const S_LOGITS = [[0.2, 1.0], [-1.0, 0.5], [2.0, -0.3], [0.0, 0.0]];
const T_LOGITS = [[0.0, 0.4], [0.3, 0.3], [1.0, 1.5], [-2.0, 1.0]];
const S_SDF = [0.3, -0.2, 0.7, -0.9];
const T_SDF = [0.1, -0.6, 0.2, -0.4];
const MASK = [1, 0, 1, 1];

function outputs(logits: number[][], sdf: number[], refCode: boolean): DualOutputs {
  const seg = tf.tensor5d(logits.flat(), [1, 2, 2, 1, 2]);
  return {
    seg,
    sdf: refCode ? tf.tanh(seg) as tf.Tensor5D : tf.tensor5d(sdf, [1, 2, 2, 1, 1]),
  };
}

function hand(beta: number, refCode: boolean): number {
  let segSum = 0, sdfSum = 0, m = 0;
  for (let i = 0; i < 4; i++) {
    const ps = softmax2(S_LOGITS[i]![0]!, S_LOGITS[i]![1]!);
    const pt = softmax2(T_LOGITS[i]![0]!, T_LOGITS[i]![1]!);
    const dSeg = (ps[0] - pt[0]) ** 2 + (ps[1] - pt[1]) ** 2;
    segSum += MASK[i]! * dSeg;
    sdfSum += MASK[i]! * (S_SDF[i]! - T_SDF[i]!) ** 2;
    m += MASK[i]!;
  }
  // Masked mean over certain voxels and channels (2 seg channels, 1 SDF channel).
  if (refCode) return 0.5 * segSum / (2 * m + 1e-16);
  return beta * segSum / (2 * m) + (1 - beta) * sdfSum / m;
}

Deno.test("ug-mcl: intra-task term (Eq. 4, beta) equals the hand-computed masked mean", async () => {
  await initBackend("cpu");
  const start = tf.memory().numTensors;
  const s = outputs(S_LOGITS, S_SDF, false), t = outputs(T_LOGITS, T_SDF, false);
  const mask = tf.tensor4d(MASK, [1, 2, 2, 1]);
  for (const beta of [0, 0.25, 0.75, 1]) {
    const v = num(intraTaskConsistency(s, t, mask, { referenceCode: false, beta }));
    close(v, hand(beta, false), 1e-6, `beta ${beta}`);
  }
  // An all-zero mask gives 0 (the 1e-16 guard), not NaN.
  const zero = tf.zeros([1, 2, 2, 1]);
  assert.equal(num(intraTaskConsistency(s, t, zero, { referenceCode: false, beta: 0.75 })), 0);
  for (const x of [s.seg, s.sdf, t.seg, t.sdf, mask, zero]) x.dispose();
  assert.equal(tf.memory().numTensors, start);
});

Deno.test("ug-mcl: referenceCode intra-task term is 0.5 x the seg-only masked mean (beta ignored)", async () => {
  await initBackend("cpu");
  const s = outputs(S_LOGITS, S_SDF, true), t = outputs(T_LOGITS, T_SDF, true);
  const mask = tf.tensor4d(MASK, [1, 2, 2, 1]);
  for (const beta of [0.75, 0]) {
    const v = num(intraTaskConsistency(s, t, mask, { referenceCode: true, beta }));
    close(v, hand(beta, true), 1e-6, `referenceCode beta ${beta}`);
  }
  for (const x of [s.seg, s.sdf, t.seg, t.sdf, mask]) x.dispose();
});

Deno.test("ug-mcl: cross-task term (Eq. 6) is zero when seg and SDF agree", async () => {
  await initBackend("cpu");
  // Paper mode: inside (sdf < 0) <-> foreground logits; |k sdf| = 750 saturates the sigmoid.
  const inside = [1, 0, 0, 1, 1, 0, 1, 0];
  const sdf = tf.tensor5d(inside.map((f) => (f ? -0.5 : 0.5)), [1, 2, 2, 2, 1]);
  const seg = tf.tensor5d(inside.flatMap((f) => (f ? [-50, 50] : [50, -50])), [1, 2, 2, 2, 2]);
  const agree = num(crossTaskConsistency({ seg, sdf }, { referenceCode: false, k: 1500 }));
  assert.ok(agree < 1e-12, `agreeing paper-mode outputs give ${agree}`);
  // Flip the SDF of one voxel: one of 8 voxels disagrees completely -> mean 1/8.
  const sdf2 = tf.tensor5d(inside.map((f, i) => ((f ? -0.5 : 0.5) * (i === 0 ? -1 : 1))), [
    1,
    2,
    2,
    2,
    1,
  ]);
  close(
    num(crossTaskConsistency({ seg, sdf: sdf2 }, { referenceCode: false, k: 1500 })),
    1 / 8,
    1e-6,
    "one disagreeing voxel",
  );
  // referenceCode: SDF = tanh(logits), both channels compared; zero logits agree (0.5 = 0.5) ...
  const z = tf.zeros([1, 2, 2, 2, 2]) as tf.Tensor5D;
  const zt = tf.tanh(z) as tf.Tensor5D;
  assert.equal(num(crossTaskConsistency({ seg: z, sdf: zt }, { referenceCode: true, k: 1500 })), 0);
  // ... while confident logits cannot satisfy both channels (documented deviation): here every
  // voxel has one channel at sigmoid(+1500) = 1 vs softmax 0 and the other at 0 vs 1.
  const st = tf.tanh(seg) as tf.Tensor5D;
  close(
    num(crossTaskConsistency({ seg, sdf: st }, { referenceCode: true, k: 1500 })),
    1,
    1e-6,
    "referenceCode confident logits",
  );
  for (const x of [sdf, seg, sdf2, z, zt, st]) x.dispose();
});

Deno.test("ug-mcl: supervised loss: Eq. 2 (paper) and 0.5 (CE + Dice + Dice(sigmoid(-k tanh))) (code)", async () => {
  await initBackend("cpu");
  const labels = tf.tensor4d([1, 0, 0, 1], [1, 2, 2, 1], "int32");
  const s = outputs(S_LOGITS, S_SDF, false);
  const gt = tf.tensor5d([-0.5, 0.5, 0.5, -0.5], [1, 2, 2, 1, 1]);
  const opts = { referenceCode: false, useLdis: true, k: 1500, disWeight: 1, supervisedScale: 1 };
  const on = supervisedLoss(s, labels, gt, opts);
  const off = supervisedLoss(s, labels, gt, { ...opts, useLdis: false });
  let mseHand = 0;
  for (let i = 0; i < 4; i++) mseHand += (S_SDF[i]! - [-0.5, 0.5, 0.5, -0.5][i]!) ** 2 / 4;
  const [ce, dice, dis, loss] = [on.ce, on.dice, on.dis, on.loss].map(num);
  close(dis!, mseHand, 1e-6, "L_dis = MSE to the SDF target");
  close(loss!, ce! + dice! + dis!, 1e-6, "Eq. 2 unweighted");
  assert.equal(num(off.dis), 0);
  close(num(off.loss), ce! + dice!, 1e-6, "useLdis off removes exactly L_dis");
  off.ce.dispose();
  off.dice.dispose();
  const r = outputs(S_LOGITS, S_SDF, true);
  const ref = supervisedLoss(r, labels, null, { ...opts, referenceCode: true });
  // Hand: Dice of sigmoid(-1500 tanh(l1)) against y: l1 = [1, .5, -.3, 0] -> [0, 0, 1, .5].
  const q = [0, 0, 1, 0.5], y = [1, 0, 0, 1];
  let inter = 0, qq = 0, yy = 0;
  for (let i = 0; i < 4; i++) {
    inter += q[i]! * y[i]!;
    qq += q[i]! ** 2;
    yy += y[i]!;
  }
  const disDice = 1 - (2 * inter + 1e-5) / (qq + yy + 1e-5);
  const [rce, rdice, rdis, rloss] = [ref.ce, ref.dice, ref.dis, ref.loss].map(num);
  close(rdis!, disDice, 1e-5, "referenceCode L_dis = Dice of the inverse transform");
  close(rloss!, 0.5 * (rce! + rdice! + rdis!), 1e-6, "referenceCode 0.5 factor");
  for (const x of [labels, s.seg, s.sdf, gt, r.seg, r.sdf]) x.dispose();
});

/** One step of a tiny UG-MCL (dropout 0 so the student forward does not depend on RNG draws). */
async function oneStep(over: Record<string, boolean | number | string>): Promise<StepLosses> {
  await initBackend("cpu");
  const hp = resolveHyperParams(ugMcl, {
    nFilters: 2,
    dropout: 0,
    mcPasses: 2,
    consistencyRampup: 0,
    ...over,
  });
  const m = ugMcl.create(hp, { initSeed: 7, inChannels: 1, nClasses: 2 });
  const batch = syntheticBatch(16, 1, 1);
  const l = await m.trainStep(batch, {
    iteration: 6000,
    totalIterations: 6000,
    random: { noise: new Rng(1), dropout: new Rng(2) },
  });
  m.dispose();
  disposeBatch(batch);
  return l;
}

/** A named scalar of a step's losses (must be present). */
function g(l: StepLosses, k: string): number {
  const v = l[k];
  assert.ok(v !== undefined, `loss '${k}' missing`);
  return v;
}

for (const referenceCode of [false, true]) {
  Deno.test(`ug-mcl: loss switches remove exactly their terms (referenceCode ${referenceCode})`, async () => {
    const full = await oneStep({ referenceCode });
    const w = g(full, "consistencyWeight");
    close(w, 0.1, 1e-12, "ramped-up weight");
    const [sup, itc, ctc, dis] = ["supervised", "itc", "ctc", "dis"].map((k) => g(full, k));
    close(full.loss, sup! + w * itc! + w * ctc!, 1e-5, "Eq. 7");
    const noItc = await oneStep({ referenceCode, useLitc: false });
    assert.equal(noItc.itc, undefined);
    close(g(noItc, "supervised"), sup!, 1e-6, "L_sup unchanged without L_itc");
    close(g(noItc, "ctc"), ctc!, 1e-6, "L_ctc unchanged without L_itc");
    close(noItc.loss, full.loss - w * itc!, 1e-5, "no L_itc");
    const noCtc = await oneStep({ referenceCode, useLctc: false });
    assert.equal(noCtc.ctc, undefined);
    close(g(noCtc, "itc"), itc!, 1e-6, "L_itc unchanged without L_ctc");
    close(noCtc.loss, full.loss - w * ctc!, 1e-5, "no L_ctc");
    const noDis = await oneStep({ referenceCode, useLdis: false });
    assert.equal(noDis.dis, 0);
    const scale = referenceCode ? 0.5 : 1;
    close(g(noDis, "supervised"), sup! - scale * dis!, 1e-5, "no L_dis");
    close(g(noDis, "itc"), itc!, 1e-6, "L_itc unchanged without L_dis");
    close(g(noDis, "ctc"), ctc!, 1e-6, "L_ctc unchanged without L_dis");
    const row1 = await oneStep({ referenceCode, useLdis: false, useLitc: false, useLctc: false });
    close(row1.loss, scale * (g(full, "ce") + g(full, "dice")), 1e-5, "row (1): L_seg only");
  });
}

Deno.test("ug-mcl: ramp-up default and LR policies", () => {
  assert.equal(ugMclRampup({ consistencyRampup: -1, referenceCode: false }), 40);
  assert.equal(ugMclRampup({ consistencyRampup: -1, referenceCode: true }), 200);
  assert.equal(ugMclRampup({ consistencyRampup: 7, referenceCode: true }), 7);
  const hp = resolveHyperParams(ugMcl, {});
  close(sgdLr(hp, 2500, 6000), 0.001, 1e-12, "step decay");
  const poly = { ...hp, lrPolicy: "poly" as const };
  close(sgdLr(poly, 0, 30000), 0.01, 1e-12, "poly at 0");
  close(sgdLr(poly, 15000, 30000), 0.01 * 0.5 ** 0.9, 1e-12, "poly halfway");
  // Declared choices are checked once, when the hyper-parameters are resolved.
  assert.throws(
    () => resolveHyperParams(ugMcl, { lrPolicy: "cosine" }),
    /^Error: method ug-mcl: lrPolicy must be one of "step", "poly", got "cosine"$/,
  );
  assert.throws(
    () => resolveHyperParams(ugMcl, { itcScope: "labeled" }),
    /itcScope must be one of/,
  );
  assert.throws(() => resolveHyperParams(ugMcl, { beta: 1.5 }), /ug-mcl: beta 1.5 not in \[0, 1\]/);
});

Deno.test("ug-mcl benchmarks: registered; plans have the expected number of runs", () => {
  for (const b of [ugMclTable3La, ugMclTable4Brats19, ugMclTable1AblationLa, ugMclTable2BetaLa]) {
    assert.ok(BENCHMARKS.includes(b), `${b.id} registered`);
  }
  // Table 3: 4 SSL rows + supervised at 16, supervised upper bound at 80; 3 seeds.
  assert.equal(expandGrid(ugMclTable3La).length, 7 * 3);
  // Table 4: 7 rows x {25, 50} x 3 seeds.
  assert.equal(expandGrid(ugMclTable4Brats19).length, 7 * 2 * 3);
  assert.equal(expandGrid(ugMclTable1AblationLa).length, 6 * 3);
  assert.equal(expandGrid(ugMclTable2BetaLa).length, 5 * 3);
  // Table 2 rows differ only by beta; Table 1 rows (1)-(2) are labeled-only.
  assert.deepEqual(
    expandGrid(ugMclTable2BetaLa, { seeds: [1337] }).map((r) => r.hyperParams.beta),
    [0, 0.25, 0.5, 0.75, 1],
  );
  const t1 = expandGrid(ugMclTable1AblationLa, { seeds: [1337] });
  assert.deepEqual(t1.map((r) => r.labeledOnly), [true, true, false, false, false, false]);
  assert.deepEqual(
    t1.map((r) => [r.hyperParams.useLdis, r.hyperParams.useLitc, r.hyperParams.useLctc]),
    [
      [false, false, false],
      [true, false, false],
      [false, true, false],
      [true, true, false],
      [true, false, true],
      [true, true, true],
    ],
  );
  // BraTS: the SSL4MIS 3D schedule reaches UG-MCL's hyper-parameters.
  const b = expandGrid(ugMclTable4Brats19, { methods: ["ug-mcl"], seeds: [1337], labeled: [25] });
  assert.equal(b[0]!.hyperParams.lrPolicy, "poly");
  assert.equal(b[0]!.hyperParams.consistencyRampup, 200);
  // Every reported row is on a labeled setting the benchmark runs.
  for (const s of [ugMclTable3La, ugMclTable4Brats19, ugMclTable1AblationLa, ugMclTable2BetaLa]) {
    for (const r of s.table.reported) assert.ok(s.labeled.includes(r.labeled), `${s.id} ${r.key}`);
  }
});
