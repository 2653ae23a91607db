import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { initBackend } from "../methods/nn/backend.ts";
import { deriveSeed, Rng } from "../methods/nn/rng.ts";
import { segHeads, VNet } from "../methods/nn/vnet.ts";
import { ceDiceLoss } from "../methods/nn/losses.ts";
import { resolveHyperParams } from "../methods/types.ts";
import {
  coTrainingLoss,
  normalisedUncertainty,
  pseudoLabels,
  pseudoWeights,
  supervisedWeights,
  uaCotraining,
  weightedSupervisedLoss,
} from "../methods/ua_cotraining.ts";
import { expandGrid } from "../benchmarks/harness/plan.ts";
import { getBenchmark } from "../benchmarks/mod.ts";
import { uaCotrainingLa } from "../benchmarks/ua_cotraining_la.ts";
import { disposeBatch, syntheticBatch } from "./conformance.ts";

const LN2 = Math.log(2);
// Pure-JS cpu kernels: these tests pin semantics, and at these tiny shapes the oneDNN kernels
// of the `cpu` backend were 20x slower on the loaded shared 2-core VM (thread contention).
const BACKEND = "cpu-js";

function read(t: tf.Tensor): number[] {
  const v = Array.from(t.dataSync());
  t.dispose();
  return v;
}

function close(actual: number[], expected: number[], tol = 1e-6, msg = ""): void {
  assert.equal(actual.length, expected.length, msg);
  actual.forEach((a, i) =>
    assert.ok(Math.abs(a - expected[i]!) <= tol, `${msg}[${i}]: ${a} vs ${expected[i]}`)
  );
}

Deno.test("ua-cotraining: voxel weights move with uncertainty as the reconstruction states (1 + U, 1 - U, exp(-U))", async () => {
  await initBackend(BACKEND);
  const before = tf.memory().numTensors;
  // Entropies in nats (2 classes): below 0 and above ln 2 are clipped.
  const h = tf.tensor1d([-1e-6, 0, 0.25 * LN2, 0.5 * LN2, LN2, 1.01 * LN2]);
  const u = normalisedUncertainty(h, 2);
  const un = Array.from(u.dataSync());
  close(un, [0, 0, 0.25, 0.5, 1, 1], 1e-6, "U = H / ln 2 clipped");
  // Supervised: 1 + U (up with the network's own uncertainty).
  close(read(supervisedWeights(u, "linear")), [1, 1, 1.25, 1.5, 2, 2], 1e-6, "1 + U");
  close(read(supervisedWeights(u, "none")), [1, 1, 1, 1, 1, 1], 0, "none");
  // Pseudo-label: 1 - U or exp(-U) (down with the other network's uncertainty).
  close(read(pseudoWeights(u, "linear")), [1, 1, 0.75, 0.5, 0, 0], 1e-6, "1 - U");
  close(
    read(pseudoWeights(u, "exp")),
    [1, 1, Math.exp(-0.25), Math.exp(-0.5), Math.exp(-1), Math.exp(-1)],
    1e-6,
    "exp(-U)",
  );
  close(read(pseudoWeights(u, "none")), [1, 1, 1, 1, 1, 1], 0, "none");
  // Three-class normalisation by ln 3.
  const h3 = tf.tensor1d([Math.log(3) / 2]);
  close(read(normalisedUncertainty(h3, 3)), [0.5], 1e-6, "ln 3");
  h3.dispose();
  u.dispose();
  h.dispose();
  assert.equal(tf.memory().numTensors, before);
});

