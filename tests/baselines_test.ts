/** Pins each baseline's consistency target on constructed cases. */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { initBackend } from "../methods/nn/backend.ts";
import { Rng } from "../methods/nn/rng.ts";
import { VNet } from "../methods/nn/vnet.ts";
import { mtConsistency } from "../methods/mean_teacher.ts";
import { dtcConsistency } from "../methods/dtc.ts";
import {
  certaintyMask,
  maskedConsistency,
  mcEntropy,
  uncertaintyThreshold,
} from "../methods/nn/uncertainty.ts";

const close = (a: number, b: number, tol = 1e-6) =>
  assert.ok(Math.abs(a - b) <= tol, `${a} vs ${b}`);
const L3 = Math.log(3);

Deno.test("MT: consistency = mean over voxels and classes of (softmax(s) - softmax(t))^2", async () => {
  await initBackend("cpu");
  // voxel 0: 0.5/0.5 vs 0.75/0.25 -> 0.0625 per class; voxel 1 identical -> 0
  const s = tf.tensor5d([0, 0, 1, 2], [1, 1, 1, 2, 2]);
  const t = tf.tensor5d([L3, 0, 1, 2], [1, 1, 1, 2, 2]);
  close(mtConsistency(s, t).dataSync()[0]!, (0.0625 * 2) / 4);
  tf.dispose([s, t]);
});

Deno.test("UA-MT: the mask excludes exactly the voxels whose entropy is above the threshold", async () => {
  await initBackend("cpu");
  const h = (p: number) => -(p * Math.log(p + 1e-6) + (1 - p) * Math.log(1 - p + 1e-6));
  const thr0 = uncertaintyThreshold(0, 6000);
  close(thr0, (0.75 + 0.25 * Math.exp(-5)) * Math.LN2, 1e-12);
  close(uncertaintyThreshold(6000, 6000), Math.LN2, 1e-12);
  // entropies of p = 0.5 (ln 2), 0.8 (0.500), 0.9 (0.325), 0.7 (0.611): threshold ~0.521
  const ps = [0.5, 0.8, 0.9, 0.7];
  const ent = tf.tensor4d(ps.map(h), [1, 1, 2, 2]);
  const mask = certaintyMask(ent, thr0);
  assert.deepEqual([...mask.dataSync()], ps.map((p) => (h(p) < thr0 ? 1 : 0)));
  assert.deepEqual([...mask.dataSync()], [0, 1, 1, 0]);
  // masked consistency = sum(M D) / (2 sum(M) + 1e-16): mean over certain voxels and classes
  const d = tf.tensor5d([9, 9, 0.1, 0.3, 0.2, 0.2, 9, 9], [1, 1, 2, 2, 2]);
  close(maskedConsistency(d, mask).dataSync()[0]!, (0.1 + 0.3 + 0.2 + 0.2) / 4);
  // no certain voxel -> 0 (not NaN)
  const none = tf.zeros([1, 1, 2, 2]);
  close(maskedConsistency(d, none).dataSync()[0]!, 0);
  tf.dispose([ent, mask, d, none]);
});

Deno.test("UA-MT: MC entropy without noise or dropout equals the entropy of one train-mode pass", async () => {
  await initBackend("cpu");
  const rng = new Rng(3);
  const teacher = new VNet({ inChannels: 1, nFilters: 2, hasDropout: false }, rng);
  const u = tf.tensor5d(rng.fillNormal(new Float32Array(2 * 16 * 16 * 16)), [2, 16, 16, 16, 1]);
  const ent = mcEntropy(teacher, u, {
    passes: 4,
    repeats: 2,
    noiseRng: new Rng(1),
    dropoutRng: new Rng(2),
    noiseStd: 0,
  });
  // A repeated batch has the same BN batch statistics as the batch itself.
  const ref = tf.tidy(() => {
    const p = tf.softmax(teacher.forward(u, { training: true, updateStats: false })[0]!, -1);
    return tf.neg(tf.sum(tf.mul(p, tf.log(tf.add(p, 1e-6))), -1));
  });
  assert.deepEqual(ent.shape, [2, 16, 16, 16]);
  const a = ent.dataSync(), b = ref.dataSync();
  // float32 sums over 4 vs 2 samples differ in the last bits (the 1-voxel bottleneck amplifies)
  for (let i = 0; i < a.length; i++) close(a[i]!, b[i]!, 1e-4);
  assert.ok(a.every((v) => v >= -1e-6 && v <= Math.LN2 + 1e-6));
  tf.dispose([u, ent, ref]);
  teacher.dispose();
});

Deno.test("DTC: consistency is zero when the SDF and seg heads agree, positive otherwise", async () => {
  await initBackend("cpu");
  // inside (sdf < 0) <-> seg logit > 0
  const sdf = tf.tensor1d([-0.5, -0.1, 0.2, 0.9]);
  const seg = tf.tensor1d([40, 30, -30, -40]);
  assert.ok(dtcConsistency(sdf, seg).dataSync()[0]! < 1e-12);
  const segWrong = tf.tensor1d([-40, 30, -30, 40]);
  close(dtcConsistency(sdf, segWrong).dataSync()[0]!, 0.5, 1e-6);
  // sigmoid(-1500 * 0) = 0.5 on the boundary; seg logit 0 also 0.5 -> 0
  close(dtcConsistency(tf.tensor1d([0]), tf.tensor1d([0])).dataSync()[0]!, 0, 1e-12);
  tf.dispose([sdf, seg, segWrong]);
});
