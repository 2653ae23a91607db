/**
 * Reusable conformance checks for a registered method: build it small, train 3 steps on a
 * synthetic 16^3 batch (2 labeled + 2 unlabeled), and assert the {@link Method} contract:
 * finite losses, flat `tf.memory().numTensors` across steps, probabilities of the right shape
 * summing to 1, and `state()`/`restore()` round-trips to identical predictions and identical
 * continued training. Used by tests/conformance_test.ts and by later methods' tests.
 * @module
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { initBackend } from "../methods/nn/backend.ts";
import { Rng } from "../methods/nn/rng.ts";
import {
  type BuildContext,
  type HyperValue,
  type Method,
  type MethodDefinition,
  resolveHyperParams,
  type StepInfo,
  type StepLosses,
  type TrainBatch,
} from "../methods/types.ts";

/** A deterministic synthetic batch: a bright ball (label 1) on noise, per sample shifted. */
export function syntheticBatch(size = 16, labeled = 2, unlabeled = 2, seed = 3): TrainBatch {
  const rng = new Rng(seed);
  const n = labeled + unlabeled;
  const vox = size * size * size;
  const img = new Float32Array(n * vox);
  const lab = new Int32Array(labeled * vox);
  for (let b = 0; b < n; b++) {
    const c = [size / 2 + rng.int(3) - 1, size / 2 + rng.int(3) - 1, size / 2 + rng.int(3) - 1];
    const r = size / 4 + rng.int(2);
    for (let i = 0; i < size; i++) {
      for (let j = 0; j < size; j++) {
        for (let k = 0; k < size; k++) {
          const inside = (i - c[0]!) ** 2 + (j - c[1]!) ** 2 + (k - c[2]!) ** 2 <= r * r;
          const idx = (i * size + j) * size + k;
          img[b * vox + idx] = (inside ? 1 : 0) + 0.3 * rng.normal();
          if (b < labeled) lab[b * vox + idx] = inside ? 1 : 0;
        }
      }
    }
  }
  const all = tf.tensor5d(img, [n, size, size, size, 1]);
  const labeledImages = tf.slice(all, [0, 0, 0, 0, 0], [labeled, size, size, size, 1]);
  const unlabeledImages = unlabeled > 0
    ? tf.slice(all, [labeled, 0, 0, 0, 0], [unlabeled, size, size, size, 1])
    : null;
  all.dispose();
  return { labeledImages, labels: tf.tensor4d(lab, [labeled, size, size, size]), unlabeledImages };
}

/** Dispose a batch made by {@link syntheticBatch}. */
export function disposeBatch(b: TrainBatch): void {
  b.labeledImages.dispose();
  b.labels.dispose();
  b.unlabeledImages?.dispose();
}

/** Options of {@link checkMethodConformance}. */
export interface ConformanceOptions {
  /** Base width override when the method has `nFilters` (default 2). */
  nFilters?: number;
  /** Extra hyper-parameter overrides. */
  overrides?: Record<string, HyperValue>;
  /** Spatial size of the synthetic cube (default 16). */
  size?: number;
  /** Train steps before the checks (default 3). */
  steps?: number;
  /** The iteration index the steps start at (default 0). */
  startIteration?: number;
}

function stepInfo(i: number, noise: Rng, dropout: Rng): StepInfo {
  return { iteration: i, totalIterations: 6000, random: { noise, dropout } };
}

async function train(m: Method, b: TrainBatch, s: StepInfo): Promise<StepLosses> {
  return await m.trainStep(b, s);
}

function values(t: tf.Tensor): Float32Array {
  const v = t.dataSync() as Float32Array;
  t.dispose();
  return v;
}

/** Run the conformance checks on `def` (throws an AssertionError naming the failure). */
export async function checkMethodConformance(
  // deno-lint-ignore no-explicit-any
  def: MethodDefinition<any>,
  opts: ConformanceOptions = {},
): Promise<void> {
  await initBackend("cpu");
  const size = opts.size ?? 16;
  const steps = opts.steps ?? 3;
  const start = opts.startIteration ?? 0;
  const over: Record<string, HyperValue> = { ...(opts.overrides ?? {}) };
  if ("nFilters" in def.defaults) over.nFilters = opts.nFilters ?? 2;
  const hp = resolveHyperParams(def, over);
  const ctx: BuildContext = { initSeed: 11, inChannels: 1, nClasses: 2 };
  const batch = syntheticBatch(size);
  const patch = tf.tidy(() => tf.concat([batch.labeledImages, batch.unlabeledImages!], 0));
  const baseline = tf.memory().numTensors;

  const m = def.create(hp, ctx);
  const noise = new Rng(101), dropout = new Rng(202);
  const counts: number[] = [];
  for (let i = 0; i < steps; i++) {
    const l = await train(m, batch, stepInfo(start + i, noise, dropout));
    for (const [k, v] of Object.entries(l)) {
      assert.ok(Number.isFinite(v), `${def.id}: step ${i} loss '${k}' is not finite (${v})`);
    }
    counts.push(tf.memory().numTensors);
  }
  assert.equal(
    counts[counts.length - 1],
    counts[0],
    `${def.id}: tf.memory().numTensors grew across steps (${counts.join(", ")})`,
  );

  const before = tf.memory().numTensors;
  const p = m.predict(patch);
  assert.deepEqual(p.shape, [4, size, size, size, 2], `${def.id}: predict shape`);
  const pv = p.dataSync() as Float32Array;
  for (let i = 0; i < pv.length; i += 2) {
    const a = pv[i]!, b = pv[i + 1]!;
    assert.ok(
      a >= 0 && b >= 0 && Math.abs(a + b - 1) < 1e-5,
      `${def.id}: probabilities at ${i / 2}`,
    );
  }
  p.dispose();
  assert.equal(tf.memory().numTensors, before, `${def.id}: predict leaked tensors`);

  // Round trip into a fresh instance built from ANOTHER init seed (restore must overwrite all).
  const st = m.state();
  const m2 = def.create(hp, { ...ctx, initSeed: 12 });
  m2.restore(st);
  assert.deepEqual(
    values(m2.predict(patch)),
    values(m.predict(patch)),
    `${def.id}: restored predictions`,
  );

  // Continued training from identical RNG states must be identical.
  const n2 = new Rng(0), d2 = new Rng(0);
  n2.restore(noise.state());
  d2.restore(dropout.state());
  const la = await train(m, batch, stepInfo(start + steps, noise, dropout));
  const lb = await train(m2, batch, stepInfo(start + steps, n2, d2));
  assert.deepEqual(lb, la, `${def.id}: continued training after restore differs`);
  assert.deepEqual(
    values(m2.predict(patch)),
    values(m.predict(patch)),
    `${def.id}: continued weights`,
  );
  assert.deepEqual(m2.state(), m.state(), `${def.id}: continued state`);

  m.dispose();
  m2.dispose();
  assert.equal(tf.memory().numTensors, baseline, `${def.id}: dispose() left tensors behind`);
  patch.dispose();
  disposeBatch(batch);
}