Deno.test("ua-cotraining: weighted supervised loss reduces to 0.5 (CE + Dice) and weights CE per voxel", async () => {
  await initBackend(BACKEND);
  // One labeled sample, 1x1x2 voxels, 2 classes.
  const logits = tf.tensor5d([2, 0, 0, 1], [1, 1, 1, 2, 2]);
  const labels = tf.tensor4d([0, 0], [1, 1, 1, 2], "int32");
  const ref = ceDiceLoss(logits, labels);
  const ones = tf.ones([1, 1, 1, 2]);
  const plain = weightedSupervisedLoss(logits, labels, ones);
  close(read(plain.loss), read(ref.loss), 1e-6, "w = 1 is the LA loss");
  read(ref.ce);
  read(ref.dice);
  read(plain.ce);
  read(plain.dice);
  // Hand value: CE_0 = log(1 + e^-2), CE_1 = log(1 + e^1); weights 1 + U with U = (0, 1).
  const w = tf.tensor4d([1, 2], [1, 1, 1, 2]);
  const wl = weightedSupervisedLoss(logits, labels, w);
  const ce0 = Math.log(1 + Math.exp(-2)), ce1 = Math.log(1 + Math.exp(1));
  close(read(wl.ce), [(1 * ce0 + 2 * ce1) / 2], 1e-6, "mean(w CE)");
  const p1 = [1 / (1 + Math.exp(2)), 1 / (1 + Math.exp(-1))];
  const dice = 1 - 1e-5 / (p1[0]! ** 2 + p1[1]! ** 2 + 1e-5);
  close(read(wl.dice), [dice], 1e-6, "dice unweighted");
  close(read(wl.loss), [0.5 * ((ce0 + 2 * ce1) / 2 + dice)], 1e-6, "0.5 (wCE + Dice)");
  [logits, labels, ones, w].forEach((t) => t.dispose());
});

Deno.test("ua-cotraining: each network learns the OTHER's argmax, weighted by the other's certainty", async () => {
  await initBackend(BACKEND);
  const before = tf.memory().numTensors;
  // Batch = 1 labeled + 1 unlabeled sample, each 1x1x2 voxels, 2 classes.
  // Unlabeled argmax: net 1 -> (0, 1), net 2 -> (1, 1).
  const l1 = [0, 1, 1, 0, /* unlabeled */ 3, 1, 0, 2];
  const l2 = [1, 0, 0, 0, /* unlabeled */ 0, 1, -1, 1];
  const [logits1, logits2] = tf.tidy(() => [
    tf.variable(tf.tensor5d(l1, [2, 1, 1, 2, 2]), true, "ucot_l1"),
    tf.variable(tf.tensor5d(l2, [2, 1, 1, 2, 2]), true, "ucot_l2"),
  ]) as [tf.Variable, tf.Variable];
  const labels = tf.tensor4d([1, 0], [1, 1, 1, 2], "int32");
  // Normalised uncertainty (labeled row, unlabeled row).
  const u1 = tf.tensor4d([0.2, 0.4, 0.5, 0.0], [2, 1, 1, 2]);
  const u2 = tf.tensor4d([0.6, 0.0, 0.25, 1.0], [2, 1, 1, 2]);

  assert.deepEqual(tf.tidy(() => read(pseudoLabels(tf.slice(logits1, [1], [1])))), [0, 1]);
  assert.deepEqual(tf.tidy(() => read(pseudoLabels(tf.slice(logits2, [1], [1])))), [1, 1]);

  const lambda = 0.3;
  const terms = coTrainingLoss({
    logits: [logits1, logits2],
    uncertainty: [u1, u2],
    labels,
    lambda,
    supWeighting: "linear",
    pseudoWeighting: "linear",
  });
  const v = Object.fromEntries(Object.entries(terms).map(([k, t]) => [k, read(t!)[0]!]));
  // CE of logits (a, b) against class c.
  const ce = (a: number, b: number, c: number) =>
    Math.log(Math.exp(a) + Math.exp(b)) - (c === 0 ? a : b);
  // Net 1 on unlabeled learns net 2's argmax (1, 1), weights 1 - U2 = (0.75, 0).
  const ps1 = (0.75 * ce(3, 1, 1) + 0 * ce(0, 2, 1)) / 0.75;
  // Net 2 on unlabeled learns net 1's argmax (0, 1), weights 1 - U1 = (0.5, 1).
  const ps2 = (0.5 * ce(0, 1, 0) + 1 * ce(-1, 1, 1)) / 1.5;
  close([v.pseudo1!], [ps1], 1e-5, "pseudo1 targets = argmax of net 2");
  close([v.pseudo2!], [ps2], 1e-5, "pseudo2 targets = argmax of net 1");
  // Supervised of net 1 uses ITS OWN uncertainty: weights 1 + U1 = (1.2, 1.4).
  const wce1 = (1.2 * ce(0, 1, 1) + 1.4 * ce(1, 0, 0)) / 2;
  close([v.ce1!], [wce1], 1e-5, "net 1 supervised CE weighted by 1 + U1");
  const wce2 = (1.6 * ce(1, 0, 1) + 1.0 * ce(0, 0, 0)) / 2;
  close([v.ce2!], [wce2], 1e-5, "net 2 supervised CE weighted by 1 + U2");
  close(
    [v.loss!],
    [v.sup1! + v.sup2! + lambda * (v.pseudo1! + v.pseudo2!)],
    1e-5,
    "L = sum_k sup_k + lambda pseudo_k",
  );

  // The pseudo-labels carry no gradient: pseudo1 depends on net 1's logits only.
  const { value, grads } = tf.variableGrads(() =>
    coTrainingLoss({
      logits: [logits1, logits2],
      uncertainty: [u1, u2],
      labels,
      lambda,
      supWeighting: "linear",
      pseudoWeighting: "linear",
    }).pseudo1!, [logits1, logits2]);
  assert.ok(grads[logits1.name] !== undefined, "gradient reaches net 1");
  assert.equal(grads[logits2.name], undefined, "no gradient into the labeller (net 2)");
  value.dispose();
  Object.values(grads).forEach((g) => g.dispose());

  // Without unlabeled rows there are no pseudo terms.
  const first = [logits1, logits2, u1, u2].map((t) => tf.slice(t, [0], [1]));
  const supOnly = coTrainingLoss({
    logits: [first[0]!, first[1]!],
    uncertainty: [first[2]!, first[3]!],
    labels,
    lambda,
    supWeighting: "linear",
    pseudoWeighting: "linear",
  });
  assert.equal(supOnly.pseudo1, undefined);
  const so = Object.fromEntries(Object.entries(supOnly).map(([k, t]) => [k, read(t!)[0]!]));
  close([so.loss!], [so.sup1! + so.sup2!], 1e-6, "supervised only");
  close([so.sup1!], [v.sup1!], 1e-6, "same sup1");

  [...first, logits1, logits2, labels, u1, u2].forEach((t) => t.dispose());
  assert.equal(tf.memory().numTensors, before, "coTrainingLoss leaves only its outputs");
});

