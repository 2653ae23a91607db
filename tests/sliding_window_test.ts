import assert from "node:assert/strict";
import {
  centralPad,
  gaussianImportanceMap,
  masslStarts,
  planWindows,
  type PredictFn,
  slidingWindowInference,
  uaMtStarts,
} from "../benchmarks/harness/sliding_window.ts";

Deno.test("4.4 UA-MT window positions (LA, patch 112x112x80, stride 18/4)", () => {
  const patch = [112, 112, 80] as const;
  const stride = [18, 18, 4] as const;
  let p = planWindows([183, 140, 88], patch, "ua-mt", stride);
  assert.deepEqual(p.pad, [[0, 0], [0, 0], [0, 0]]);
  assert.deepEqual(p.starts, [[0, 18, 36, 54, 71], [0, 18, 28], [0, 4, 8]]);
  assert.equal(p.count, 45);
  p = planWindows([148, 141, 88], patch, "ua-mt", stride);
  assert.deepEqual(p.starts, [[0, 18, 36], [0, 18, 29], [0, 4, 8]]);
  assert.equal(p.count, 27);
  p = planWindows([244, 147, 88], patch, "ua-mt", stride);
  assert.deepEqual(p.starts, [[0, 18, 36, 54, 72, 90, 108, 126, 132], [0, 18, 35], [0, 4, 8]]);
  assert.equal(p.count, 81);
});

Deno.test("4.4 UA-MT window positions (patch 96^3, stride 64/64) and padding", () => {
  const patch = [96, 96, 96] as const;
  const stride = [64, 64, 64] as const;
  assert.equal(planWindows([96, 96, 96], patch, "ua-mt", stride).count, 1);
  let p = planWindows([140, 170, 130], patch, "ua-mt", stride);
  assert.deepEqual(p.starts, [[0, 44], [0, 64, 74], [0, 34]]);
  assert.equal(p.count, 12);
  p = planWindows([80, 200, 150], patch, "ua-mt", stride);
  assert.deepEqual(p.pad, [[8, 8], [0, 0], [0, 0]]);
  assert.deepEqual(p.paddedShape, [96, 200, 150]);
  assert.deepEqual(p.starts, [[0], [0, 64, 104], [0, 54]]);
  assert.equal(p.count, 6);
  assert.deepEqual(centralPad(77, 80), [1, 2]);
  assert.deepEqual(centralPad(80, 80), [0, 0]);
  assert.deepEqual(uaMtStarts(96, 96, 64), [0]);
});

Deno.test("MASSL centred 50%-overlap window positions", () => {
  // BraTS 155 slices, patch 32: inter 16, n = int(123/16 + 1) = 8, free = 11, start 5
  assert.deepEqual(masslStarts(155, 32), [5, 21, 37, 53, 69, 85, 101, 117]);
  // 240 with patch 128: inter 64, n = int(112/64 + 1) = 2, free = 48, start 24
  assert.deepEqual(masslStarts(240, 128), [24, 88]);
  assert.deepEqual(masslStarts(128, 128), [0]);
  const p = planWindows([155, 240, 240], [32, 128, 128], "massl");
  assert.equal(p.count, 8 * 2 * 2);
});

/** Image whose 3 channels encode (x+1, y+1, z+1); padded voxels read 0. */
function coordImage(shape: [number, number, number]) {
  const [X, Y, Z] = shape;
  const data = new Float32Array(X * Y * Z * 3);
  for (let x = 0; x < X; x++) {
    for (let y = 0; y < Y; y++) {
      for (let z = 0; z < Z; z++) {
        const o = ((x * Y + y) * Z + z) * 3;
        data[o] = x + 1;
        data[o + 1] = y + 1;
        data[o + 2] = z + 1;
      }
    }
  }
  return { data, shape, channels: 3 };
}

const f1 = (x: number, y: number, z: number) => ((x * 7 + y * 3 + z) % 11) / 16;

