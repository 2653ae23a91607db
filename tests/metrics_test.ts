import assert from "node:assert/strict";
import {
  asd,
  assd,
  binaryMetrics,
  BRATS_PENALTY,
  dc,
  hd,
  hd95,
  jc,
  percentile,
  ravd,
  surfaceDistancePair,
  surfaceDistances,
} from "../benchmarks/harness/metrics.ts";
import { wmhMetrics } from "../benchmarks/harness/challenge.ts";

const TOL = 1e-6;
function close(got: number, want: number, msg: string, tol = TOL): void {
  assert.ok(Math.abs(got - want) <= tol, `${msg}: expected ${want}, got ${got}`);
}

/** Build a C-order Uint8Array of `shape` with `value` on the box [lo, hi). */
function vol(shape: number[]): Uint8Array {
  return new Uint8Array(shape.reduce((a, b) => a * b, 1));
}
function box(a: Uint8Array, shape: number[], lo: number[], hi: number[], value = 1): Uint8Array {
  const nd = shape.length;
  const n = a.length;
  for (let i = 0; i < n; i++) {
    let r = i;
    let inside = true;
    for (let ax = nd - 1; ax >= 0; ax--) {
      const c = r % shape[ax]!;
      r = Math.floor(r / shape[ax]!);
      if (c < lo[ax]! || c >= hi[ax]!) inside = false;
    }
    if (inside) a[i] = value;
  }
  return a;
}
const sorted = (x: Float64Array) => Array.from(x).sort((p, q) => p - q);
const S2 = Math.SQRT2, S3 = Math.sqrt(3);

interface Vector {
  name: string;
  shape: number[];
  a: Uint8Array;
  b: Uint8Array;
  spacing?: number[];
  connectivity?: number;
  nSurfA?: number;
  nSurfB?: number;
  dAB?: number[];
  dBA?: number[];
  dc: number;
  jc: number;
  hd: number;
  hd95: number;
  asdAB: number;
  asdBA?: number;
  assd040?: number;
  assd052?: number;
  ravd?: number;
}

function mk(shape: number[], boxes: [number[], number[]][]): Uint8Array {
  const a = vol(shape);
  for (const [lo, hi] of boxes) box(a, shape, lo, hi);
  return a;
}

const rep = (v: number, k: number) => new Array<number>(k).fill(v);

const T1a = mk([8, 8, 8], [[[2, 2, 2], [5, 5, 5]]]);
const T1b = mk([8, 8, 8], [[[3, 2, 2], [6, 5, 5]]]);
const T8a = mk([14, 10, 10], [[[1, 2, 2], [7, 8, 8]]]);
const T8b = mk([14, 10, 10], [[[9, 4, 4], [11, 6, 6]]]);

