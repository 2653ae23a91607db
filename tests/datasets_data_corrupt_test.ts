/**
 * Dataset integrity beyond the headers: a deflate chunk of an h5 case or the compressed stream
 * of a .nii.gz case corrupted in the middle (headers intact), and content problems (label
 * values, label/image shapes, NaN, constant, garbage intensities). The data check names the
 * case; a bench run that loads it fails in one line naming the file and the other runs finish.
 * Every fixture is written here (no ../shared needed).
 */
import assert from "node:assert/strict";
import { deflateSync, inflateSync } from "node:zlib";
import { checkHdf5File, readHdf5, writeHdf5 } from "../datasets/io/hdf5.ts";
import { encodeNifti, readNifti } from "../datasets/io/nifti.ts";
import { encodeNrrd, readNrrd } from "../datasets/io/nrrd.ts";
import { checkRoot } from "../datasets/check.ts";
import { getDataset } from "../datasets/mod.ts";
import { la } from "../datasets/la.ts";
import { lits } from "../datasets/lits.ts";
import type { Dataset } from "../datasets/types.ts";
import { expandGrid } from "../benchmarks/harness/plan.ts";
import { executeRun, type RunContext } from "../benchmarks/harness/runner.ts";
import { ResultStore } from "../benchmarks/harness/store.ts";
import { Progress } from "../benchmarks/harness/progress.ts";
import type { BenchmarkSpec } from "../benchmarks/harness/spec.ts";
import { synthetic as syntheticSpec } from "../benchmarks/synthetic.ts";
import { initBackend } from "../methods/nn/backend.ts";
import { task } from "./task_util.ts";

type Shape = [number, number, number];
const SHAPE: Shape = [20, 18, 16];
const N = SHAPE[0] * SHAPE[1] * SHAPE[2];

/** Deterministic values in [lo, hi) (an LCG), so every fixture is the same on every machine. */
function noise(n: number, seed: number, lo: number, hi: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return lo + (hi - lo) * (s / 2 ** 32);
  });
}

/** A label with a box of 1 in the middle (and value `extra` in one corner voxel when given). */
function boxLabel(shape: Shape, extra?: number): Uint8Array {
  const [nx, ny, nz] = shape;
  const out = new Uint8Array(nx * ny * nz);
  let i = 0;
  for (let x = 0; x < nx; x++) {
    for (let y = 0; y < ny; y++) {
      for (let z = 0; z < nz; z++, i++) {
        if (x >= 6 && x < 14 && y >= 5 && y < 12 && z >= 4 && z < 11) out[i] = 1;
      }
    }
  }
  if (extra !== undefined) out[0] = extra;
  return out;
}

/** Write `<root>/<id>/mri_norm2.h5` (deflate level 4, one chunk per dataset, as h5py gzip). */
async function writeLaCase(
  root: string,
  id: string,
  o: { image?: Float32Array; label?: Uint8Array; labelShape?: Shape; seed?: number } = {},
): Promise<string> {
  await Deno.mkdir(`${root}/${id}`, { recursive: true });
  const path = `${root}/${id}/mri_norm2.h5`;
  const lshape = o.labelShape ?? SHAPE;
  await writeHdf5(path, {
    image: { data: o.image ?? noise(N, o.seed ?? 1, -1, 3), shape: SHAPE },
    label: { data: o.label ?? boxLabel(lshape), shape: lshape },
  }, { gzip: 4 });
  return path;
}

/** Offset of the zlib stream in `file` that inflates to exactly `raw` (-1 when none does). */
function findZlibStream(file: Uint8Array, raw: Uint8Array): number {
  for (let i = 0; i + 2 < file.length; i++) {
    // zlib header: CM = 8 (deflate), (CMF*256 + FLG) divisible by 31.
    if ((file[i]! & 0x0f) !== 8 || ((file[i]! << 8) | file[i + 1]!) % 31 !== 0) continue;
    try {
      const out = inflateSync(file.subarray(i));
      if (out.length === raw.length && out.every((v, k) => v === raw[k])) return i;
    } catch {
      // not a stream start
    }
  }
  return -1;
}

/** Flip 8 bytes in the middle of the image's compressed chunk; returns the chunk's offset. */
async function corruptImageChunk(path: string, image: Float32Array): Promise<number> {
  const bytes = await Deno.readFile(path);
  const raw = new Uint8Array(image.buffer, image.byteOffset, image.byteLength);
  const at = findZlibStream(bytes, raw);
  assert.ok(at > 0, `${path}: image chunk not found`);
  const mid = at + Math.floor(deflateSync(raw, { level: 4 }).length / 2);
  for (let k = 0; k < 8; k++) bytes[mid + k] = bytes[mid + k]! ^ 0xa5;
  await Deno.writeFile(path, bytes);
  return at;
}

