import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { la, uaMtPreprocess } from "../datasets/la.ts";
import { encodeNrrd } from "../datasets/io/nrrd.ts";
import { Rng } from "../methods/nn/rng.ts";

const LA_DIR = fileURLToPath(new URL("../../shared/data/la", import.meta.url));
let present = false;
try {
  present = Deno.statSync(LA_DIR).isDirectory;
} catch {
  present = false;
}
if (!present) {
  // deno-lint-ignore no-console
  console.log(`SKIP real-LA test: ${LA_DIR} is absent`);
}

// Known values from shared/data/la/README.md (h5py).
const KNOWN = [
  {
    id: "06SR5RBREL16DQ6M8LWS",
    shape: [183, 140, 88],
    labelSum: 154296,
    imageSum: 3288043.4489,
    first: 1.824636,
  },
  {
    id: "0RZDK210BSMWAA6467LU",
    shape: [199, 143, 88],
    labelSum: 252364,
    imageSum: 1356808.4282,
    first: -0.76318,
  },
  {
    id: "UPT6DX9IQY9JAZ7HJKA7",
    shape: [175, 132, 88],
    labelSum: 206418,
    imageSum: 850712.2732,
    first: 0.132738,
  },
];

Deno.test({
  name:
    "LA: the three real UA-MT cases load with the known shape, sums and first voxel (< 3 s each)",
  ignore: !present,
  fn: async () => {
    const ds = la.open(LA_DIR);
    assert.deepEqual(await ds.caseIds(), KNOWN.map((k) => k.id).sort());
    const [split] = await ds.splits();
    assert.ok(split);
    assert.equal(split.train.length, 80);
    assert.equal(split.test.length, 20);
    assert.equal(split.train[0], KNOWN[0]!.id);
    assert.equal(split.train[1], KNOWN[1]!.id);
    assert.equal(split.test[0], KNOWN[2]!.id);
    assert.match(split.hash, /^[0-9a-f]{64}$/);
    for (const k of KNOWN) {
      const t0 = performance.now();
      const c = await ds.load(k.id);
      const ms = performance.now() - t0;
      // deno-lint-ignore no-console
      console.log(`LA ${k.id}: loaded in ${ms.toFixed(0)} ms`);
      assert.ok(ms < 3000, `load took ${ms} ms`);
      assert.deepEqual(c.image.shape, k.shape);
      assert.deepEqual(c.label.shape, k.shape);
      assert.equal(c.image.channels, 1);
      let ls = 0;
      for (const v of c.label.data) {
        assert.ok(v === 0 || v === 1);
        ls += v;
      }
      assert.equal(ls, k.labelSum);
      let s = 0;
      for (const v of c.image.data) s += v;
      assert.ok(Math.abs(s - k.imageSum) / k.imageSum < 1e-3, `image sum ${s} vs ${k.imageSum}`);
      assert.ok(
        Math.abs(c.image.data[0]! - k.first) < 1e-5,
        `first ${c.image.data[0]} vs ${k.first}`,
      );
    }
    // The check lists the 97 absent cases and nothing else (the list files agree with the split).
    const report = await ds.check();
    assert.equal(report.length, 97);
    assert.ok(report.every((l) => l.includes(": missing (expected ")));
  },
});

Deno.test("LA raw layout: lgemri/laendo NRRD go through UA-MT preprocessing (seeded margins)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const shape: [number, number, number] = [160, 150, 12];
    const n = shape[0] * shape[1] * shape[2];
    const img = new Int16Array(n), lab = new Uint8Array(n);
    let i = 0;
    for (let x = 0; x < shape[0]; x++) {
      for (let y = 0; y < shape[1]; y++) {
        for (let z = 0; z < shape[2]; z++, i++) {
          img[i] = (x * 7 + y * 3 + z) % 200;
          if (x >= 60 && x <= 80 && y >= 50 && y <= 90 && z >= 3 && z <= 8) lab[i] = 255;
        }
      }
    }
    await Deno.mkdir(`${dir}/CASE1`);
    await Deno.writeFile(
      `${dir}/CASE1/lgemri.nrrd`,
      encodeNrrd({ data: img, shape, encoding: "gzip", spacing: [0.625, 0.625, 0.625] }),
    );
    await Deno.writeFile(
      `${dir}/CASE1/laendo.nrrd`,
      encodeNrrd({ data: lab, shape, encoding: "gzip" }),
    );
    await Deno.writeFile(`${dir}/CASE1/desktop.ini`, new Uint8Array([1]));
    const ds = la.open(dir, { seed: 7 });
    const a = await ds.load("CASE1");
    const b = await la.open(dir, { seed: 7 }).load("CASE1");
    assert.deepEqual(a.image.shape, b.image.shape);
    assert.deepEqual(a.image.data, b.image.data);
    // z never cropped; x/y box: label x in [60,80], width 20 -> px = (112-20)//2 = 46, margins 10..19
    assert.equal(a.image.shape[2], 12);
    const [sx, sy] = a.image.shape;
    assert.ok(sx >= 20 + 2 * 46 + 20 && sx <= 21 + 2 * 46 + 38, `x extent ${sx}`);
    assert.ok(sy >= 112 && sy <= 150, `y extent ${sy}`);
    assert.equal(a.label.data.reduce((s, v) => s + v, 0), 21 * 41 * 6);
    assert.deepEqual(a.image.spacing, [0.625, 0.625, 0.625]);
    // Same as calling the preprocessing directly with the same draws.
    const direct = uaMtPreprocess(img, lab, shape, new Rng(0));
    assert.equal(direct.shape[2], 12);
    // z-score is over the whole uncropped volume: the full-volume mean maps to 0.
    let mean = 0;
    for (const v of img) mean += v;
    mean /= n;
    let ss = 0;
    for (const v of img) ss += (v - mean) ** 2;
    const std = Math.sqrt(ss / n);
    const x0 = (() => {
      // find the crop origin by matching the first row
      for (let x = 0; x < shape[0]; x++) {
        for (let y = 0; y < shape[1]; y++) {
          const v = (img[(x * shape[1] + y) * shape[2]]! - mean) / std;
          if (
            Math.abs(v - a.image.data[0]!) < 1e-5 &&
            Math.abs(
                ((img[((x + 1) * shape[1] + y) * shape[2]]! - mean) / std) - a.image.data[sy * 12]!,
              ) < 1e-5
          ) return [x, y];
        }
      }
      return null;
    })();
    assert.ok(x0 !== null, "crop is a window of the whole-volume z-scored image");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