Deno.test("ua-cotraining: the two networks start different (net 2 seed = deriveSeed(initSeed, 'net2'))", async () => {
  await initBackend(BACKEND);
  const hp = resolveHyperParams(uaCotraining, { nFilters: 2 });
  const m = uaCotraining.create(hp, { initSeed: 7, inChannels: 1, nClasses: 2 });
  const st = m.state();
  const names = Object.keys(st.tensors).filter((k) => k.startsWith("net1."));
  const w = names.filter((k) => k.endsWith("conv0.weight"));
  assert.ok(w.length > 0);
  for (const k of w) {
    assert.notDeepEqual(st.tensors[k]!.values, st.tensors[k.replace("net1.", "net2.")]!.values, k);
  }
  const opts = { inChannels: 1, nFilters: 2, heads: segHeads(2), dropoutP: 0.5 };
  const ref1 = new VNet(opts, new Rng(7)).state("net1.");
  const ref2 = new VNet(opts, new Rng(deriveSeed(7, "net2"))).state("net2.");
  for (const [k, s] of Object.entries({ ...ref1, ...ref2 })) {
    assert.deepEqual(st.tensors[k]!.values, s.values, k);
  }
  assert.equal(Object.keys(st.tensors).length, Object.keys(ref1).length * 2);
  m.dispose();
});

