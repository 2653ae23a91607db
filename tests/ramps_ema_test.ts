import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { initBackend } from "../methods/nn/backend.ts";
import {
  consistencyWeight,
  cosineRampdown,
  laRamp,
  linearRampup,
  rampedWeight,
  sigmoidRampup,
} from "../methods/nn/ramps.ts";
import { getMethod } from "../methods/mod.ts";
import { emaAlpha, emaUpdate } from "../methods/nn/ema.ts";

const close = (a: number, b: number, tol = 1e-12) =>
  assert.ok(Math.abs(a - b) <= tol, `${a} vs ${b}`);

Deno.test("ramps: sigmoid/linear/cosine at chosen points", () => {
  close(sigmoidRampup(0, 40), Math.exp(-5));
  close(sigmoidRampup(20, 40), Math.exp(-5 * 0.25));
  close(sigmoidRampup(40, 40), 1);
  close(sigmoidRampup(100, 40), 1);
  close(sigmoidRampup(-3, 40), Math.exp(-5));
  close(sigmoidRampup(7, 0), 1);
  close(linearRampup(10, 40), 0.25);
  close(linearRampup(50, 40), 1);
  close(cosineRampdown(0, 10), 1);
  close(cosineRampdown(5, 10), 0.5);
  close(cosineRampdown(10, 10), 0);
  // w = C * sigmoid_rampup(iter // 150, 40): iter 149 -> epoch 0, 300 -> epoch 2, 6000 -> 40.
  close(consistencyWeight(0.1, 149, 40), 0.1 * Math.exp(-5));
  close(consistencyWeight(0.1, 300, 40), 0.1 * Math.exp(-5 * (1 - 2 / 40) ** 2));
  close(consistencyWeight(1.0, 6000, 40), 1);
});

Deno.test("EMA: 3 steps on a 2-parameter model match the hand computation", async () => {
  await initBackend("cpu");
  close(emaAlpha(0, 0.99), 0);
  close(emaAlpha(1, 0.99), 0.5);
  close(emaAlpha(1000, 0.99), 0.99);
  const s = new Map<string, tf.Variable>([["a", tf.variable(tf.scalar(1))], [
    "b",
    tf.variable(tf.tensor1d([2, -2])),
  ]]);
  const t = new Map<string, tf.Variable>([["a", tf.variable(tf.scalar(10))], [
    "b",
    tf.variable(tf.tensor1d([0, 0])),
  ]]);
  const studentSeq = [[1, 2, -2], [2, 4, 0], [4, 1, 1]];
  for (const [step, [a, b0, b1]] of studentSeq.entries()) {
    s.get("a")!.assign(tf.scalar(a!));
    s.get("b")!.assign(tf.tensor1d([b0!, b1!]));
    emaUpdate(t, s, step, 0.99);
  }
  // step 0: alpha 0 -> copy (1, [2,-2]); step 1: alpha 1/2 -> (1.5, [3,-1]);
  // step 2: alpha 2/3 -> (2/3*1.5 + 1/3*4, [2/3*3 + 1/3*1, 2/3*-1 + 1/3*1]) = (7/3, [7/3, -1/3])
  close(t.get("a")!.dataSync()[0]!, 7 / 3, 1e-6);
  const b = t.get("b")!.dataSync();
  close(b[0]!, 7 / 3, 1e-6);
  close(b[1]!, -1 / 3, 1e-6);
  // A decay cap below 2/3 binds at step 2: 0.6*1.5 + 0.4*4 = 2.5.
  const t2 = new Map<string, tf.Variable>([["a", tf.variable(tf.scalar(1.5))]]);
  s.get("a")!.assign(tf.scalar(4));
  emaUpdate(t2, new Map([["a", s.get("a")!]]), 2, 0.6);
  close(t2.get("a")!.dataSync()[0]!, 2.5, 1e-6);
  for (const m of [s, t, t2]) for (const v of m.values()) v.dispose();
});

Deno.test("ramps: the LA ramp is 40 epochs of 150 iterations, the defaults of the LA methods", () => {
  assert.deepEqual(laRamp(0.1), {
    consistency: 0.1,
    consistencyRampup: 40,
    rampupEpochLength: 150,
  });
  // w(t) = C sigmoid_rampup(t // 150, 40): at iteration 3000 (epoch 20) C exp(-5/4); 1.0 C from 6000.
  close(rampedWeight(laRamp(0.1), 3000), 0.1 * Math.exp(-1.25));
  close(rampedWeight(laRamp(0.1), 3149), 0.1 * Math.exp(-1.25));
  close(rampedWeight(laRamp(1.0), 6000), 1);
  const c = {
    "mean-teacher": 0.1,
    "ua-mt": 0.1,
    "entropy-min": 0.1,
    "ua-cotraining": 0.1,
    dtc: 1.0,
  };
  for (const [id, want] of [...Object.entries(c), ["ahu-multinet", 1.0] as const]) {
    const d = getMethod(id).defaults as Record<string, unknown>;
    assert.deepEqual(
      [d.consistency, d.consistencyRampup, d.rampupEpochLength],
      [want, 40, 150],
      id,
    );
  }
});
