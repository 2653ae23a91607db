/**
 * Progress during evaluation: the sliding window reports windows done per predict call, the
 * evaluator turns that into cases done and windows done/total over all cases, the progress
 * printer shows the start, throttled updates with windows/s and an ETA, and the end; a real
 * run prints them on stderr.
 * @module
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import { planWindows, slidingWindowInference } from "../benchmarks/harness/sliding_window.ts";
import {
  caseWindows,
  type EvalProgressUpdate,
  evaluateCases,
} from "../benchmarks/harness/evaluate.ts";
import { type EvalProgress, Progress } from "../benchmarks/harness/progress.ts";
import type { EvalProtocol } from "../benchmarks/harness/spec.ts";
import type { Method } from "../methods/types.ts";
import type { Case } from "../datasets/types.ts";

tf.env().set("PROD", true); // no "install tfjs-node" banner
await tf.setBackend("cpu");

const PROTOCOL: EvalProtocol = {
  window: "ua-mt",
  patch: [8, 8, 8],
  strideXY: 4,
  strideZ: 4,
  gaussian: false,
  lcc: false,
  units: "voxel",
  emptyPolicy: "reference-code",
  metrics: ["dice"],
};

function makeCase(id: string, shape: [number, number, number]): Case {
  const n = shape[0] * shape[1] * shape[2];
  const label = new Uint8Array(n);
  for (let i = 0; i < n; i += 3) label[i] = 1;
  return {
    id,
    image: { data: new Float32Array(n).fill(0.5), shape, channels: 1, spacing: [1, 1, 1] },
    label: { data: label, shape, spacing: [1, 1, 1] },
  };
}

/** A "method" whose predict is a constant 0.4/0.6 two-class map. */
const constant: Method = {
  trainStep: () => ({ loss: 0 }),
  predict: (x) =>
    tf.tidy(() => {
      const [b, d, h, w] = x.shape;
      return tf.concat([tf.fill([b, d, h, w, 1], 0.4), tf.fill([b, d, h, w, 1], 0.6)], -1);
    }) as tf.Tensor5D,
  state: () => ({ tensors: {}, scalars: {} }) as unknown as ReturnType<Method["state"]>,
  restore: () => {},
  dispose: () => {},
};

Deno.test("sliding window: onProgress after every predict call, ending at the window count", async () => {
  const shape: [number, number, number] = [20, 14, 9];
  const calls: [number, number][] = [];
  const plan = planWindows(shape, [8, 8, 8], "ua-mt", [4, 4, 4]);
  await slidingWindowInference(
    { data: new Float32Array(20 * 14 * 9), shape, channels: 1 },
    (batch, s) => new Float32Array((batch.length / s[4]) * 2).fill(0.5),
    {
      patch: [8, 8, 8],
      numClasses: 2,
      stride: [4, 4, 4],
      batchSize: 2,
      onProgress: (d, t) => calls.push([d, t]),
    },
  );
  assert.equal(calls.length, Math.ceil(plan.count / 2));
  assert.deepEqual(calls.at(-1), [plan.count, plan.count]);
  for (const [i, [d, t]] of calls.entries()) {
    assert.equal(t, plan.count);
    assert.equal(d, Math.min(2 * (i + 1), plan.count));
  }
});

