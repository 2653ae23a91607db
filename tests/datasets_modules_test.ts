import assert from "node:assert/strict";
import { DATASETS, getDataset } from "../datasets/mod.ts";
import { canonicalJson } from "../methods/nn/canonical.ts";
import { generateCase, synthetic } from "../datasets/synthetic.ts";
import { writeNifti } from "../datasets/io/nifti.ts";
import { main as checkMain } from "../datasets/check.ts";
import {
  brats18FoldPositions,
  litsDefaultSplit,
  splitHash,
  wmhFoldPositions,
} from "../datasets/splits.ts";
import b18 from "../datasets/splits/brats18.json" with { type: "json" };
import b19 from "../datasets/splits/brats19.json" with { type: "json" };
import wmhJ from "../datasets/splits/wmh.json" with { type: "json" };
import litsJ from "../datasets/splits/lits.json" with { type: "json" };

Deno.test("registry holds every dataset with obtain text", () => {
  assert.deepEqual(DATASETS.map((d) => d.id), [
    "la",
    "brats19",
    "brats18",
    "wmh",
    "lits",
    "synthetic",
  ]);
  for (const d of DATASETS) assert.ok(d.obtain.length > 20 && getDataset(d.id) === d);
  assert.throws(() => getDataset("nope"), /unknown dataset 'nope'/);
});

Deno.test("committed split files: sizes, disjointness, and equality with their recipes", () => {
  const s19 = b19.splits[0]!;
  assert.deepEqual([s19.train.length, s19.val.length, s19.test.length], [250, 25, 60]);
  assert.equal(s19.train[0], "BraTS19_TCIA02_370_1");
  assert.equal(new Set([...s19.train, ...s19.val, ...s19.test]).size, 335);
  assert.equal(b18.splits.length, 5);
  b18.splits.forEach((s, k) => {
    const f = brats18FoldPositions(k + 1);
    const r = (a: number[]) => a.map((i) => `HGG/#${i}`);
    assert.deepEqual(s, {
      name: `fold${k + 1}`,
      train: r(f.train),
      val: r(f.val),
      test: r(f.test),
    });
  });
  wmhJ.splits.forEach((s, k) => {
    assert.deepEqual(s, { name: `fold${k + 1}`, ...wmhFoldPositions(k + 1) });
    assert.deepEqual([s.train.length, s.val.length, s.test.length], [30, 10, 20]);
    for (const site of ["GE3T", "Singapore", "Utrecht"]) {
      assert.equal(s.train.filter((x) => x.startsWith(site)).length, 10);
      assert.equal(s.train.slice(0, 9).filter((x) => x.startsWith(site)).length, 3);
    }
  });
  assert.deepEqual(litsJ.splits[0]!.train, litsDefaultSplit().train);
  assert.equal(canonicalJson({ b: [2, 1], a: "x" }), '{"a":"x","b":[2,1]}');
  const h = splitHash({ name: "n", train: ["a"], val: [], test: ["b"], source: "s" });
  assert.equal(h, splitHash({ source: "s", test: ["b"], val: [], train: ["a"], name: "n" }));
  assert.notEqual(h, splitHash({ name: "n", train: ["b"], val: [], test: ["a"], source: "s" }));
});

Deno.test("synthetic: deterministic, labels {0,1} with a sane foreground fraction", async () => {
  const opts = { shape: [32, 32, 32] as [number, number, number], seed: 0, noise: 0.35, bias: 0.3 };
  const a = generateCase(3, opts);
  const b = generateCase(3, opts);
  assert.deepEqual(a.image.data, b.image.data);
  assert.deepEqual(a.label.data, b.label.data);
  assert.notDeepEqual(generateCase(4, opts).label.data, a.label.data);
  assert.notDeepEqual(generateCase(3, { ...opts, seed: 1 }).image.data, a.image.data);
  const ds = synthetic.open("", { n: 6, size: 16, nTrain: 4 });
  const [split] = await ds.splits();
  assert.deepEqual(split!.train, ["syn000", "syn001", "syn002", "syn003"]);
  assert.deepEqual(split!.test, ["syn004", "syn005"]);
  assert.deepEqual(await ds.check(), []);
  let fg = 0;
  for (let k = 0; k < 6; k++) {
    const c = generateCase(k, opts);
    fg += c.label.data.reduce((s, v) => s + v, 0) / c.label.data.length;
  }
  fg /= 6;
  assert.ok(fg > 0.01 && fg < 0.4, `foreground fraction ${fg}`);
});

function vol(
  shape: [number, number, number],
  f: (x: number, y: number, z: number) => number,
  ctor: Int16ArrayConstructor | Uint8ArrayConstructor = Int16Array,
) {
  const a = new ctor(shape[0] * shape[1] * shape[2]);
  let i = 0;
  for (let x = 0; x < shape[0]; x++) {
    for (let y = 0; y < shape[1]; y++) {
      for (let z = 0; z < shape[2]; z++) a[i++] = f(x, y, z);
    }
  }
  return a;
}