async function rejectsOneLine(p: Promise<unknown>, file: string, why: RegExp): Promise<string> {
  let err: unknown = null;
  try {
    await p;
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof Error, `expected an Error for ${file}, got ${String(err)}`);
  assert.ok(!err.message.includes("\n"), `not one line: ${err.message}`);
  assert.ok(err.message.startsWith(`${file}: `), `does not start with the file: ${err.message}`);
  assert.match(err.message, why);
  return err.message;
}

async function dataCheck(id: string, root: string): Promise<{ code: number; lines: string[] }> {
  const lines: string[] = [];
  const code = await checkRoot(getDataset(id), root, (l) => lines.push(l));
  return { code, lines };
}

Deno.test("h5: a corrupted deflate chunk (superblock intact) is one line naming the file, not garbage", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const image = noise(N, 7, -1, 3);
    const path = await writeLaCase(dir, "CASE_A", { image });
    const good = await readHdf5(path, ["image", "label"]);
    assert.deepEqual(good.image!.data, image);
    const chunkAt = await corruptImageChunk(path, image);
    assert.ok(chunkAt >= 512, `chunk at ${chunkAt}: past the superblock and object headers`);
    await checkHdf5File(path); // header checks alone still pass: the data is what is broken
    const msg = await rejectsOneLine(
      readHdf5(path, ["image", "label"]),
      path,
      /cannot read the data of 'image' \(H5Dread failed.*\[libhdf5: H5Dread\(\): .*; H5Z_pipeline\(\): filter returned failure during read\]$/,
    );
    assert.ok(!msg.includes("HDF5-DIAG"), msg);
    // The label (its own chunk) still reads: the error is the image dataset's.
    assert.equal((await readHdf5(path, ["label"])).label!.data.length, N);
    // Many failures in one process leave the reader working (no leaked wasm stack).
    for (let k = 0; k < 50; k++) await assert.rejects(() => readHdf5(path, ["image"]));
    const other = await writeLaCase(dir, "CASE_B", { image });
    assert.deepEqual((await readHdf5(other, ["image"])).image!.data, image);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

const REAL = new URL("../../shared/data/la/06SR5RBREL16DQ6M8LWS/mri_norm2.h5", import.meta.url)
  .pathname;

Deno.test({
  name: "real LA case (../shared) with its middle bytes flipped: load and data check name the file",
  ignore: (() => {
    try {
      Deno.statSync(REAL);
      return false;
    } catch {
      // deno-lint-ignore no-console
      console.log(`skipping the real-case corruption test: ${REAL} is absent`);
      return true;
    }
  })(),
  fn: async () => {
    const dir = await Deno.makeTempDir();
    try {
      const bytes = await Deno.readFile(REAL);
      const mid = Math.floor(bytes.length / 2); // a data chunk: metadata sits at the start
      for (let k = 0; k < 8; k++) bytes[mid + k] = bytes[mid + k]! ^ 0xa5;
      await Deno.mkdir(`${dir}/06SR5RBREL16DQ6M8LWS`);
      const path = `${dir}/06SR5RBREL16DQ6M8LWS/mri_norm2.h5`;
      await Deno.writeFile(path, bytes);
      await checkHdf5File(path);
      const msg = await rejectsOneLine(
        la.open(dir).load("06SR5RBREL16DQ6M8LWS"),
        path,
        /cannot read the data of 'image' \(H5Dread failed/,
      );
      const { lines } = await dataCheck("la", dir);
      assert.ok(lines.includes(msg), lines.filter((l) => !l.includes("missing")).join("\n"));
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("nii.gz and gzip NRRD: a corrupted compressed stream (header intact) is one line naming the file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const data = Int16Array.from(noise(N, 3, -1000, 1000), (v) => Math.round(v));
    const gz = encodeNifti({ data, shape: SHAPE }, true);
    const path = `${dir}/volume-1.nii.gz`;
    await Deno.writeFile(path, gz);
    assert.deepEqual((await readNifti(path)).data, data);
    const bad = gz.slice();
    const mid = Math.floor(bad.length / 2); // well inside the deflate data (10-byte header)
    for (let k = 0; k < 8; k++) bad[mid + k] = bad[mid + k]! ^ 0xa5;
    assert.deepEqual(bad.subarray(0, 10), gz.subarray(0, 10));
    await Deno.writeFile(path, bad);
    await rejectsOneLine(readNifti(path), path, /truncated or corrupt gzip data \(/);
    // NRRD with gzip encoding: the text header stays readable, the payload does not inflate.
    const nrrd = encodeNrrd({ data, shape: SHAPE, encoding: "gzip" });
    const nrrdPath = `${dir}/lgemri.nrrd`;
    await Deno.writeFile(nrrdPath, nrrd);
    assert.deepEqual((await readNrrd(nrrdPath)).data, data);
    const cut = nrrd.slice();
    const m2 = Math.floor(cut.length * 0.6);
    for (let k = 0; k < 8; k++) cut[m2 + k] = cut[m2 + k]! ^ 0xa5;
    await Deno.writeFile(nrrdPath, cut);
    await rejectsOneLine(readNrrd(nrrdPath), nrrdPath, /truncated or corrupt gzip data \(/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("LA load: random byte flips past the superblock give the exact case or one line naming the file", async () => {
  // Some flips (a chunk address in the B-tree) make libhdf5 read the fill value without any
  // error: the content checks refuse those (constant image, no foreground), so nothing wrong
  // is ever returned.
  const dir = await Deno.makeTempDir();
  try {
    const image = noise(N, 17, -1, 3);
    const label = boxLabel(SHAPE);
    const path = await writeLaCase(dir, "CASE", { image, label });
    const good = await Deno.readFile(path);
    let seed = 4242;
    const rnd = (m: number) => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed % m;
    };
    const outcomes = { exact: 0, refused: 0, byContent: 0 };
    for (let t = 0; t < 150; t++) {
      const c = good.slice();
      for (let k = 0; k < 3; k++) c[96 + rnd(Math.min(4000, c.length - 96))] = rnd(256);
      await Deno.writeFile(path, c);
      try {
        const got = await la.open(dir).load("CASE");
        assert.deepEqual(got.image.data, image, `trial ${t}: wrong image returned`);
        assert.deepEqual(got.label.data, label, `trial ${t}: wrong label returned`);
        outcomes.exact++;
      } catch (e) {
        assert.ok(e instanceof Error && !(e instanceof assert.AssertionError), String(e));
        assert.ok(!e.message.includes("\n") && e.message.startsWith(`${path}: `), e.message);
        outcomes.refused++;
        if (/constant|foreground|span/.test(e.message)) outcomes.byContent++;
      }
    }
    // Measured with h5wasm 0.10.3: 60 exact, 90 refused, 1 of them only by the content checks.
    assert.ok(outcomes.exact > 0 && outcomes.refused > 0, JSON.stringify(outcomes));
    assert.ok(outcomes.byContent > 0, `no silent fill-value read met: ${JSON.stringify(outcomes)}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** The content problems of #23 and their one-line texts (same in load and in the data check). */
const BAD_LA: [string, Parameters<typeof writeLaCase>[2], RegExp][] = [
  ["LABELS012", { label: boxLabel(SHAPE, 2) }, /: unexpected label values 2 \(allowed 0, 1\)$/],
  [
    "SHAPE",
    { labelShape: [18, 18, 16] },
    /: label shape 18x18x16 differs from image shape 20x18x16 \(expected the same shape\)$/,
  ],
  [
    "NAN",
    { image: noise(N, 5, -1, 3).map((v, i) => (i === 100 ? NaN : v)) },
    /: image has 1 non-finite values \(NaN or infinite; the first at voxel \(0, 6, 4\)\) \(expected finite values\)$/,
  ],
  [
    "CONSTANT",
    { image: new Float32Array(N).fill(0.5) },
    /: image is constant \(every finite voxel is 0\.5\) \(expected varying intensities\)$/,
  ],
  [
    "GARBAGE",
    { image: noise(N, 9, -1, 3).map((v, i) => (i === 7 ? 3e30 : v)) },
    /: image values span \[-?\d\.\d+, 3e\+30\] \(expected within \[-20, 200\], z-scored LA volumes/,
  ],
  [
    "NOFG",
    { label: new Uint8Array(N) },
    /: label has no foreground voxels \(expected at least one voxel of label 1\)$/,
  ],
];

Deno.test("LA: every content problem refuses load with one line that equals the data check's line", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await writeLaCase(dir, "GOOD");
    for (const [id, o] of BAD_LA) await writeLaCase(dir, id, o);
    const ds = la.open(dir);
    assert.deepEqual((await ds.load("GOOD")).image.shape, SHAPE);
    const { code, lines } = await dataCheck("la", dir);
    assert.equal(code, 1);
    assert.match(
      lines[1]!,
      new RegExp(
        `^la: read and checked ${BAD_LA.length + 1} cases \\(\\d+\\.\\d kB decoded\\) in `,
      ),
    );
    const caseLines = lines.filter((l) => !l.includes(": missing (expected "));
    for (const [id, , why] of BAD_LA) {
      const file = `${dir}/${id}/mri_norm2.h5`;
      const msg = await rejectsOneLine(ds.load(id), file, why);
      // The data check reports exactly what the load refuses with.
      assert.ok(caseLines.includes(msg), `data check lacks: ${msg}\n${caseLines.join("\n")}`);
    }
    assert.ok(!caseLines.some((l) => l.includes("/GOOD/")), caseLines.join("\n"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("deno task data: reads the data, names the corrupt h5 and .nii.gz cases, prints the cost, no HDF5-DIAG", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // LA: three cases, the middle one with a corrupted image chunk.
    const image = noise(N, 11, -1, 3);
    await writeLaCase(`${dir}/la`, "CASE_A");
    const bad = await writeLaCase(`${dir}/la`, "CASE_B", { image });
    await writeLaCase(`${dir}/la`, "CASE_C", { seed: 2 });
    await corruptImageChunk(bad, image);
    const r = await task("datasets/check.ts", ["la", "--root", `${dir}/la`]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.equal(r.stderr, "", "nothing on stderr (libhdf5's trace is captured)");
    const out = r.stdout.trim().split("\n");
    assert.match(out[1]!, /^la: read and checked 3 cases \(\d+\.\d kB decoded\) in \d+\.\d s$/);
    const named = out.filter((l) => l.includes("CASE_"));
    assert.equal(named.length, 1, named.join("\n"));
    assert.match(named[0]!, new RegExp(`^${bad}: cannot read the data of 'image'`));
    // LiTS (.nii.gz): the corrupted volume is named, the good case is not.
    const lbl = boxLabel(SHAPE, 2);
    for (const n of [1, 2]) {
      const vol = Int16Array.from(noise(N, n, -300, 300), (v) => Math.round(v));
      await Deno.writeFile(
        `${dir}/volume-${n}.nii.gz`,
        encodeNifti({ data: vol, shape: SHAPE }, true),
      );
      await Deno.writeFile(
        `${dir}/segmentation-${n}.nii.gz`,
        encodeNifti({ data: lbl, shape: SHAPE }, true),
      );
    }
    const gz = await Deno.readFile(`${dir}/volume-2.nii.gz`);
    const mid = Math.floor(gz.length / 2);
    for (let k = 0; k < 8; k++) gz[mid + k] = gz[mid + k]! ^ 0xa5;
    await Deno.writeFile(`${dir}/volume-2.nii.gz`, gz);
    const l = await dataCheck("lits", dir);
    assert.equal(l.code, 1);
    assert.match(l.lines[1]!, /^lits: read and checked 2 cases \(/);
    const mentioned = l.lines.filter((x) => x.includes(".nii.gz"));
    assert.deepEqual(mentioned.length, 1, mentioned.join("\n"));
    assert.match(
      mentioned[0]!,
      new RegExp(`^${dir}/volume-2\\.nii\\.gz: truncated or corrupt gzip`),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** A tiny bench spec on `dataset` with a labeled-only row and a semi-supervised row. */
function tinySpec(dataset: BenchmarkSpec["dataset"], id: string): BenchmarkSpec {
  return {
    ...syntheticSpec,
    id,
    dataset,
    methods: [{ method: "supervised", labeledOnly: true }, { method: "mean-teacher" }],
    labeled: [1],
    seeds: [1],
    iterations: 1,
    patch: [16, 16, 16],
    common: { nFilters: 2 },
    eval: { ...syntheticSpec.eval, patch: [16, 16, 16], strideXY: 16, strideZ: 16 },
    checkpointEvery: 1000,
  };
}

async function runContext(spec: BenchmarkSpec, ds: Dataset, out: string): Promise<RunContext> {
  return {
    spec,
    dataset: ds,
    split: (await ds.splits())[0]!,
    store: new ResultStore(out, spec.id),
    provenance: await initBackend("cpu"),
    gitCommit: "test",
    progress: new Progress(1e9, false),
    cache: new Map(),
    index: 0,
    total: 2,
  };
}

async function writeSplit(path: string, dataset: string, train: string[], test: string[]) {
  await Deno.writeTextFile(
    path,
    JSON.stringify({ dataset, source: "test", splits: [{ name: "t", train, val: [], test }] }),
  );
}

Deno.test("bench: a bad unlabeled case fails its run in one line naming the file; the labeled-only run keeps its result", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const root = `${dir}/la`;
    await writeLaCase(root, "CASE_A", { seed: 1 });
    await writeLaCase(root, "CASE_T", { seed: 3 });
    await writeSplit(`${dir}/split.json`, "la", ["CASE_A", "CASE_B"], ["CASE_T"]);
    const spec = tinySpec({ id: "la", options: { splitFile: `${dir}/split.json` } }, "corrupt_la");
    const [sup, semi] = expandGrid(spec);
    assert.ok(sup!.labeledOnly && !semi!.labeledOnly);
    const bFile = `${root}/CASE_B/mri_norm2.h5`;
    const variants: [string, () => Promise<unknown>, RegExp][] = [
      ["corrupt chunk", async () => {
        const image = noise(N, 13, -1, 3);
        await writeLaCase(root, "CASE_B", { image });
        await corruptImageChunk(bFile, image);
      }, /: cannot read the data of 'image' \(H5Dread failed/],
      ...BAD_LA.slice(0, 3).map(([name, o, why]) =>
        [name, () => writeLaCase(root, "CASE_B", o), why] as [
          string,
          () => Promise<unknown>,
          RegExp,
        ]
      ),
    ];
    let first = true;
    for (const [name, make, why] of variants) {
      await make();
      const ctx = await runContext(spec, la.open(root, spec.dataset.options ?? {}), `${dir}/out`);
      const rs = await executeRun(sup!, { ...ctx, index: 0 });
      assert.equal(rs.status, first ? "finished" : "skipped", `${name}: ${JSON.stringify(rs)}`);
      first = false;
      const r = await executeRun(semi!, { ...ctx, index: 1 });
      assert.equal(r.status, "failed", name);
      if (r.status !== "failed") continue;
      assert.ok(!r.error.includes("\n"), `${name}: ${r.error}`);
      assert.match(r.error, new RegExp(`^run ${semi!.runId} .*: ${bFile}: `), name);
      assert.match(r.error, why, name);
      const f = await ctx.store.readFailure(semi!.runId);
      assert.equal(f?.error, r.error, `${name}: failed/<run-id>.json holds the line`);
      assert.equal(await ctx.store.readRun(semi!.runId), null);
      assert.ok(await ctx.store.readRun(sup!.runId), `${name}: the finished run is kept`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("bench: a corrupted .nii.gz unlabeled case fails its run in one line naming the file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const lbl = boxLabel(SHAPE);
    for (const n of [1, 2, 3]) {
      const vol = Int16Array.from(noise(N, 20 + n, -300, 300), (v) => Math.round(v));
      const gz = encodeNifti({ data: vol, shape: SHAPE }, true);
      if (n === 2) {
        const mid = Math.floor(gz.length / 2);
        for (let k = 0; k < 8; k++) gz[mid + k] = gz[mid + k]! ^ 0xa5;
      }
      await Deno.writeFile(`${dir}/volume-${n}.nii.gz`, gz);
      await Deno.writeFile(
        `${dir}/segmentation-${n}.nii.gz`,
        encodeNifti({ data: lbl, shape: SHAPE }, true),
      );
    }
    await writeSplit(`${dir}/split.json`, "lits", ["1", "2"], ["3"]);
    const options = { splitFile: `${dir}/split.json`, target: "liver" };
    const spec = tinySpec({ id: "lits", options }, "corrupt_lits");
    const ctx = await runContext(spec, lits.open(dir, options), `${dir}/out`);
    const [sup, semi] = expandGrid(spec);
    const rs = await executeRun(sup!, ctx);
    assert.equal(rs.status, "finished", JSON.stringify(rs));
    const r = await executeRun(semi!, { ...ctx, index: 1 });
    assert.equal(r.status, "failed");
    if (r.status === "failed") {
      assert.ok(!r.error.includes("\n"), r.error);
      assert.match(
        r.error,
        new RegExp(`: ${dir}/volume-2\\.nii\\.gz: truncated or corrupt gzip data \\(`),
      );
    }
    assert.ok(await ctx.store.readRun(sup!.runId));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