Deno.test("evaluateCases: cases done and windows done/total over all cases", async () => {
  const cases = [makeCase("a", [12, 12, 8]), makeCase("b", [16, 9, 10])];
  const per = cases.map((c) => caseWindows(c.image.shape, PROTOCOL));
  const updates: EvalProgressUpdate[] = [];
  const scores = await evaluateCases(
    constant,
    cases,
    PROTOCOL,
    2,
    undefined,
    (u) => updates.push(u),
  );
  assert.equal(scores.length, 2);
  const total = per[0]! + per[1]!;
  assert.deepEqual(
    { ...updates[0]!, elapsed: 0 },
    { casesDone: 0, cases: 2, windowsDone: 0, windowsTotal: total, elapsed: 0 },
  );
  const last = updates.at(-1)!;
  assert.deepEqual([last.casesDone, last.windowsDone, last.windowsTotal], [2, total, total]);
  // After case a: its windows; case b's updates continue from there.
  assert.ok(updates.some((u) => u.casesDone === 1 && u.windowsDone === per[0]));
  for (let i = 1; i < updates.length; i++) {
    assert.ok(updates[i]!.windowsDone >= updates[i - 1]!.windowsDone);
    assert.ok(updates[i]!.casesDone >= updates[i - 1]!.casesDone);
    assert.ok(updates[i]!.elapsed >= updates[i - 1]!.elapsed);
  }
  // Without a listener the scores are the same.
  assert.deepEqual(await evaluateCases(constant, cases, PROTOCOL, 2), scores);
});

Deno.test("Progress.evalUpdate: start and end always, throttled in between, with rate and ETA", () => {
  const base: EvalProgress = {
    run: 2,
    runs: 5,
    label: "ua-mt L=16 seed=1337",
    phase: "eval",
    casesDone: 0,
    cases: 20,
    windowsDone: 0,
    windowsTotal: 1128,
    elapsed: 0,
  };
  const quiet: string[] = [];
  const p = new Progress(1e9, false, (s) => quiet.push(s));
  p.evalUpdate(base);
  p.evalUpdate({ ...base, casesDone: 3, windowsDone: 200, elapsed: 100 });
  p.evalUpdate({ ...base, casesDone: 20, windowsDone: 1128, elapsed: 600 });
  assert.deepEqual(quiet, [
    "run 2/5 ua-mt L=16 seed=1337 eval: 20 cases, 1128 sliding windows\n",
    "run 2/5 ua-mt L=16 seed=1337 eval done: 20 cases, 1128 windows in 10:00\n",
  ]);
  const all: string[] = [];
  const q = new Progress(0, false, (s) => all.push(s));
  q.evalUpdate({ ...base, casesDone: 3, windowsDone: 200, elapsed: 100 });
  // 2 windows/s, 928 left: 7:44.
  assert.deepEqual(all, [
    "run 2/5 ua-mt L=16 seed=1337 eval case 4/20 windows 200/1128 2.00 win/s ETA 7:44\n",
  ]);
  const tty: string[] = [];
  new Progress(0, true, (s) => tty.push(s)).evalUpdate({
    ...base,
    phase: "val",
    windowsDone: 564,
    casesDone: 10,
    elapsed: 10,
  });
  assert.ok(tty[0]!.startsWith("\r\x1b[2K[##########..........] run 2/5 "), tty[0]);
  assert.match(tty[0]!, / val case 11\/20 windows 564\/1128 /);
});

Deno.test("a run prints its evaluation progress on stderr", async () => {
  const out = await Deno.makeTempDir({ prefix: "eval_progress_" });
  try {
    const r = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        new URL("../benchmarks/main.ts", import.meta.url).pathname,
        ...["--methods", "supervised", "--labeled", "2", "--seeds", "1", "--iterations", "1"],
        ...["--jobs", "1", "--backend", "cpu", "--out", out, "--no-estimate"],
      ],
      cwd: new URL("..", import.meta.url).pathname,
      env: { OMP_NUM_THREADS: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const err = new TextDecoder().decode(r.stderr);
    assert.equal(r.code, 0, err);
    const start = /run 1\/1 supervised L=2 seed=1 eval: (\d+) cases, (\d+) sliding windows/.exec(
      err,
    );
    assert.ok(start, err);
    assert.match(
      err,
      new RegExp(
        `run 1/1 supervised L=2 seed=1 eval done: ${start[1]} cases, ${
          start[2]
        } windows in \\d+:\\d\\d`,
      ),
    );
    // The start line comes after training's last progress line.
    assert.ok(err.indexOf(" it 1/1 ") < err.indexOf(start[0]), err);
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});
