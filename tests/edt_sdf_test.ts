import assert from "node:assert/strict";
import { distanceToSeeds, edt, edtSquared } from "../methods/nn/edt.ts";
import { computeSdf, computeSdfSingle, innerBoundary } from "../methods/nn/sdf.ts";

function close(a: number, b: number, tol = 1e-9, msg = ""): void {
  assert.ok(Math.abs(a - b) <= tol, `${msg} expected ${b}, got ${a}`);
}

/** Brute-force squared EDT for cross-checking. */
function bruteSq(mask: Uint8Array, shape: number[], spacing: number[]): Float64Array {
  const n = mask.length;
  const nd = shape.length;
  const coords = (i: number): number[] => {
    const c = new Array<number>(nd).fill(0);
    for (let a = nd - 1; a >= 0; a--) {
      c[a] = i % shape[a]!;
      i = Math.floor(i / shape[a]!);
    }
    return c;
  };
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    if (mask[i] === 0) continue;
    const ci = coords(i);
    let best = Infinity;
    for (let j = 0; j < n; j++) {
      if (mask[j] !== 0) continue;
      const cj = coords(j);
      let d = 0;
      for (let a = 0; a < nd; a++) d += ((ci[a]! - cj[a]!) * spacing[a]!) ** 2;
      if (d < best) best = d;
    }
    out[i] = best;
  }
  return out;
}

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

Deno.test("edt: 5x5x5 cube of ones inside 7x7x7 zeros, hand-computed", () => {
  const shape = [7, 7, 7];
  const m = new Uint8Array(343);
  for (let x = 1; x < 6; x++) {
    for (let y = 1; y < 6; y++) for (let z = 1; z < 6; z++) m[x * 49 + y * 7 + z] = 1;
  }
  const d = edt(m, shape);
  // distance = min over axes of min(c, 6-c) for a voxel inside the cube
  for (let x = 0; x < 7; x++) {
    for (let y = 0; y < 7; y++) {
      for (let z = 0; z < 7; z++) {
        const i = x * 49 + y * 7 + z;
        const want = m[i] ? Math.min(x, 6 - x, y, 6 - y, z, 6 - z) : 0;
        close(d[i]!, want, 1e-12, `(${x},${y},${z})`);
      }
    }
  }
  close(d[3 * 49 + 3 * 7 + 3]!, 3);
  // anisotropic: spacing (2,1,0.5): centre is 3 voxels from the edge on every axis → 3*0.5
  const da = edt(m, shape, { spacing: [2, 1, 0.5] });
  close(da[3 * 49 + 3 * 7 + 3]!, 1.5);
  close(da[1 * 49 + 3 * 7 + 3]!, 1.5); // x=1: 1 voxel * 2 = 2 vs z: 1.5
  close(da[3 * 49 + 1 * 7 + 3]!, 1); // y=1: 1
});

Deno.test("edt: single background voxel gives Euclidean norm, with spacing", () => {
  const shape = [5, 6, 7];
  const m = new Uint8Array(5 * 6 * 7).fill(1);
  m[0] = 0;
  const d = edt(m, shape, { spacing: [1.5, 0.5, 2] });
  close(d[4 * 42 + 5 * 7 + 6]!, Math.hypot(4 * 1.5, 5 * 0.5, 6 * 2));
  close(d[2 * 42 + 3 * 7 + 1]!, Math.hypot(3, 1.5, 2));
  // distanceToSeeds is the complement
  const seeds = new Uint8Array(5 * 6 * 7);
  seeds[0] = 1;
  const ds = distanceToSeeds(seeds, shape, { spacing: [1.5, 0.5, 2] });
  assert.deepEqual(ds, d);
});

Deno.test("edt: random masks 1-D/2-D/3-D/4-D match brute force (isotropic and anisotropic)", () => {
  const rnd = lcg(7);
  const cases: [number[], number[]][] = [
    [[17], [1]],
    [[17], [0.3]],
    [[9, 11], [1, 1]],
    [[9, 11], [2.5, 0.7]],
    [[6, 7, 8], [1, 1, 1]],
    [[6, 7, 8], [0.625, 0.625, 2.5]],
    [[3, 4, 5, 3], [1, 2, 1, 3]],
  ];
  for (const [shape, spacing] of cases) {
    for (const p of [0.05, 0.5, 0.95]) {
      const n = shape.reduce((a, b) => a * b, 1);
      const m = new Uint8Array(n);
      for (let i = 0; i < n; i++) m[i] = rnd() < p ? 1 : 0;
      m[Math.floor(rnd() * n)] = 0; // at least one background
      const got = edtSquared(m, shape, { spacing });
      const want = bruteSq(m, shape, spacing);
      for (let i = 0; i < n; i++) close(got[i]!, want[i]!, 1e-9, `${shape} ${spacing} i=${i}`);
    }
  }
});

