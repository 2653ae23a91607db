import assert from "node:assert/strict";
import { join } from "node:path";
import { expandGrid, parseShard, shardRuns } from "../benchmarks/harness/plan.ts";
import {
  decodeCheckpoint,
  encodeCheckpoint,
  ResultStore,
  type RunRecord,
  writeAtomic,
} from "../benchmarks/harness/store.ts";
import { buildTable, tableCsv, tableMarkdown } from "../benchmarks/harness/tables.ts";
import { helpText, parseBenchArgs } from "../benchmarks/cli.ts";
import { BENCHMARKS } from "../benchmarks/mod.ts";
import { synthetic } from "../benchmarks/synthetic.ts";
import { laBaselines } from "../benchmarks/la_baselines.ts";
import type { BenchmarkSpec } from "../benchmarks/harness/spec.ts";
import { METHODS } from "../methods/mod.ts";
import { fakeRecord } from "./records.ts";

Deno.test("grid: ids are stable under reordering of methods and of spec keys", () => {
  const a = expandGrid(laBaselines);
  const reordered: BenchmarkSpec = {
    ...laBaselines,
    methods: [...laBaselines.methods].reverse(),
  };
  const b = expandGrid(reordered);
  assert.equal(a.length, laBaselines.methods.length * 2 * 3);
  assert.deepEqual(new Set(a.map((r) => r.runId)), new Set(b.map((r) => r.runId)));
  assert.equal(new Set(a.map((r) => r.runId)).size, a.length, "ids are unique");
  // Filters select without changing ids; a changed schedule changes them.
  const f = expandGrid(laBaselines, { methods: ["dtc"], labeled: [16], seeds: [1337] });
  assert.equal(f.length, 1);
  assert.ok(a.some((r) => r.runId === f[0]!.runId));
  const g = expandGrid(laBaselines, {
    methods: ["dtc"],
    labeled: [16],
    seeds: [1337],
    iterations: 10,
  });
  assert.notEqual(g[0]!.runId, f[0]!.runId);
});