Deno.test("BraTS/WMH/LiTS modules read the raw NIfTI layouts and preprocess as documented", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const shape: [number, number, number] = [20, 18, 10];
    const brain = (x: number, y: number, z: number) =>
      x >= 2 && x < 18 && y >= 3 && y < 15 && z >= 1 && z < 9;
    const flair = vol(shape, (x, y, z) => (brain(x, y, z) ? 50 + ((x * 3 + y + z) % 40) : 0));
    const seg = vol(
      shape,
      (x, y, z) => (x >= 6 && x < 9 && y >= 6 && y < 9 && z >= 3 && z < 6 ? (x === 6 ? 4 : 2) : 0),
      Uint8Array,
    );
    // BraTS 2019 layout
    const id = "BraTS19_TEST_1_1";
    await Deno.mkdir(`${dir}/b19/HGG/${id}`, { recursive: true });
    await writeNifti(`${dir}/b19/HGG/${id}/${id}_flair.nii.gz`, { data: flair, shape });
    await writeNifti(`${dir}/b19/HGG/${id}/${id}_seg.nii.gz`, { data: seg as Uint8Array, shape });
    const d19 = getDataset("brats19").open(`${dir}/b19`);
    assert.deepEqual(await d19.caseIds(), [id]);
    const c19 = await d19.load(id);
    // brain bbox x 2..17, y 3..14, z 1..8 with the exclusive max -> 15 x 11 x 7
    assert.deepEqual(c19.image.shape, [15, 11, 7]);
    assert.equal(c19.label.data.reduce((s, v) => s + v, 0), 27);
    const report = await d19.check();
    assert.equal(report.filter((l) => l.includes("missing")).length, 335);
    assert.ok(!report.some((l) => l.startsWith(`${id}:`)), report.find((l) => l.startsWith(id)));
    // BraTS 2018 MASSL: centre crop x,y to 200 is a no-op here; background stays 0
    await Deno.mkdir(`${dir}/b18/HGG/Brats18_X_1_1`, { recursive: true });
    await writeNifti(`${dir}/b18/HGG/Brats18_X_1_1/Brats18_X_1_1_flair.nii`, {
      data: flair,
      shape,
    });
    await writeNifti(`${dir}/b18/HGG/Brats18_X_1_1/Brats18_X_1_1_seg.nii`, {
      data: seg as Uint8Array,
      shape,
    });
    const c18 = await getDataset("brats18").open(`${dir}/b18`).load("Brats18_X_1_1");
    assert.deepEqual(c18.image.shape, shape);
    assert.equal(c18.image.data[0], 0);
    await assert.rejects(
      () => getDataset("brats18").open(`${dir}/b18`).splits(),
      /HGG\/#\d+ but group 'HGG' has 1 cases/,
    );
    // WMH: labels 0/1/2 kept, ignoreLabel 2
    const wl = vol(
      shape,
      (x, _y, z) => (x === 5 && z === 4 ? 1 : x === 6 && z === 4 ? 2 : 0),
      Uint8Array,
    );
    await Deno.mkdir(`${dir}/wmh/Utrecht/0/pre`, { recursive: true });
    await writeNifti(`${dir}/wmh/Utrecht/0/pre/FLAIR.nii.gz`, {
      data: vol(shape, (x, y, z) => (brain(x, y, z) ? 100 + x : 0)),
      shape,
    });
    await writeNifti(`${dir}/wmh/Utrecht/0/wmh.nii.gz`, { data: wl as Uint8Array, shape });
    const dw = getDataset("wmh").open(`${dir}/wmh`);
    assert.equal(dw.ignoreLabel, 2);
    assert.deepEqual(await dw.caseIds(), ["Utrecht/0"]);
    const cw = await dw.load("Utrecht/0");
    assert.deepEqual([...new Set(cw.label.data)].sort(), [0, 1, 2]);
    // LiTS: window then z-score; liver+tumour labels
    await writeNifti(`${dir}/volume-3.nii`, {
      data: vol(shape, (x) => x * 50 - 400),
      shape,
      spacing: [0.7, 0.7, 2],
    });
    await writeNifti(`${dir}/segmentation-3.nii`, {
      data: vol(shape, (x) => (x > 12 ? 2 : x > 8 ? 1 : 0), Uint8Array) as Uint8Array,
      shape,
    });
    const dl = getDataset("lits").open(dir, { norm: "minmax" });
    const cl = await dl.load("3");
    assert.deepEqual(cl.image.spacing.map((v) => Math.round(v * 10) / 10), [0.7, 0.7, 2]);
    assert.equal(cl.image.data[0], 0); // -400 clipped to -160 -> 0
    assert.equal(cl.image.data[cl.image.data.length - 1], 1); // 550 clipped to 240 -> 1
    assert.deepEqual([...new Set(cl.label.data)].sort(), [0, 1, 2]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("deno task data: missing root prints obtain text; unknown flag is one line", async () => {
  const lines: string[] = [];
  assert.equal(await checkMain(["wmh", "--root", "/definitely/not/here"], (l) => lines.push(l)), 1);
  assert.match(lines[0]!, /not\/here: not found/);
  assert.ok(lines.some((l) => l.includes("pre/FLAIR.nii.gz")));
  const l2: string[] = [];
  assert.equal(await checkMain(["la", "--frobnicate"], (l) => l2.push(l)), 2);
  assert.equal(l2.length, 1);
  assert.match(l2[0]!, /^unknown flag --frobnicate/);
  const l3: string[] = [];
  assert.equal(await checkMain(["synthetic"], (l) => l3.push(l)), 0);
  assert.equal(l3.at(-1), "synthetic: OK");
});