Deno.test("ua-cotraining: a joint step moves both networks; memory flat; predict = mean (or net 1) softmax", async () => {
  await initBackend(BACKEND);
  // Smallest useful case (1 labeled + 1 unlabeled, one MC pass): the shared 2-core VM is slow.
  const batch = syntheticBatch(16, 1, 1);
  const hp = resolveHyperParams(uaCotraining, {
    nFilters: 2,
    mcPasses: 1,
    mcRepeats: 1,
    pseudoWeighting: "exp",
  });
  const ctx = { initSeed: 3, inChannels: 1, nClasses: 2 };
  const m = uaCotraining.create(hp, ctx);
  const s0 = m.state();
  const random = { noise: new Rng(1), dropout: new Rng(2) };
  const counts: number[] = [];
  for (let i = 0; i < 2; i++) {
    const l = await m.trainStep(batch, {
      iteration: 200 + i,
      totalIterations: 6000,
      random,
    }) as Record<
      string,
      number
    >;
    for (
      const k of [
        "loss",
        "sup1",
        "sup2",
        "pseudo1",
        "pseudo2",
        "consistencyWeight",
        "meanUncertainty",
      ]
    ) {
      assert.ok(Number.isFinite(l[k]), k);
    }
    const lambda = l.consistencyWeight!;
    close([l.loss!], [l.sup1! + l.sup2! + lambda * (l.pseudo1! + l.pseudo2!)], 1e-4, "total");
    counts.push(tf.memory().numTensors);
  }
  assert.equal(counts[1], counts[0], "numTensors flat across steps");
  const s1 = m.state();
  for (const net of ["net1.", "net2."]) {
    const k = `${net}block_one.conv0.weight`;
    assert.notDeepEqual(s1.tensors[k]!.values, s0.tensors[k]!.values, `${k} moved`);
  }
  assert.ok(Object.keys(s1.tensors).some((k) => k.startsWith("optim.net2.")), "one optimizer");
  // Same weights, prediction "net1".
  const m1 = uaCotraining.create({ ...hp, prediction: "net1" }, ctx);
  m1.restore(s1);
  const x = batch.labeledImages;
  // The two networks, rebuilt from the state (names `net1.*`, `net2.*`).
  const nets = ["net1.", "net2."].map((p) => {
    const n = new VNet(
      { inChannels: 1, nFilters: 2, heads: segHeads(2), dropoutP: 0.5 },
      new Rng(0),
    );
    n.restore(s1.tensors, p);
    return n;
  });
  const [pa, pb] = tf.tidy(() =>
    nets.map((n) => tf.softmax(n.forward(x, { training: false })[0]!))
  );
  nets.forEach((n) => n.dispose());
  close(read(m.predict(x)), read(tf.tidy(() => tf.div(tf.add(pa!, pb!), 2))), 1e-6, "mean");
  close(read(m1.predict(x)), read(pa!), 1e-6, "net1");
  pb!.dispose();
  m.dispose();
  m1.dispose();
  disposeBatch(batch);
});

Deno.test("ua-cotraining: bad option values are one-line errors when resolved", () => {
  for (const [k, v] of [["supWeighting", "exp"], ["pseudoWeighting", "x"], ["prediction", "max"]]) {
    assert.throws(
      () => resolveHyperParams(uaCotraining, { nFilters: 2, [k!]: v! }),
      new RegExp(`^Error: method ua-cotraining: ${k} must be one of .*, got "${v}"$`),
    );
  }
  assert.throws(
    () => resolveHyperParams(uaCotraining, { nFilters: 2, mcPasses: 3 }),
    /mcPasses 3 must be a positive multiple of mcRepeats 2/,
  );
  assert.equal(resolveHyperParams(uaCotraining, { pseudoWeighting: "exp" }).pseudoWeighting, "exp");
});

Deno.test("ua-cotraining LA benchmark: 5 rows x 2 labeled settings x 3 seeds, no paper numbers", () => {
  assert.equal(getBenchmark("ua_cotraining_la"), uaCotrainingLa);
  const runs = expandGrid(uaCotrainingLa);
  assert.equal(runs.length, 5 * 2 * 3);
  assert.equal(new Set(runs.map((r) => r.runId)).size, runs.length);
  assert.deepEqual(
    [...new Set(runs.map((r) => r.method))],
    ["supervised", "mean-teacher", "ua-mt", "dtc", "ua-cotraining"],
  );
  assert.ok(runs.filter((r) => r.method === "supervised").every((r) => r.labeledOnly));
  assert.ok(runs.filter((r) => r.method !== "supervised").every((r) => !r.labeledOnly));
  assert.equal(runs.filter((r) => r.method === "ua-cotraining").length, 6);
  assert.equal(uaCotrainingLa.table.proposed, "ua-cotraining");
  assert.equal(uaCotrainingLa.table.reported.length, 0);
  assert.equal(uaCotraining.meta.reconstructed, true);
  assert.match(uaCotraining.meta.notes ?? "", /RECONSTRUCTED/);
});