Deno.test("edt: no background → +Infinity everywhere; all background → zeros", () => {
  assert.ok(edt(new Uint8Array(8).fill(1), [2, 4]).every((v) => v === Infinity));
  assert.ok(edt(new Uint8Array(8), [2, 4]).every((v) => v === 0));
  assert.throws(() => edt(new Uint8Array(8), [3, 3]));
  assert.throws(() => edt(new Uint8Array(9), [3, 3], { spacing: [1] }));
});

Deno.test("innerBoundary: skimage find_boundaries(mode='inner') semantics", () => {
  // 5x5 2-D: 3x3 block at [1:4,1:4] → ring of 8, centre not boundary
  const shape = [5, 5];
  const m = new Uint8Array(25);
  for (let x = 1; x < 4; x++) for (let y = 1; y < 4; y++) m[x * 5 + y] = 1;
  const b = innerBoundary(m, shape);
  const want = new Uint8Array(25);
  for (let x = 1; x < 4; x++) {
    for (let y = 1; y < 4; y++) {
      want[x * 5 + y] = x === 2 && y === 2 ? 0 : 1;
    }
  }
  assert.deepEqual(b, want);
  // array edge is not boundary (reflect padding): a full array has no inner boundary
  assert.ok(innerBoundary(new Uint8Array(27).fill(1), [3, 3, 3]).every((v) => v === 0));
  // block touching the edge: only voxels with an in-array bg face-neighbour
  const e = new Uint8Array(25);
  for (let x = 0; x < 3; x++) for (let y = 0; y < 5; y++) e[x * 5 + y] = 1; // rows 0..2 full
  const be = innerBoundary(e, shape);
  for (let i = 0; i < 25; i++) assert.equal(be[i], Math.floor(i / 5) === 2 ? 1 : 0);
  // connectivity 1 vs 2: diagonal-only background neighbour
  const d = new Uint8Array(9).fill(1);
  d[0] = 0;
  assert.equal(innerBoundary(d, [3, 3])[4], 0);
  assert.equal(innerBoundary(d, [3, 3], 2)[4], 1);
});

Deno.test("computeSdf: DTC compute_sdf on a 5x5x5 cube in 9x9x9", () => {
  const shape = [9, 9, 9];
  const m = new Uint8Array(729);
  for (let x = 2; x < 7; x++) {
    for (let y = 2; y < 7; y++) for (let z = 2; z < 7; z++) m[x * 81 + y * 9 + z] = 1;
  }
  const s = computeSdfSingle(m, shape);
  // posdis: centre 3 (max), min 0. negdis: corner (0,0,0) is sqrt(2^2*3)=sqrt(12) (max), min 0.
  const c = 4 * 81 + 4 * 9 + 4;
  close(s[c]!, -1, 1e-6); // deepest inside
  close(s[0]!, 1, 1e-6); // farthest outside corner
  close(s[2 * 81 + 2 * 9 + 2]!, 0); // boundary voxel
  close(s[3 * 81 + 3 * 9 + 3]!, -2 / 3, 1e-6); // inside, posdis 2
  close(s[1 * 81 + 4 * 9 + 4]!, 1 / Math.sqrt(12), 1e-6); // outside, negdis 1
  close(s[0 * 81 + 4 * 9 + 4]!, 2 / Math.sqrt(12), 1e-6);
  // the inner boundary is the 5^3 - 3^3 = 98 shell
  assert.equal(innerBoundary(m, shape).reduce((a, v) => a + v, 0), 98);
  // batch: sample 0 empty → zeros, sample 1 the cube, sample 2 full → zeros
  const batch = new Uint8Array(3 * 729);
  batch.set(m, 729);
  batch.fill(1, 2 * 729);
  const sb = computeSdf(batch, 3, shape);
  assert.ok(sb.subarray(0, 729).every((v) => v === 0));
  assert.deepEqual(sb.subarray(729, 1458), s);
  assert.ok(sb.subarray(1458).every((v) => v === 0));
  // anisotropic spacing changes the normalisers: (2,1,1): posdis max at centre = min(3*2,3,3)=3
  const sa = computeSdfSingle(m, shape, { spacing: [2, 1, 1] });
  close(sa[c]!, -1, 1e-6);
  close(sa[3 * 81 + 4 * 9 + 4]!, -1, 1e-6); // x=3: posdis min(2*2, 3, 3) = 3
  close(sa[4 * 81 + 3 * 9 + 4]!, -2 / 3, 1e-6); // y=3: posdis min(3*2, 2, 3) = 2
});
