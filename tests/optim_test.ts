import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { initBackend } from "../methods/nn/backend.ts";
import { Adam, polyLr, Sgd, stepLr } from "../methods/nn/optim.ts";

const close = (a: number, b: number, tol = 1e-6) =>
  assert.ok(Math.abs(a - b) <= tol, `${a} vs ${b}`);
const g = (v: number) => new Map([["p", tf.scalar(v)]]);

Deno.test("SGD: momentum + coupled weight decay, 2 steps vs hand-computed PyTorch", async () => {
  await initBackend("cpu");
  const p = tf.variable(tf.scalar(1));
  const opt = new Sgd(new Map([["p", p]]), { momentum: 0.9, weightDecay: 0.1 });
  // step 1: d = 0.5 + 0.1*1 = 0.6; buf = d = 0.6; p = 1 - 0.1*0.6 = 0.94
  opt.step(g(0.5), 0.1);
  close(p.dataSync()[0]!, 0.94);
  // step 2: d = -1 + 0.1*0.94 = -0.906; buf = 0.9*0.6 - 0.906 = -0.366; p = 0.94 + 0.0366
  const st = opt.state();
  opt.step(g(-1), 0.1);
  close(p.dataSync()[0]!, 0.9766);
  // state round trip: the restored buffer gives the same second step.
  const q = tf.variable(tf.scalar(0.94));
  const opt2 = new Sgd(new Map([["p", q]]), { momentum: 0.9, weightDecay: 0.1 });
  opt2.restore(st);
  opt2.step(g(-1), 0.1);
  close(q.dataSync()[0]!, 0.9766);
  opt.dispose();
  opt2.dispose();
  tf.dispose([p, q]);
});

Deno.test("Adam: 2 steps vs hand-computed PyTorch", async () => {
  await initBackend("cpu");
  const p = tf.variable(tf.scalar(1));
  const opt = new Adam(new Map([["p", p]]));
  // step 1: m = .05, v = .00025, m^ = .5, v^ = .25 -> p = 1 - 0.1 * .5/(.5 + 1e-8)
  opt.step(g(0.5), 0.1);
  close(p.dataSync()[0]!, 0.9);
  // step 2: m = .045 - .1 = -.055, v = .999*.00025 + .001 = .00124975
  const m = -0.055, v = 0.00124975;
  const expected = 0.9 - (0.1 / (1 - 0.81)) * m / (Math.sqrt(v) / Math.sqrt(1 - 0.998001) + 1e-8);
  const st = opt.state();
  assert.equal(st.extra["p.step"], 1);
  opt.step(g(-1), 0.1);
  close(p.dataSync()[0]!, expected);
  close(expected, 0.936611, 1e-6);
  // Coupled weight decay: g' = g + wd p.
  const w = tf.variable(tf.scalar(2));
  const optW = new Adam(new Map([["p", w]]), { weightDecay: 0.5 });
  optW.step(g(0), 0.01); // g' = 1 -> step = lr * 1/(1 + 1e-8)
  close(w.dataSync()[0]!, 1.99);
  opt.dispose();
  optW.dispose();
  tf.dispose([p, w]);
});

Deno.test("LR schedules: step decay x0.1 every 2500 iterations, poly", () => {
  close(stepLr(0.01, 0), 0.01, 1e-15);
  close(stepLr(0.01, 2499), 0.01, 1e-15);
  close(stepLr(0.01, 2500), 0.001, 1e-15);
  close(stepLr(0.01, 5999), 0.0001, 1e-15);
  close(polyLr(0.01, 0, 100), 0.01, 1e-15);
  close(polyLr(0.01, 50, 100), 0.01 * 0.5 ** 0.9, 1e-15);
  close(polyLr(0.01, 100, 100), 0, 1e-15);
});
