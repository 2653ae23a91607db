/** The evaluator: sliding window + post-processing + metrics around a method's predict. */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { evaluateCase } from "../benchmarks/harness/evaluate.ts";
import { LA_EVAL } from "../benchmarks/harness/spec.ts";
import { initBackend } from "../methods/nn/backend.ts";
import type { Method } from "../methods/types.ts";
import type { Case } from "../datasets/types.ts";

await initBackend("cpu");

/** A fixed predictor: foreground probability = the image intensity (a known function). */
const intensityPredictor: Method = {
  trainStep: () => ({ loss: 0 }),
  predict: (x) => tf.tidy(() => tf.concat([tf.sub(1, x), x], -1) as tf.Tensor5D),
  state: () => ({ tensors: {}, extra: {} }),
  restore: () => {},
  dispose: () => {},
};

function caseOf(img: number[], lab: number[], shape: [number, number, number]): Case {
  return {
    id: "c",
    image: { data: Float32Array.from(img), shape, channels: 1, spacing: [1, 1, 1] },
    label: { data: Uint8Array.from(lab), shape, spacing: [1, 1, 1] },
  };
}

Deno.test("evaluate: Dice from a known predictor; ignored-label voxels leave the prediction", async () => {
  // 1x1x8 volume: prediction = image > 0.5 = voxels 0..3; reference label 1 on 0..1, label 2 on 2..3.
  const shape: [number, number, number] = [1, 1, 8];
  const c = caseOf([1, 1, 1, 1, 0, 0, 0, 0], [1, 1, 2, 2, 0, 0, 0, 0], shape);
  const protocol = {
    ...LA_EVAL,
    patch: [1, 1, 8] as [number, number, number],
    strideXY: 1,
    strideZ: 8,
    lcc: false,
    metrics: ["dice" as const],
  };
  const plain = await evaluateCase(intensityPredictor, c, protocol, 2);
  assert.equal(plain.values.dice, (2 * 2) / (4 + 2)); // label 2 counted as a false positive
  const ignored = await evaluateCase(intensityPredictor, c, protocol, 2, 2);
  assert.equal(ignored.values.dice, 1); // WMH convention: label-2 voxels removed first
});

Deno.test("evaluate: WMH challenge metrics (AVD, lesion recall / F1) as protocol metrics", async () => {
  // 1x1x12: result lesions {0,1} and {7}; GT lesions {0,1} and {4,5,6}; label 2 at voxel 10
  // (predicted there too, and ignored as the challenge does).
  const shape: [number, number, number] = [1, 1, 12];
  const c = caseOf(
    [1, 1, 0, 0, 0, 0, 0, 1, 0, 0, 1, 0],
    [1, 1, 0, 0, 1, 1, 1, 0, 0, 0, 2, 0],
    shape,
  );
  const protocol = {
    ...LA_EVAL,
    patch: [1, 1, 12] as [number, number, number],
    strideXY: 1,
    strideZ: 12,
    lcc: false,
    metrics: ["dice" as const, "avd" as const, "lesionRecall" as const, "lesionF1" as const],
  };
  const m = await evaluateCase(intensityPredictor, c, protocol, 2, 2);
  assert.equal(m.values.dice, (2 * 2) / (5 + 3));
  assert.equal(m.values.avd, (Math.abs(5 - 3) / 5) * 100); // |V_gt - V_result| / V_gt, %
  assert.equal(m.values.lesionRecall, 1 / 2); // GT lesion {4,5,6} missed
  assert.equal(m.values.lesionF1, 0.5); // precision 1/2 (result blob {7} is false)
  assert.equal(m.values.hd95, undefined); // only what the protocol asks for
});
