import assert from "node:assert/strict";
import { labelComponents, largestConnectedComponent } from "../benchmarks/harness/postprocess.ts";
import { binaryMetrics } from "../benchmarks/harness/metrics.ts";
import { wmhMetrics } from "../benchmarks/harness/challenge.ts";

const idx = (shape: number[], x: number, y: number, z: number) =>
  (x * shape[1]! + y) * shape[2]! + z;

function fill(m: Uint8Array, shape: number[], lo: number[], hi: number[]): void {
  for (let x = lo[0]!; x < hi[0]!; x++) {
    for (let y = lo[1]!; y < hi[1]!; y++) {
      for (let z = lo[2]!; z < hi[2]!; z++) m[idx(shape, x, y, z)] = 1;
    }
  }
}

Deno.test("components touching by an edge and by a corner: 26 merges, 18 partly, 6 not", () => {
  const shape = [10, 10, 10];
  const m = new Uint8Array(1000);
  fill(m, shape, [0, 0, 0], [3, 3, 3]); // A: 27 voxels, corner (2,2,2)
  fill(m, shape, [3, 3, 0], [5, 5, 3]); // B: 12 voxels, shares only the edge x=2→3,y=2→3 (z 0..2)
  fill(m, shape, [5, 5, 3], [6, 6, 4]); // C: 1 voxel, touches B's corner (4,4,2) only
  let c = labelComponents(m, shape); // default full = 26
  assert.equal(c.count, 1);
  c = labelComponents(m, shape, 2); // 18: edge yes, corner no
  assert.equal(c.count, 2);
  c = labelComponents(m, shape, 1); // 6: none
  assert.equal(c.count, 3);
  assert.deepEqual(Array.from(c.sizes.slice(1)).sort((a, b) => a - b), [1, 12, 27]);
  // ids in raster order of first voxel: A (0,0,0) is 1
  assert.equal(c.labels[0], 1);
  // LCC
  assert.deepEqual(largestConnectedComponent(m, shape), m);
  const l6 = largestConnectedComponent(m, shape, { connectivity: 1 });
  assert.equal(l6.reduce((a, v) => a + v, 0), 27);
  assert.equal(l6[idx(shape, 3, 3, 0)], 0);
  assert.equal(l6[idx(shape, 2, 2, 2)], 1);
});

Deno.test("LCC ties go to the first component in raster order; empty input", () => {
  const shape = [3, 3, 3];
  const m = new Uint8Array(27);
  m[idx(shape, 2, 2, 2)] = 1;
  m[idx(shape, 0, 0, 0)] = 1;
  const l = largestConnectedComponent(m, shape);
  assert.equal(l[0], 1);
  assert.equal(l[26], 0);
  assert.ok(largestConnectedComponent(new Uint8Array(27), shape).every((v) => v === 0));
  assert.throws(() => largestConnectedComponent(new Uint8Array(27), shape, { onEmpty: "throw" }));
  // a U-shape whose arms join late in raster order is still one component
  const s2 = [5, 5, 1];
  const u = new Uint8Array(25);
  for (let x = 0; x < 5; x++) u[x * 5] = u[x * 5 + 4] = 1;
  for (let y = 0; y < 5; y++) u[20 + y] = 1;
  assert.equal(labelComponents(u, s2, 1).count, 1);
});

function ellipsoid(
  shape: [number, number, number],
  c: [number, number, number],
  r: [number, number, number],
): Uint8Array {
  const [X, Y, Z] = shape;
  const m = new Uint8Array(X * Y * Z);
  for (let x = 0; x < X; x++) {
    for (let y = 0; y < Y; y++) {
      for (let z = 0; z < Z; z++) {
        const d = ((x - c[0]) / r[0]) ** 2 + ((y - c[1]) / r[1]) ** 2 + ((z - c[2]) / r[2]) ** 2;
        if (d <= 1) m[(x * Y + y) * Z + z] = 1;
      }
    }
  }
  return m;
}

Deno.test("timing: all metrics on a 256x256x88 pair with large objects (printed, not asserted)", () => {
  const shape: [number, number, number] = [256, 256, 88];
  const gt = ellipsoid(shape, [128, 128, 44], [90, 80, 35]);
  const pred = ellipsoid(shape, [132, 125, 45], [86, 84, 33]);
  pred[(10 * 256 + 10) * 88 + 10] = 1; // a stray voxel
  let t = performance.now();
  const m = binaryMetrics(pred, gt, shape);
  const tMetrics = performance.now() - t;
  t = performance.now();
  const ms = binaryMetrics(pred, gt, shape, { spacing: [0.625, 0.625, 0.625] });
  const tMetricsSp = performance.now() - t;
  t = performance.now();
  const lcc = largestConnectedComponent(pred, shape);
  const tLcc = performance.now() - t;
  t = performance.now();
  const w = wmhMetrics(gt, pred, shape, { spacing: [0.96, 0.96, 3] });
  const tWmh = performance.now() - t;
  // deno-lint-ignore no-console
  console.log(
    `256x256x88 (|gt|=${gt.reduce((a, v) => a + v, 0)}): binaryMetrics ${tMetrics.toFixed(0)} ms ` +
      `(dice ${m.dice.toFixed(4)} hd95 ${m.hd95.toFixed(3)} asd ${m.asd.toFixed(3)} hd ${
        m.hd.toFixed(2)
      }), with spacing ${tMetricsSp.toFixed(0)} ms (hd95 ${ms.hd95.toFixed(3)} mm), ` +
      `LCC ${tLcc.toFixed(0)} ms, WMH ${tWmh.toFixed(0)} ms (H95 ${w.h95.toFixed(3)})`,
  );
  assert.equal(lcc[(10 * 256 + 10) * 88 + 10], 0);
  assert.ok(m.hd > 50); // the stray voxel dominates hd
});