Deno.test("grid: unknown filters give one line naming the valid choices", () => {
  assert.throws(
    () => expandGrid(laBaselines, { methods: ["nope"] }),
    /--methods: 'nope' is not in benchmark la_baselines \(expected one of/,
  );
  assert.throws(() => expandGrid(laBaselines, { labeled: [3] }), /--labeled: 3 is not a setting/);
});

Deno.test("shards are disjoint and cover the grid", () => {
  const runs = expandGrid(laBaselines);
  const parts = [0, 1, 2].map((i) => shardRuns(runs, { index: i, count: 3 }));
  const all = parts.flat().map((r) => r.runId).sort();
  assert.deepEqual(all, runs.map((r) => r.runId).sort());
  assert.deepEqual(parseShard("1/4"), { index: 1, count: 4 });
  assert.throws(() => parseShard("4/4"), /--shard: expected i\/n/);
  assert.throws(() => parseShard("x"), /--shard/);
});

Deno.test("cli: help lists every flag; unknown flags and bad values are one line", () => {
  const h = helpText();
  for (
    const f of [
      "--benchmark",
      "--methods",
      "--labeled",
      "--seeds",
      "--iterations",
      "--backend",
      "--data-dir",
      "--out",
      "--dry-run",
      "--shard",
      "--list",
      "--tables-only",
    ]
  ) {
    assert.ok(h.includes(f), f);
  }
  assert.throws(
    () => parseBenchArgs(["--bogus"]),
    (e: Error) => e.message === "unknown flag --bogus (see --help for the flags)",
  );
  assert.throws(
    () => parseBenchArgs(["--labeled", "8,x"]),
    /--labeled: expected a comma-separated list/,
  );
  assert.throws(() => parseBenchArgs(["--backend", "tpu"]), /--backend: unknown backend 'tpu'/);
  assert.throws(() => parseBenchArgs(["--iterations", "0"]), /--iterations/);
  const o = parseBenchArgs(["--methods", "dtc,ua-mt", "--labeled", "8", "--dry-run"]);
  assert.deepEqual(o.methods, ["dtc", "ua-mt"]);
  assert.deepEqual(o.labeled, [8]);
  assert.equal(o.dryRun, true);
});

Deno.test("registry: the synthetic benchmark covers every registered method", () => {
  assert.deepEqual(synthetic.methods.map((m) => m.method), METHODS.map((m) => m.id));
  assert.equal(new Set(BENCHMARKS.map((b) => b.id)).size, BENCHMARKS.length);
});

Deno.test("every benchmark's table columns are metrics its protocol computes", () => {
  for (const b of BENCHMARKS) {
    for (const c of b.table.columns) {
      assert.ok(b.eval.metrics.includes(c.metric), `${b.id}: column ${c.metric} is never computed`);
    }
  }
});

Deno.test("synthetic: every row's patch is at least its network's minimum (MASSL: 32^3)", () => {
  const runs = expandGrid(synthetic);
  for (const m of METHODS) {
    const mine = runs.filter((r) => r.method === m.id);
    assert.ok(mine.length > 0, m.id);
    for (const r of mine) assert.ok(r.patch[0]! >= (m.meta.minTrainPatch ?? 16), m.id);
  }
  assert.equal(METHODS.find((m) => m.id === "massl")!.meta.minTrainPatch, 32);
});

Deno.test("grid: a row's own patch reaches its runs and changes only their ids", () => {
  const spec = { ...laBaselines, methods: laBaselines.methods.slice(0, 2) };
  const base = expandGrid(spec);
  const withPatch = expandGrid({
    ...spec,
    methods: [spec.methods[0]!, { ...spec.methods[1]!, patch: [64, 64, 48] }],
  });
  const key1 = spec.methods[1]!.key ?? spec.methods[1]!.method;
  for (const [a, b] of base.map((r, i) => [r, withPatch[i]!] as const)) {
    if (a.rowKey === key1) {
      assert.deepEqual(b.patch, [64, 64, 48]);
      assert.notEqual(a.runId, b.runId);
    } else {
      assert.deepEqual(b.patch, spec.patch);
      assert.equal(a.runId, b.runId);
    }
  }
});

Deno.test("store: checkpoint round-trips exactly; corrupt files are one-line errors", () => {
  const values = new Float32Array([1.5, -2.25, 3e-8, NaN]);
  const c = {
    iteration: 7,
    method: {
      tensors: {
        "w/a": { shape: [2, 2], values },
        b: { shape: [1], values: new Float32Array([9]) },
      },
      extra: { step: 7 },
    },
    harness: { note: "x" },
  };
  const bytes = encodeCheckpoint(c);
  const d = decodeCheckpoint(bytes, "mem.ckpt");
  assert.equal(d.iteration, 7);
  assert.deepEqual(d.method.extra, { step: 7 });
  assert.deepEqual([...d.method.tensors["w/a"]!.values].slice(0, 3), [
    1.5,
    -2.25,
    Math.fround(3e-8),
  ]);
  assert.ok(Number.isNaN(d.method.tensors["w/a"]!.values[3]));
  assert.deepEqual(d.method.tensors["w/a"]!.shape, [2, 2]);
  assert.throws(
    () => decodeCheckpoint(bytes.subarray(0, bytes.length - 4), "cut.ckpt"),
    /^Error: cut.ckpt: corrupt checkpoint \(expected/,
  );
  const flipped = bytes.slice();
  flipped[0] = 0;
  assert.throws(
    () => decodeCheckpoint(flipped, "f.ckpt"),
    /f.ckpt: corrupt checkpoint \(bad magic\)/,
  );
});

function fakeRun(
  runId: string,
  rowKey: string,
  labeled: number,
  seed: number,
  dice: number[],
): RunRecord {
  return fakeRecord(runId, {
    rowKey,
    method: rowKey,
    labeled,
    seed,
    cases: dice.map((d, i) => ({
      id: `c${i}`,
      values: { dice: d, jaccard: d / (2 - d), asd: 1 - d, hd95: 2 * (1 - d) },
    })),
    mean: {
      dice: dice.reduce((a, b) => a + b, 0) / dice.length,
      jaccard: 0.5,
      asd: 0.3,
      hd95: 0.6,
    },
  });
}

Deno.test("store: atomic writes, finished runs survive failures, tables regenerate identically", async () => {
  const root = await Deno.makeTempDir();
  const spec: BenchmarkSpec = {
    ...synthetic,
    methods: [{ method: "a" }, { method: "b" }],
    labeled: [2],
    seeds: [1, 2],
    table: { ...synthetic.table, proposed: "a" },
  };
  const store = new ResultStore(root, "synthetic");
  const runs = [
    fakeRun("r1", "a", 2, 1, [0.9, 0.8, 0.85, 0.7]),
    fakeRun("r2", "a", 2, 2, [0.92, 0.81, 0.83, 0.72]),
    fakeRun("r3", "b", 2, 1, [0.6, 0.5, 0.55, 0.52]),
    fakeRun("r4", "b", 2, 2, [0.62, 0.51, 0.5, 0.5]),
  ];
  for (const r of runs) await store.writeRun(r);
  await store.writeFailure({ runId: "r1", error: "later failure", iteration: 3, at: "t" });
  assert.deepEqual(await store.readRun("r1"), runs[0]);
  // No temp files are left behind.
  const names = [...Deno.readDirSync(join(store.dir, "runs"))].map((e) => e.name).sort();
  assert.deepEqual(names, ["r1.json", "r2.json", "r3.json", "r4.json"]);
  const t1 = buildTable(spec, runs);
  const t2 = buildTable(spec, await store.readAllRuns());
  assert.equal(tableMarkdown(t1), tableMarkdown(t2));
  assert.equal(tableCsv(t1), tableCsv(t2));
  const rowB = t1.rows.find((r) => r.key === "b")!;
  assert.equal(rowB.seeds, 2);
  assert.ok(rowB.p[0] !== null && rowB.p[0]! < 0.01, `p = ${rowB.p[0]}`);
  assert.match(tableMarkdown(t1), /\| b \| 2 \| 10 \| 53\.75 ± 0\.71\*\* \|/);
  await assert.rejects(async () => {
    await Deno.writeTextFile(store.runPath("bad"), "{not json");
    await store.readRun("bad");
  }, /bad\.json: not valid JSON/);
  await writeAtomic(join(root, "x", "y.txt"), new TextEncoder().encode("hello"));
  assert.equal(await Deno.readTextFile(join(root, "x", "y.txt")), "hello");
  await Deno.remove(root, { recursive: true });
});

Deno.test("grid: folds multiply the runs, each run names its fold; tables expect folds x seeds", () => {
  const spec: BenchmarkSpec = {
    ...laBaselines,
    dataset: { id: "la", folds: ["f1", "f2"] },
    methods: [{ method: "dtc" }],
    labeled: [8],
    seeds: [1, 2],
  };
  const runs = expandGrid(spec);
  assert.equal(runs.length, 4);
  assert.deepEqual(runs.map((r) => [r.split, r.seed]), [["f1", 1], ["f1", 2], ["f2", 1], [
    "f2",
    2,
  ]]);
  assert.equal(new Set(runs.map((r) => r.runId)).size, 4);
  // Without folds the spec carries no split key, so existing run ids are unchanged.
  assert.ok(!("split" in expandGrid(laBaselines)[0]!.spec));
  const t = buildTable(spec, []);
  assert.equal(t.rows.find((r) => r.key === "dtc")!.expectedSeeds, 4);
  assert.match(t.footer[0]!, /over 2 folds x 2 seed\(s\) \(4 runs planned per cell/);
});

Deno.test("bench: a missing dataset root is one line naming it, before any run starts", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("../benchmarks/main.ts", import.meta.url).pathname,
      "--benchmark",
      "la_baselines",
      "--data-dir",
      "/nonexistent/la",
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 2);
  const err = new TextDecoder().decode(out.stderr).trim();
  assert.equal(err.split("\n").length, 1, err);
  assert.match(err, /^bench: \/nonexistent\/la: .*not found .*deno task data la/);
});
