/**
 * Memory over a long evaluation stays flat (issue 22): thousands of sliding windows through the
 * tfjs predict path, which allocates new typed arrays for every activation of every window,
 * with the harness's memory guard bounding what dead buffers may accumulate (memory.ts).
 * The bound is lowered to 32 MiB here so that V8's own, much later collections would break it.
 * @module
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { initBackend } from "../methods/nn/backend.ts";
import { getMethod } from "../methods/mod.ts";
import { resolveHyperParams } from "../methods/types.ts";
import { generateCase } from "../datasets/synthetic.ts";
import { caseWindows, evaluateCases } from "../benchmarks/harness/evaluate.ts";
import { MemoryGuard, memoryGuard, useMemoryGuard } from "../benchmarks/harness/memory.ts";
import { setFusedInference } from "../methods/nn/native/infer.ts";
import type { EvalProtocol } from "../benchmarks/harness/spec.ts";

const MB = 2 ** 20;
const BOUND_MB = 32;
// The tfjs path, not the fused forward (module state: the environment is shared by every test
// file of a parallel `deno test` process).
setFusedInference(false);

const PROTOCOL: EvalProtocol = {
  window: "ua-mt",
  patch: [16, 16, 16],
  strideXY: 4,
  strideZ: 4,
  gaussian: false,
  lcc: false,
  units: "voxel",
  emptyPolicy: "reference-code",
  metrics: ["dice"],
};

Deno.test("evaluation memory: flat over 4 cases of 729 windows each (tensors, ArrayBuffers, RSS)", async () => {
  await initBackend("cpu");
  const def = getMethod("supervised");
  const method = def.create(resolveHyperParams(def, { nFilters: 4 }), {
    initSeed: 1,
    inChannels: 1,
    nClasses: 2,
  });
  try {
    const opts = {
      shape: [48, 48, 48] as [number, number, number],
      seed: 0,
      noise: 0.35,
      bias: 0.3,
    };
    const cases = [0, 1, 2, 3].map((k) => generateCase(k, opts));
    assert.equal(caseWindows(cases[0]!.image.shape, PROTOCOL), 729);
    const guard = useMemoryGuard(new MemoryGuard(BOUND_MB * MB));
    assert.equal(memoryGuard(), guard);
    guard.collect();
    const base = Deno.memoryUsage();
    const tensors = tf.memory().numTensors;
    let maxExternal = 0;
    const rssAfterCase: number[] = [];
    let lastDone = 0;
    await evaluateCases(method, cases, PROTOCOL, 2, undefined, (u) => {
      const m = Deno.memoryUsage();
      maxExternal = Math.max(maxExternal, m.external);
      if (u.casesDone > lastDone) {
        lastDone = u.casesDone;
        rssAfterCase.push(m.rss);
      }
    });
    assert.equal(rssAfterCase.length, 4);
    assert.equal(tf.memory().numTensors, tensors, "tensors leaked");
    // 2,916 windows at ~0.5 MB of activations each would be ~1.4 GB of dead buffers unguarded.
    assert.ok(guard.collections >= 10, `only ${guard.collections} collections`);
    assert.ok(
      maxExternal <= base.external + (BOUND_MB + 16) * MB,
      `ArrayBuffer memory peaked ${
        ((maxExternal - base.external) / MB).toFixed(0)
      } MB over the start`,
    );
    // Flat per case: the last case ends within 48 MB of the first.
    const growth = (rssAfterCase[3]! - rssAfterCase[0]!) / MB;
    assert.ok(growth < 48, `RSS grew ${growth.toFixed(0)} MB from case 1 to case 4`);
  } finally {
    method.dispose();
  }
});