const VECTORS: Vector[] = [
  {
    name: "T1",
    shape: [8, 8, 8],
    a: T1a,
    b: T1b,
    nSurfA: 26,
    nSurfB: 26,
    dAB: [...rep(0, 16), ...rep(1, 10)],
    dBA: [...rep(0, 16), ...rep(1, 10)],
    dc: 0.6666666667,
    jc: 0.5,
    hd: 1,
    hd95: 1,
    asdAB: 0.3846153846,
    asdBA: 0.3846153846,
    assd040: 0.3846153846,
    assd052: 0.3846153846,
    ravd: 0,
  },
  {
    name: "T1s",
    shape: [8, 8, 8],
    a: T1a,
    b: T1b,
    spacing: [2.5, 1, 1],
    dAB: [...rep(0, 16), 1, ...rep(2.5, 9)],
    dBA: [...rep(0, 16), 1, ...rep(2.5, 9)],
    dc: 0.6666666667,
    jc: 0.5,
    hd: 2.5,
    hd95: 2.5,
    asdAB: 0.9038461538,
    asdBA: 0.9038461538,
    assd040: 0.9038461538,
    assd052: 0.9038461538,
    ravd: 0,
  },
  {
    name: "T1c",
    shape: [8, 8, 8],
    a: T1a,
    b: T1b,
    connectivity: 3,
    nSurfA: 26,
    nSurfB: 26,
    dAB: [...rep(0, 16), ...rep(1, 10)],
    dBA: [...rep(0, 16), ...rep(1, 10)],
    dc: 0.6666666667,
    jc: 0.5,
    hd: 1,
    hd95: 1,
    asdAB: 0.3846153846,
    asdBA: 0.3846153846,
    assd040: 0.3846153846,
    assd052: 0.3846153846,
  },
  {
    name: "T2",
    shape: [6, 6, 6],
    a: mk([6, 6, 6], [[[1, 1, 1], [5, 5, 5]]]),
    b: mk([6, 6, 6], [[[2, 2, 2], [4, 4, 4]]]),
    nSurfA: 56,
    nSurfB: 8,
    dAB: [...rep(1, 24), ...rep(S2, 24), ...rep(S3, 8)],
    dBA: rep(1, 8),
    dc: 0.2222222222,
    jc: 0.125,
    hd: 1.7320508076,
    hd95: 1.7320508076,
    asdAB: 1.2820987850,
    asdBA: 1,
    assd040: 1.1410493925,
    assd052: 1.2468364368,
    ravd: 7,
  },
  {
    name: "T3",
    shape: [3, 3, 6],
    a: mk([3, 3, 6], [[[1, 1, 1], [2, 2, 2]]]),
    b: mk([3, 3, 6], [[[1, 1, 4], [2, 2, 5]]]),
    dAB: [3],
    dBA: [3],
    dc: 0,
    jc: 0,
    hd: 3,
    hd95: 3,
    asdAB: 3,
    asdBA: 3,
    assd040: 3,
    assd052: 3,
    ravd: 0,
  },
  {
    name: "T3s",
    shape: [3, 3, 6],
    a: mk([3, 3, 6], [[[1, 1, 1], [2, 2, 2]]]),
    b: mk([3, 3, 6], [[[1, 1, 4], [2, 2, 5]]]),
    spacing: [0.625, 0.625, 2.5],
    dAB: [7.5],
    dBA: [7.5],
    dc: 0,
    jc: 0,
    hd: 7.5,
    hd95: 7.5,
    asdAB: 7.5,
    asdBA: 7.5,
    assd040: 7.5,
    assd052: 7.5,
  },
  {
    name: "T4",
    shape: [12, 12, 12],
    a: mk([12, 12, 12], [[[1, 1, 1], [6, 6, 6]]]),
    b: mk([12, 12, 12], [[[1, 1, 1], [6, 6, 6]], [[10, 10, 10], [11, 11, 11]]]),
    nSurfA: 98,
    nSurfB: 99,
    dc: 0.9960159363,
    jc: 0.9920634921,
    hd: 8.6602540378,
    hd95: 0,
    asdAB: 0,
    asdBA: 0.0874773135,
    assd040: 0.0437386568,
    assd052: 0.0439606804,
    ravd: -0.0079365079,
  },
  {
    name: "T5",
    shape: [3, 3, 3],
    a: mk([3, 3, 3], [[[0, 0, 0], [3, 3, 3]]]),
    b: mk([3, 3, 3], [[[0, 0, 0], [2, 2, 2]]]),
    nSurfA: 26,
    nSurfB: 8,
    dAB: [...rep(0, 7), ...rep(1, 12), ...rep(S2, 6), S3],
    dBA: [...rep(0, 7), 1],
    dc: 0.4571428571,
    jc: 0.2962962963,
    hd: 1.7320508076,
    hd95: 1.4142135624,
    asdAB: 0.8545127762,
    asdBA: 0.125,
    assd040: 0.4897563881,
    assd052: 0.6828627112,
    ravd: 2.375,
  },
  {
    name: "T6",
    shape: [9, 9],
    a: mk([9, 9], [[[1, 1], [6, 6]]]),
    b: mk([9, 9], [[[4, 4], [7, 7]]]),
    nSurfA: 16,
    nSurfB: 8,
    dAB: [
      0,
      0,
      1,
      1,
      1,
      2,
      2,
      3,
      3,
      3,
      3,
      Math.sqrt(10),
      Math.sqrt(10),
      Math.sqrt(13),
      Math.sqrt(
        13,
      ),
      Math.sqrt(18),
    ],
    dBA: [0, 0, 1, 1, 1, 1, 1, S2],
    dc: 0.2352941176,
    jc: 0.1333333333,
    hd: 4.2426406871,
    hd95: 3.6055512755,
    asdAB: 2.2986436599,
    asdBA: 0.8017766953,
    assd040: 1.5502101776,
    assd052: 1.7996880050,
    ravd: 1.7777777778,
  },
  {
    name: "T7",
    shape: [30],
    a: mk([30], [[[0], [10]]]),
    b: mk([30], [[[3], [20]]]),
    nSurfA: 2,
    nSurfB: 2,
    dAB: [3, 6],
    dBA: [3, 10],
    dc: 0.5185185185,
    jc: 0.35,
    hd: 10,
    hd95: 9.4,
    asdAB: 4.5,
    asdBA: 6.5,
    assd040: 5.5,
    assd052: 5.5,
    ravd: -0.4117647059,
  },
  {
    name: "T8",
    shape: [14, 10, 10],
    a: T8a,
    b: T8b,
    nSurfA: 152,
    nSurfB: 8,
    dc: 0,
    jc: 0,
    hd: 8.4852813742,
    hd95: 8.3066238629,
    asdAB: 5.9124093718,
    asdBA: 3.5,
    assd040: 4.7062046859,
    assd052: 5.7917889032,
  },
  {
    name: "T8s",
    shape: [14, 10, 10],
    a: T8a,
    b: T8b,
    spacing: [1.25, 0.625, 0.625],
    dc: 0,
    jc: 0,
    hd: 10.1550480058,
    hd95: 10.0971840134,
    asdAB: 7.0101925847,
    asdBA: 4.375,
  },
  {
    name: "T9",
    shape: [16, 10, 10],
    a: mk([16, 10, 10], [[[1, 2, 2], [7, 8, 8]]]),
    b: mk([16, 10, 10], [[[1, 2, 2], [7, 8, 8]], [[11, 4, 4], [13, 6, 7]]]),
    nSurfA: 152,
    nSurfB: 164,
    dc: 0.9729729730,
    jc: 0.9473684211,
    hd: 6,
    hd95: 0, // pooled; the WMH-style max-of-directed would be 5
    asdAB: 0,
    asdBA: 0.4024390244,
    assd040: 0.2012195122,
    assd052: 0.2088607595,
  },
];