/** predict: class-1 probability = f1 of the voxel's global position (decoded from the input). */
const positional: PredictFn = (batch, [b, px, py, pz, c]) => {
  assert.equal(c, 3);
  const out = new Float32Array(b * px * py * pz * 2);
  for (let v = 0; v < b * px * py * pz; v++) {
    const x = batch[v * 3]! - 1, y = batch[v * 3 + 1]! - 1, z = batch[v * 3 + 2]! - 1;
    const p = x < 0 ? 0.5 : f1(x, y, z); // padding: any value, cropped anyway
    out[v * 2] = 1 - p;
    out[v * 2 + 1] = p;
  }
  return out;
};

Deno.test("stitched probabilities equal a known function of position (with padding, batching)", async () => {
  for (const mode of ["ua-mt", "massl"] as const) {
    for (const batchSize of [1, 3]) {
      const shape: [number, number, number] = [13, 6, 9]; // y smaller than the patch: padded
      const img = coordImage(shape);
      const r = await slidingWindowInference(img, (b, s) => Promise.resolve(positional(b, s)), {
        patch: [8, 8, 4],
        stride: [3, 3, 2],
        numClasses: 2,
        mode,
        batchSize,
      });
      assert.deepEqual(r.shape, shape);
      for (let x = 0; x < 13; x++) {
        for (let y = 0; y < 6; y++) {
          for (let z = 0; z < 9; z++) {
            const v = (x * 6 + y) * 9 + z;
            // MASSL leaves uncovered voxels at 0
            const covered = mode === "ua-mt" || isCovered(r.plan, x, y, z);
            const want = covered ? f1(x, y, z) : 0;
            assert.equal(r.probs[v * 2 + 1], Math.fround(want), `${mode} (${x},${y},${z})`);
            assert.equal(r.probs[v * 2], Math.fround(covered ? 1 - want : 0));
            assert.equal(r.labels[v], want > 1 - want ? 1 : 0);
          }
        }
      }
    }
  }
});

function isCovered(
  plan: ReturnType<typeof planWindows>,
  x: number,
  y: number,
  z: number,
  patch = [8, 8, 4],
): boolean {
  const c = [x, y, z];
  return [0, 1, 2].every((a) =>
    plan.starts[a]!.some((s) => {
      const q = c[a]! + plan.pad[a]![0];
      return q >= s && q < s + patch[a]!;
    })
  );
}

Deno.test("window-dependent outputs are averaged over overlapping windows (UA-MT, Gaussian)", async () => {
  const shape: [number, number, number] = [11, 7, 10];
  const patch = [6, 7, 4] as const;
  const stride = [2, 2, 3] as const;
  const img = coordImage(shape);
  const plan = planWindows(shape, patch, "ua-mt", stride);
  const g = gaussianImportanceMap(patch);
  for (const weighting of ["uniform", "gaussian"] as const) {
    let calls = 0;
    // each window predicts a constant = its index in UA-MT loop order (class 1), 0 elsewhere
    const predict: PredictFn = (_b, [b, px, py, pz]) => {
      const out = new Float32Array(b * px * py * pz * 2);
      for (let k = 0; k < b; k++) {
        const id = calls++;
        for (let v = 0; v < px * py * pz; v++) out[(k * px * py * pz + v) * 2 + 1] = id;
      }
      return out;
    };
    const r = await slidingWindowInference(img, predict, {
      patch,
      stride,
      numClasses: 2,
      weighting,
      batchSize: 4,
    });
    assert.equal(calls, plan.count);
    // brute-force expectation
    const num = new Float64Array(11 * 7 * 10), den = new Float64Array(11 * 7 * 10);
    let id = 0;
    for (const sx of plan.starts[0]) {
      for (const sy of plan.starts[1]) {
        for (const sz of plan.starts[2]) {
          for (let i = 0; i < patch[0]; i++) {
            for (let j = 0; j < patch[1]; j++) {
              for (let l = 0; l < patch[2]; l++) {
                const w = weighting === "gaussian" ? g[(i * patch[1] + j) * patch[2] + l]! : 1;
                const v = ((sx + i) * 7 + sy + j) * 10 + sz + l;
                num[v]! += w * id;
                den[v]! += w;
              }
            }
          }
          id++;
        }
      }
    }
    for (let v = 0; v < num.length; v++) {
      const want = num[v]! / den[v]!;
      assert.ok(
        Math.abs(r.probs[v * 2 + 1]! - want) <= 1e-6 * Math.max(1, want),
        `${weighting} v=${v}: ${r.probs[v * 2 + 1]} vs ${want}`,
      );
    }
  }
});