// The expected values come from a numpy/scipy re-implementation of medpy's binary.py (the same
// scipy calls), printed to 10 decimals: agree to 1e-6 (and to the printed precision where the
// print is rounded, 5e-11, is stricter than needed).
for (const v of VECTORS) {
  Deno.test(`medpy vector ${v.name}`, () => {
    const opts = {
      ...(v.spacing ? { spacing: v.spacing } : {}),
      ...(v.connectivity ? { connectivity: v.connectivity } : {}),
    };
    const p = surfaceDistancePair(v.a, v.b, v.shape, opts);
    if (v.nSurfA !== undefined) assert.equal(p.rToG.length, v.nSurfA, "#surface(A)");
    if (v.nSurfB !== undefined) assert.equal(p.gToR.length, v.nSurfB, "#surface(B)");
    if (v.dAB) {
      const got = sorted(p.rToG);
      const want = [...v.dAB].sort((x, y) => x - y);
      assert.equal(got.length, want.length);
      got.forEach((g, i) => close(g, want[i]!, `d(A->B)[${i}]`));
    }
    if (v.dBA) {
      const got = sorted(p.gToR);
      const want = [...v.dBA].sort((x, y) => x - y);
      assert.equal(got.length, want.length);
      got.forEach((g, i) => close(g, want[i]!, `d(B->A)[${i}]`));
    }
    close(dc(v.a, v.b), v.dc, "dc");
    close(jc(v.a, v.b), v.jc, "jc");
    close(hd(v.a, v.b, v.shape, opts), v.hd, "hd");
    close(hd95(v.a, v.b, v.shape, opts), v.hd95, "hd95");
    close(hd95(v.b, v.a, v.shape, opts), v.hd95, "hd95 symmetric");
    close(asd(v.a, v.b, v.shape, opts), v.asdAB, "asd(A,B)");
    if (v.asdBA !== undefined) close(asd(v.b, v.a, v.shape, opts), v.asdBA, "asd(B,A)");
    if (v.assd040 !== undefined) {
      close(assd(v.a, v.b, v.shape, { ...opts, version: "0.4.0" }), v.assd040, "assd 0.4.0");
    }
    if (v.assd052 !== undefined) {
      close(assd(v.a, v.b, v.shape, { ...opts, version: "0.5.2" }), v.assd052, "assd 0.5.2");
    }
    if (v.ravd !== undefined) close(ravd(v.a, v.b), v.ravd, "ravd");
    // the combined entry point agrees
    const m = binaryMetrics(v.a, v.b, v.shape, { ...opts, assdVersion: "0.5.2" });
    close(m.dice, v.dc, "binaryMetrics dice");
    close(m.jaccard, v.jc, "binaryMetrics jaccard");
    close(m.hd95, v.hd95, "binaryMetrics hd95");
    close(m.hd, v.hd, "binaryMetrics hd");
    close(m.asd, v.asdAB, "binaryMetrics asd");
    if (v.assd052 !== undefined) close(m.assd, v.assd052, "binaryMetrics assd");
    assert.equal(m.empty, "none");
  });
}

Deno.test("T9 discriminates pooled hd95 (0) from WMH max-of-directed (5)", () => {
  const v = VECTORS.find((x) => x.name === "T9")!;
  const p = surfaceDistancePair(v.a, v.b, v.shape);
  close(percentile(p.rToG, 95), 0, "p95(A->B)");
  close(percentile(p.gToR, 95), 5, "p95(B->A)");
  const nz = sorted(p.gToR).filter((d) => d > 0);
  assert.deepEqual(nz, [5, 5, 5, 5, 5, 5, 6, 6, 6, 6, 6, 6]);
  // T6 and T7 max-of-directed values differ from the pooled ones
  const t6 = VECTORS.find((x) => x.name === "T6")!;
  const p6 = surfaceDistancePair(t6.a, t6.b, t6.shape);
  close(Math.max(percentile(p6.rToG, 95), percentile(p6.gToR, 95)), 3.7648236284, "T6 maxdir");
  const t7 = VECTORS.find((x) => x.name === "T7")!;
  const p7 = surfaceDistancePair(t7.a, t7.b, t7.shape);
  close(Math.max(percentile(p7.rToG, 95), percentile(p7.gToR, 95)), 9.65, "T7 maxdir");
});

Deno.test("T8 directed p95 values", () => {
  const p = surfaceDistancePair(T8a, T8b, [14, 10, 10]);
  close(percentile(p.rToG, 95), 8.3066238629, "p95(A->B)");
  close(percentile(p.gToR, 95), 4, "p95(B->A)");
});

Deno.test("numpy percentile linear interpolation", () => {
  close(percentile([0, 1, 2, 10], 95), 8.8, "p95");
  close(percentile([10, 2, 1, 0], 95), 8.8, "unsorted");
  close(percentile([3, 3, 6, 10], 95), 9.4, "T7 pooled");
  close(percentile([5], 95), 5, "single");
  assert.ok(Number.isNaN(percentile([], 95)));
});

Deno.test("medpy docstring and unit-test examples", () => {
  const cross = Uint8Array.from([0, 1, 0, 1, 1, 1, 0, 1, 0]);
  const ones = new Uint8Array(9).fill(1);
  close(asd(cross, ones, [3, 3], { connectivity: 1 }), 0, "asd cross c=1");
  close(asd(cross, ones, [3, 3], { connectivity: 2 }), 0.2, "asd cross c=2");
  close(asd([1, 0], [0, 1], [2]), 1, "asd min");
  close(asd([1, 0], [0, 1], [2], { spacing: [2] }), 2, "asd min spacing [2]");
  close(asd([1, 0], [0, 1], [2], { spacing: 2 }), 2, "asd min scalar spacing");
  assert.throws(() => surfaceDistances([0, 0], [0, 1], [2]), /first supplied array/);
  assert.throws(() => surfaceDistances([1, 0], [0, 0], [2]), /second supplied array/);
  assert.throws(() => ravd([1, 0], [0, 0]), /second supplied array/);
});