Deno.test("Gaussian importance map (nnU-Net v1, sigma = patch/8)", () => {
  const patch = [16, 12, 8] as const;
  const g = gaussianImportanceMap(patch);
  const at = (i: number, j: number, l: number) => g[(i * 12 + j) * 8 + l]!;
  assert.equal(at(8, 6, 4), 1); // centre = patch // 2, scaled to max 1
  // separable: w(i,j,l) = e^{-(i-8)^2/(2·2^2)} · e^{-(j-6)^2/(2·1.5^2)} · e^{-(l-4)^2/2}
  const want = Math.exp(-9 / 8) * Math.exp(-4 / 4.5) * Math.exp(-1 / 2);
  assert.ok(Math.abs(at(5, 4, 3) - want) < 1e-6);
  // symmetric about the centre where both mirror positions exist
  assert.ok(Math.abs(at(7, 5, 3) - at(9, 7, 5)) < 1e-7);
  // strictly positive (zeros replaced by the smallest non-zero value)
  let min = Infinity, sum = 0;
  for (const v of g) {
    min = Math.min(min, v);
    sum += v;
  }
  assert.ok(min > 0);
  // sum equals the product of the 1-D sums (separable, nothing truncated at 4 sigma here)
  const s1 = (p: number) => {
    let s = 0;
    const c = Math.floor(p / 2), sg = p / 8;
    for (let i = 0; i < p; i++) s += Math.exp(-((i - c) ** 2) / (2 * sg * sg));
    return s;
  };
  assert.ok(Math.abs(sum - s1(16) * s1(12) * s1(8)) < 1e-3);
});

Deno.test("Gaussian weighting of a constant prediction returns the constant", async () => {
  const shape: [number, number, number] = [20, 9, 13];
  const r = await slidingWindowInference(
    { data: new Float32Array(20 * 9 * 13), shape, channels: 1 },
    (_b, [b, px, py, pz]) => {
      const out = new Float32Array(b * px * py * pz * 3);
      for (let v = 0; v < b * px * py * pz; v++) out.set([0.25, 0.125, 0.625], v * 3);
      return out;
    },
    { patch: [8, 8, 8], stride: [5, 5, 5], numClasses: 3, weighting: "gaussian" },
  );
  for (let v = 0; v < 20 * 9 * 13; v++) {
    assert.ok(Math.abs(r.probs[v * 3]! - 0.25) < 1e-6);
    assert.ok(Math.abs(r.probs[v * 3 + 2]! - 0.625) < 1e-6);
    assert.equal(r.labels[v], 2);
  }
});

Deno.test("threshold label rule (DTC score_map > 0.5) and ties (argmax → class 0)", async () => {
  const shape: [number, number, number] = [4, 4, 4];
  const probs = [0.5, 0.5];
  const predict: PredictFn = (_b, [b, px, py, pz]) => {
    const out = new Float32Array(b * px * py * pz * 2);
    for (let v = 0; v < b * px * py * pz; v++) out.set(probs, v * 2);
    return out;
  };
  const img = { data: new Float32Array(64), shape, channels: 1 };
  const opts = { patch: [4, 4, 4] as const, stride: [1, 1, 1] as const, numClasses: 2 };
  let r = await slidingWindowInference(img, predict, opts);
  assert.ok(r.labels.every((l) => l === 0));
  r = await slidingWindowInference(img, predict, {
    ...opts,
    label: { kind: "threshold", channel: 1, threshold: 0.5 },
  });
  assert.ok(r.labels.every((l) => l === 0));
  probs[1] = 0.5000001;
  r = await slidingWindowInference(img, predict, {
    ...opts,
    label: { kind: "threshold", channel: 1, threshold: 0.5 },
  });
  assert.ok(r.labels.every((l) => l === 1));
});