Deno.test("empty-mask policies", () => {
  const shape = [4, 4, 4];
  const empty = vol(shape);
  const obj = mk(shape, [[[1, 1, 1], [3, 3, 3]]]);
  // reference-code (UA-MT test_util): empty prediction → (0, 0, 0, 0)
  let m = binaryMetrics(empty, obj, shape);
  assert.equal(m.conventions.emptyPolicy, "reference-code");
  assert.equal(m.empty, "prediction");
  assert.deepEqual([m.dice, m.jaccard, m.hd95, m.asd], [0, 0, 0, 0]);
  m = binaryMetrics(obj, empty, shape, { emptyPolicy: "reference-code" });
  assert.equal(m.empty, "reference");
  assert.equal(m.dice, 0);
  assert.ok(Number.isNaN(m.hd95) && Number.isNaN(m.asd));
  // medpy 0.5: both empty → dc = jc = 1; surface metrics raise → NaN
  m = binaryMetrics(empty, empty, shape, { emptyPolicy: "medpy-0.5" });
  assert.equal(m.empty, "both");
  assert.deepEqual([m.dice, m.jaccard], [1, 1]);
  assert.ok(Number.isNaN(m.hd95));
  m = binaryMetrics(empty, obj, shape, { emptyPolicy: "medpy-0.5" });
  assert.deepEqual([m.dice, m.jaccard], [0, 0]);
  assert.ok(Number.isNaN(m.hd95) && Number.isNaN(m.asd));
  assert.equal(dc(empty, empty), 1);
  assert.equal(jc(empty, empty), 1);
  // medpy 0.4: both empty → dc 0, jc ZeroDivisionError (NaN)
  m = binaryMetrics(empty, empty, shape, { emptyPolicy: "medpy-0.4" });
  assert.equal(m.dice, 0);
  assert.ok(Number.isNaN(m.jaccard));
  assert.equal(dc(empty, empty, "0.4"), 0);
  assert.ok(Number.isNaN(jc(empty, empty, "0.4")));
  // brats
  m = binaryMetrics(empty, empty, shape, { emptyPolicy: "brats" });
  assert.deepEqual([m.dice, m.hd95], [1, 0]);
  m = binaryMetrics(obj, empty, shape, { emptyPolicy: "brats" });
  assert.equal(m.dice, 0);
  close(m.hd95, 373.1287, "brats penalty", 1e-4);
  close(BRATS_PENALTY, Math.sqrt(139225), "penalty");
  // lits: distances 0 when either is empty
  m = binaryMetrics(obj, empty, shape, { emptyPolicy: "lits" });
  assert.deepEqual([m.dice, m.hd95, m.assd], [0, 0, 0]);
  // spacing and connectivity are recorded
  m = binaryMetrics(obj, obj, shape, { spacing: 0.625, connectivity: 2 });
  assert.deepEqual(m.conventions.spacing, [0.625, 0.625, 0.625]);
  assert.equal(m.conventions.connectivity, 2);
  assert.deepEqual([m.dice, m.hd95, m.asd], [1, 0, 0]);
});

Deno.test("4.3 WMH-style H95 on T8 with spacing (3, 0.96, 0.96), (z,y,x) arrays", () => {
  // label 1 = T8a (GT), result = T8b
  const w = wmhMetrics(T8a, T8b, [14, 10, 10], { spacing: [3, 0.96, 0.96], sliceAxis: 0 });
  close(w.h95, 24.0958087642, "H95");
  // edge handling option does not matter for objects away from the array edge
  const w2 = wmhMetrics(T8a, T8b, [14, 10, 10], {
    spacing: [3, 0.96, 0.96],
    sliceAxis: 0,
    edgeIsForeground: false,
  });
  close(w2.h95, 24.0958087642, "H95 edge bg");
  // medpy hd95 with the same spacing agrees on this case
  close(hd95(T8a, T8b, [14, 10, 10], { spacing: [3, 0.96, 0.96] }), 24.0958087642, "medpy hd95");
});

Deno.test("4.3 WMH toy lesion metrics (label 2 ignored)", () => {
  const shape = [5, 12, 12];
  const gt = vol(shape);
  const idx = (z: number, y: number, x: number) => (z * 12 + y) * 12 + x;
  box(gt, shape, [1, 1, 1], [2, 3, 3]);
  gt[idx(2, 6, 6)] = 1;
  box(gt, shape, [3, 9, 9], [4, 11, 11]);
  box(gt, shape, [2, 1, 8], [3, 4, 11], 2);
  const res = vol(shape);
  res[idx(1, 2, 2)] = 1;
  res[idx(2, 6, 6)] = 1;
  res[idx(2, 6, 7)] = 1;
  res[idx(0, 6, 1)] = 1;
  res[idx(2, 2, 9)] = 1; // inside label 2: removed
  const w = wmhMetrics(gt, res, shape, { sliceAxis: 0 });
  assert.equal(w.counts.test, 9);
  assert.equal(w.counts.result, 4);
  assert.equal(w.counts.gtLesions, 3);
  close(w.dsc, 0.3076923077, "DSC");
  close(w.avd, 55.5555555556, "AVD");
  close(w.recall, 0.6666666667, "recall");
  close(w.precision, 0.6666666667, "precision");
  close(w.f1, 0.6666666667, "F1");
  // float result binarised at 0.5
  const f = Float32Array.from(res, (v) => v * 0.6);
  close(wmhMetrics(gt, f, shape, { sliceAxis: 0 }).dsc, 0.3076923077, "float DSC");
  // empty result → H95 NaN, recall 0, precision 1
  const e = wmhMetrics(gt, vol(shape), shape, { sliceAxis: 0 });
  assert.ok(Number.isNaN(e.h95));
  assert.equal(e.recall, 0);
  assert.equal(e.precision, 1);
  assert.equal(e.f1, 0);
});
