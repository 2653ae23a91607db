/**
 * Trustworthy run state (issue 23): the code a run used is hashed and a stored run made by
 * other code is reported, marked in tables and rerun only with --rerun-stale; run files,
 * evaluation files and checkpoints are verified by their SHA-256 (a tampered one is set aside
 * and its run restarts); a read-only results folder fails before any training; a run killed
 * during its evaluation resumes without training and without scoring a finished case again.
 * @module
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import {
  ChecksumMismatchError,
  checkWritable,
  decodeCheckpoint,
  encodeCheckpoint,
  ResultStore,
  type RunRecord,
} from "../benchmarks/harness/store.ts";
import {
  CODE_RULE,
  CodeHasher,
  compareCode,
  describeChanged,
  localImports,
  markStaleRows,
  staleSummary,
} from "../benchmarks/harness/code_hash.ts";
import { expandGrid } from "../benchmarks/harness/plan.ts";
import { helpText, parseBenchArgs } from "../benchmarks/cli.ts";
import { synthetic } from "../benchmarks/synthetic.ts";
import { ROOT, task, TINY_RUN } from "./task_util.ts";
import { fakeRecord } from "./records.ts";

const MAIN = join(ROOT, "benchmarks", "main.ts");
const sha = (b: Uint8Array | string) => createHash("sha256").update(b).digest("hex");

/** A well-formed run record (the fields every reader uses). */
function record(runId: string, dice = 0.9): RunRecord {
  return fakeRecord(runId, {
    spec: { unlabeledCount: 10, dataset: { id: "synthetic" } },
    curve: [{ iteration: 1, values: { loss: 0.5 } }],
    cases: [{ id: "c0", values: { dice, hd95: NaN } }],
    mean: { dice, hd95: NaN },
  });
}

Deno.test("code hash: local runtime imports only, known answers", () => {
  const src = [
    'import * as tf from "@tensorflow/tfjs-core";',
    'import type { A } from "./types.ts";',
    'import { type B, c } from "./c.ts";',
    "import {",
    "  d,",
    "  e as f,",
    '} from "../d.ts";',
    'export { g } from "./g.ts";',
    'export type { H } from "./h.ts";',
    'export * from "./star.ts";',
    'import "./side.ts";',
    'import data from "./data.json" with { type: "json" };',
    'import { abs } from "file:///x/abs.ts";',
    'const m = await import("./lazy.ts");',
    '// import { no } from "./comment.ts";',
    ' * import { no } from "./doc.ts";',
    'const s = "import x from ./str.ts";',
    'import { n } from "npm:left-pad";',
  ].join("\n");
  assert.deepEqual(localImports(src).sort(), [
    "../d.ts",
    "./c.ts",
    "./data.json",
    "./g.ts",
    "./lazy.ts",
    "./side.ts",
    "./star.ts",
    "file:///x/abs.ts",
  ]);
  const a = { hash: "a", files: 2, rule: CODE_RULE, sources: { "x.ts": "1", "y.ts": "2" } };
  assert.deepEqual(compareCode(a, a), { state: "current", changed: [] });
  assert.deepEqual(compareCode(undefined, a), { state: "unknown", changed: [] });
  const b = { hash: "b", files: 2, rule: CODE_RULE, sources: { "x.ts": "1", "z.ts": "3" } };
  assert.deepEqual(compareCode(a, b), { state: "other", changed: ["y.ts", "z.ts"] });
  assert.deepEqual(compareCode({ ...a, resumedFrom: "old" }, a), { state: "other", changed: [] });
  assert.equal(describeChanged(["a"]), "a changed");
  assert.equal(describeChanged(["a", "b", "c", "d", "e"]), "a, b, c and 2 more files changed");
  assert.equal(describeChanged([], true), "resumed from a checkpoint of other code");
  const checks = new Map([
    ["r1", { state: "other" as const, changed: ["methods/ua_mt.ts"] }],
    ["r2", { state: "current" as const, changed: [] }],
    ["r3", { state: "unknown" as const, changed: [] }],
  ]);
  assert.equal(
    staleSummary(checks, 48),
    "1 of 48 stored runs was made by other code (methods/ua_mt.ts changed) and 1 has no code hash (written before code hashes were recorded: unknown code): kept; --rerun-stale reruns them",
  );
  assert.equal(staleSummary(new Map([["r2", checks.get("r2")!]]), 1), null);
});

Deno.test("flags: --rerun-stale is listed in --help and refused where nothing runs", () => {
  assert.match(helpText(), /--rerun-stale +rerun the stored runs made by other code/);
  assert.equal(parseBenchArgs(["--rerun-stale"]).rerunStale, true);
  assert.equal(parseBenchArgs([]).rerunStale, false);
  for (const f of ["--tables-only", "--status"]) {
    assert.throws(
      () => parseBenchArgs(["--rerun-stale", f]),
      (e: Error) =>
        e.message === `--rerun-stale: not with ${f} (it reruns runs; ${f} runs nothing)`,
    );
  }
});

Deno.test("code hash: a run's files are its method's and dataset's imports plus the harness, from file contents", async () => {
  const h = new CodeHasher();
  const ua = await h.forRun("ua-mt", "synthetic");
  const sup = await h.forRun("supervised", "synthetic");
  const paths = Object.keys(ua.sources);
  for (
    const p of [
      "methods/ua_mt.ts",
      "methods/mean_teacher.ts",
      "methods/nn/losses.ts",
      "methods/nn/backend.ts",
      "benchmarks/harness/runner.ts",
      "benchmarks/harness/evaluate.ts",
      "benchmarks/harness/metrics.ts",
      "datasets/synthetic.ts",
    ]
  ) assert.ok(paths.includes(p), p);
  // Registries (which import every method) and other methods' files are not part of it.
  for (const p of ["methods/mod.ts", "datasets/mod.ts", "methods/dtc.ts", "datasets/la.ts"]) {
    assert.ok(!paths.includes(p), p);
  }
  assert.ok(!Object.keys(sup.sources).includes("methods/ua_mt.ts"));
  assert.notEqual(ua.hash, sup.hash);
  assert.equal(ua.files, paths.length);
  assert.equal(ua.rule, CODE_RULE);
  // Known answers: each file's entry is its content's SHA-256; the hash covers the sorted list.
  const text = await Deno.readFile(join(ROOT, "methods", "ua_mt.ts"));
  assert.equal(ua.sources["methods/ua_mt.ts"], sha(text).slice(0, 16));
  const lines = [...paths].sort().map((p) => `${p} ${ua.sources[p]}\n`).join("");
  assert.equal(ua.hash, sha(lines));
  assert.deepEqual(await new CodeHasher().forRun("ua-mt", "synthetic"), ua);
  const la = await h.forRun("ua-mt", "la");
  assert.ok(Object.keys(la.sources).includes("datasets/splits/la.json"));
});

Deno.test("code hash: an edit of an imported file changes it, naming the file; a type-only import does not", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const [a, b, c] = ["a.ts", "b.ts", "c.ts"].map((n) => join(tmp, n));
    await Deno.writeTextFile(
      a!,
      'import { k } from "./b.ts";\nimport type { T } from "./c.ts";\nexport const x: T = k;\n',
    );
    await Deno.writeTextFile(b!, "export const k = 1;\n");
    await Deno.writeTextFile(c!, "export type T = number;\n");
    const root = new URL(`file://${a}`);
    const before = await new CodeHasher().ofRoots([root]);
    assert.deepEqual(Object.keys(before.sources), [a, b]);
    await Deno.writeTextFile(c!, "export type T = number | string;\n");
    assert.equal((await new CodeHasher().ofRoots([root])).hash, before.hash);
    await Deno.writeTextFile(b!, "export const k = 100;\n");
    const after = await new CodeHasher().ofRoots([root]);
    assert.notEqual(after.hash, before.hash);
    assert.deepEqual(compareCode(before, after), { state: "other", changed: [b] });
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("tables: rows built from runs of other code are marked, with a footer line", () => {
  const table = {
    rows: [
      { key: "supervised", labeled: 2, label: "V-Net" },
      { key: "supervised", labeled: 4, label: "V-Net" },
    ],
    footer: ["f"],
  };
  const runs = [record("r1"), { ...record("r2"), labeled: 4 }];
  const checks = new Map([
    ["r1", { state: "other" as const, changed: ["methods/supervised.ts"] }],
    ["r2", { state: "current" as const, changed: [] }],
  ]);
  assert.equal(markStaleRows(table, runs, checks), 1);
  assert.deepEqual(table.rows.map((r) => r.label), ["V-Net (stale code)", "V-Net"]);
  assert.equal(table.footer.length, 2);
  assert.match(
    table.footer[1]!,
    /^Rows marked \(stale code\) include .*1 of 2 stored runs was made by other code \(methods\/supervised\.ts changed\): kept; --rerun-stale reruns them/,
  );
});

Deno.test("store: run and evaluation files carry a SHA-256; a changed one is named and set aside; old files still read", async () => {
  const root = await Deno.makeTempDir();
  try {
    const store = new ResultStore(root, "synthetic");
    const notices: string[] = [];
    store.notice = (l) => notices.push(l);
    await store.writeRun(record("good"));
    await store.writeRun(record("edited"));
    const text = await Deno.readTextFile(store.runPath("good"));
    const raw = JSON.parse(text) as Record<string, unknown>;
    const { checksum, ...rest } = raw;
    assert.equal(checksum, `sha256:${sha(JSON.stringify(rest))}`);
    // Read back without the checksum field: equal to what was written (NaN is stored as null).
    const back = (await store.readRun("good"))!;
    assert.deepEqual(back, JSON.parse(JSON.stringify(record("good"))));
    // A value changed in place, still valid JSON and a valid record: a checksum mismatch.
    const p = store.runPath("edited");
    await Deno.writeTextFile(p, (await Deno.readTextFile(p)).replace('"dice": 0.9', '"dice": 0.1'));
    await assert.rejects(
      () => store.readRun("edited"),
      (e: Error) =>
        e instanceof ChecksumMismatchError &&
        e.message === `${p}: checksum mismatch (its content changed after it was written)`,
    );
    // A file written before checksums (no field) reads as it is, with no notice.
    await Deno.writeTextFile(store.runPath("old"), JSON.stringify(record("old")));
    const all = await store.readAllRuns();
    assert.deepEqual(all.map((r) => r.runId), ["good", "old"]);
    assert.deepEqual(notices, [
      `${p}: checksum mismatch (its content changed after it was written); set aside as ${p}.bad, its run will be planned again`,
    ]);
    assert.ok((await Deno.stat(`${p}.bad`)).isFile);
    assert.equal(await store.readRun("edited"), null);

    // Evaluation progress: round trip; a changed file is set aside and not used.
    const progress = {
      runId: "r",
      key: { iteration: 10, selected: null, code: "h" },
      cases: [{ id: "c0", values: { dice: 0.5 } }],
      evalSeconds: 1.5,
    };
    await store.writeEvalProgress(progress);
    assert.deepEqual(await store.readEvalProgress("r"), {
      progress,
      aside: null,
      why: "",
    });
    const ep = store.evalPath("r");
    await Deno.writeTextFile(ep, (await Deno.readTextFile(ep)).replace("0.5", "0.7"));
    const bad = await store.readEvalProgress("r");
    assert.equal(bad.progress, null);
    assert.equal(bad.aside, `${ep}.bad`);
    assert.equal(bad.why, `${ep}: checksum mismatch (its content changed after it was written)`);
    assert.deepEqual(await store.readEvalProgress("r"), { progress: null, aside: null, why: "" });
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("checkpoint: a byte changed at the same size is a checksum error; version-1 files still decode", () => {
  const c = {
    iteration: 20,
    method: {
      tensors: { w: { shape: [64], values: new Float32Array(64).map((_, i) => i / 7) } },
      extra: { step: 20 },
    },
    harness: { trainSeconds: 3 },
  };
  const bytes = encodeCheckpoint(c);
  assert.equal(new TextDecoder().decode(bytes.subarray(0, 8)), "SSBCKPT2");
  assert.deepEqual(
    bytes.subarray(8, 40),
    new Uint8Array(createHash("sha256").update(bytes.subarray(40)).digest()),
  );
  assert.deepEqual([...decodeCheckpoint(bytes, "ok.ckpt").method.tensors["w"]!.values], [
    ...c.method.tensors.w.values,
  ]);
  const tampered = bytes.slice();
  tampered[tampered.length - 3]! ^= 0x40; // a weight changed, same size
  assert.throws(
    () => decodeCheckpoint(tampered, "t.ckpt"),
    (e: Error) =>
      e.message ===
        "t.ckpt: corrupt checkpoint (checksum mismatch: its content changed after it was written)",
  );
  // Version 1 (before checksums): magic SSBCKPT1, no digest; same layout otherwise.
  const v1 = new Uint8Array(bytes.length - 32);
  v1.set(new TextEncoder().encode("SSBCKPT1"), 0);
  v1.set(bytes.subarray(40), 8);
  const d = decodeCheckpoint(v1, "v1.ckpt");
  assert.equal(d.iteration, 20);
  assert.deepEqual(d.harness, { trainSeconds: 3 });
  assert.deepEqual([...d.method.tensors["w"]!.values], [...c.method.tensors.w.values]);
});

const RUN = TINY_RUN;

/** Bench with `env` added to the child's environment. */
function bench(args: readonly string[], env: Record<string, string> = {}) {
  return task(MAIN, args, env);
}

function names(dir: string): string[] {
  try {
    return [...Deno.readDirSync(dir)].map((e) => e.name).sort();
  } catch {
    return [];
  }
}

const [PLANNED] = expandGrid(synthetic, {
  methods: ["supervised"],
  labeled: [2],
  seeds: [1],
  iterations: 10,
});
const ID = PLANNED!.runId;
const WHERE = `run ${ID} (supervised L=2 seed=1)`;

/** Run the plan of {@link RUN} uninterrupted into `<tmp>/a`: its store and record. */
async function uninterrupted(tmp: string): Promise<{ store: ResultStore; record: RunRecord }> {
  const full = await bench([...RUN, "--out", join(tmp, "a")]);
  assert.equal(full.code, 0, full.stderr);
  const store = new ResultStore(join(tmp, "a"), "synthetic");
  const record = (await store.readRun(ID))!;
  assert.equal(record.cases.length, 6);
  return { store, record };
}

Deno.test({
  name:
    "evaluation: killed after 2 of 6 cases, the rerun trains nothing, scores only the 4 left and equals an uninterrupted run",
  sanitizeResources: false,
  async fn() {
    const tmp = await Deno.makeTempDir();
    try {
      const { record: ra } = await uninterrupted(tmp);
      const b = join(tmp, "b");
      const storeB = new ResultStore(b, "synthetic");
      // Killed (SIGKILL, by the test hook) once 2 test cases are evaluated and stored.
      const killed = await bench([...RUN, "--out", b], {
        SEMISEG_TEST_KILL_AFTER_EVAL_CASES: "2",
      });
      assert.notEqual(killed.code, 0);
      assert.equal(await storeB.readRun(ID), null);
      assert.deepEqual(names(join(b, "synthetic", "checkpoints")), [
        `${ID}.ckpt`,
        `${ID}.eval.json`,
      ]);
      const ckpt = decodeCheckpoint(await Deno.readFile(storeB.checkpointPath(ID)), "ckpt");
      assert.equal(ckpt.iteration, 10, "a checkpoint at the final iteration");
      const trained = ckpt.harness["trainSeconds"] as number;
      const partial = (await storeB.readEvalProgress(ID)).progress!;
      assert.deepEqual(partial.cases, ra.cases.slice(0, 2));

      const rerun = await bench([...RUN, "--out", b]);
      assert.equal(rerun.code, 0, rerun.stderr);
      const lines = rerun.stderr.split("\n").filter((l) => l.startsWith(WHERE));
      assert.deepEqual(lines, [
        `${WHERE}: resuming at iteration 10 of 10 (training finished; evaluating)`,
        `${WHERE}: evaluation resumed: 2 of 6 cases scored earlier, 4 to go`,
        `${WHERE}: evaluation done: 4 cases evaluated now, 2 reused`,
      ]);
      const rb = (await storeB.readRun(ID))!;
      // No training step: the training time is the checkpoint's, to the bit.
      assert.equal(rb.timing.trainSeconds, trained);
      assert.deepEqual(rb.cases, ra.cases);
      assert.deepEqual(rb.mean, ra.mean);
      assert.deepEqual(rb.curve, ra.curve);
      assert.equal(rb.code!.hash, ra.code!.hash);
      assert.deepEqual(names(join(b, "synthetic", "checkpoints")), []);
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "checkpoint: overwritten in place at the same size, it is named, set aside and its run restarts from 0, equal to an uninterrupted run",
  sanitizeResources: false,
  async fn() {
    const tmp = await Deno.makeTempDir();
    try {
      const { record: ra } = await uninterrupted(tmp);
      const b = join(tmp, "b");
      const storeB = new ResultStore(b, "synthetic");
      const killed = await bench([...RUN, "--out", b], { SEMISEG_TEST_KILL_AFTER_EVAL_CASES: "1" });
      assert.notEqual(killed.code, 0);
      const p = storeB.checkpointPath(ID);
      const bytes = await Deno.readFile(p);
      const trained = decodeCheckpoint(bytes, p).harness["trainSeconds"] as number;
      bytes[bytes.length - 8]! ^= 0x01; // one weight's bit, same size
      await Deno.writeFile(p, bytes);
      const restarted = await bench([...RUN, "--out", b]);
      assert.equal(restarted.code, 0, restarted.stderr);
      const said = restarted.stderr.split("\n").filter((l) => l.startsWith(WHERE));
      assert.deepEqual(said, [
        `${WHERE}: ${p}: corrupt checkpoint (checksum mismatch: its content changed after it was written); set aside as ${p}.bad, restarting from iteration 0`,
      ]);
      // The evaluation progress of the abandoned state went with it.
      assert.deepEqual(names(join(b, "synthetic", "checkpoints")), [`${ID}.ckpt.bad`]);
      const rc = (await storeB.readRun(ID))!;
      assert.deepEqual(rc.cases, ra.cases);
      assert.deepEqual(rc.mean, ra.mean);
      assert.deepEqual(rc.curve, ra.curve);
      assert.notEqual(rc.timing.trainSeconds, trained, "trained again");
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "run file: changed after it was written, it is named, set aside and its run done again, equal to the original",
  sanitizeResources: false,
  async fn() {
    const tmp = await Deno.makeTempDir();
    try {
      const { store, record: ra } = await uninterrupted(tmp);
      const rp = store.runPath(ID);
      const original = await Deno.readTextFile(rp);
      const edited = original.replace(/"dice": 0\.\d+/, '"dice": 0.01');
      assert.notEqual(edited, original);
      await Deno.writeTextFile(rp, edited);
      const status = await bench([...RUN, "--out", join(tmp, "a"), "--status"]);
      assert.ok(
        status.stdout.includes(
          `failed   ${ID}  supervised L=2 seed=1: ${rp}: checksum mismatch (its content changed after it was written); the bench sets it aside and runs it again`,
        ),
        status.stdout,
      );
      const redo = await bench([...RUN, "--out", join(tmp, "a")]);
      assert.equal(redo.code, 0, redo.stderr);
      assert.deepEqual(redo.stderr.split("\n").filter((l) => l.includes("checksum")), [
        `${WHERE}: ${rp}: checksum mismatch (its content changed after it was written); set aside as ${rp}.bad, running it again`,
      ]);
      assert.equal(await Deno.readTextFile(`${rp}.bad`), edited);
      const again = (await store.readRun(ID))!;
      assert.deepEqual(again.cases, ra.cases);
      assert.deepEqual(again.mean, ra.mean);
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "code hash: an edited method file is reported, marked in tables and --status, and rerun with --rerun-stale (a failed rerun keeps the old file); a checkpoint of other code resumes as mixed code",
  sanitizeResources: false,
  async fn() {
    const tmp = await Deno.makeTempDir();
    try {
      const method = join(tmp, "ext_sup.ts"), factor = join(tmp, "factor.ts");
      // The learning rate is scaled in code (factor.ts), not in the hyper-parameters: the run id
      // (which hashes the spec) does not change when the factor does.
      await Deno.writeTextFile(
        method,
        `import { supervised } from "file://${ROOT}methods/supervised.ts";
import { FACTOR } from "./factor.ts";
export default {
  ...supervised,
  id: "ext-sup",
  meta: { ...supervised.meta, title: "Ext" },
  create: (hp: typeof supervised.defaults, ctx: Parameters<typeof supervised.create>[1]) =>
    supervised.create({ ...hp, lr: hp.lr * FACTOR }, ctx),
};
`,
      );
      const setFactor = (v: string) => Deno.writeTextFile(factor, `export const FACTOR = ${v};\n`);
      await setFactor("1");
      const out = join(tmp, "out");
      const args = [...RUN, "--methods", "ext-sup", "--method-file", method, "--out", out];
      const first = await bench(args);
      assert.equal(first.code, 0, first.stderr);
      const runs = names(join(out, "synthetic", "runs"));
      assert.equal(runs.length, 1);
      const id = runs[0]!.replace(/\.json$/, "");
      const store = new ResultStore(out, "synthetic");
      const r1 = (await store.readRun(id))!;
      assert.ok(r1.code!.sources[method] && r1.code!.sources[factor], JSON.stringify(r1.code));
      assert.ok(r1.code!.sources["methods/supervised.ts"], "absolute imports are followed");
      const bytes1 = await Deno.readFile(store.runPath(id));

      // The code changes (a diverging factor): the stored run is kept and reported.
      await setFactor("NaN");
      const second = await bench(args);
      assert.equal(second.code, 0, second.stderr);
      const stale =
        `synthetic: 1 of 1 stored runs was made by other code (${factor} changed): kept; --rerun-stale reruns them`;
      assert.ok(second.stderr.includes(stale), second.stderr);
      assert.ok(
        second.stderr.includes(
          `run ${id} (ext-sup L=2 seed=1): finished earlier, skipped (made by other code (${factor} changed); --rerun-stale reruns it)`,
        ),
        second.stderr,
      );
      assert.deepEqual(await Deno.readFile(store.runPath(id)), bytes1);
      const table = await Deno.readTextFile(join(out, "synthetic", "table.md"));
      assert.match(table, /\| Ext \(stale code\) \(external\)(?: \(n=1\))? \| 2 \| 14 \|/);
      assert.ok(table.includes(`- Rows marked (stale code) include`), table);
      const status = await bench([...args.filter((a) => a !== "--no-estimate"), "--status"]);
      assert.equal(status.code, 0, status.stderr);
      assert.ok(
        status.stdout.includes(`  1 of 1 stored runs was made by other code`),
        status.stdout,
      );
      assert.ok(
        status.stdout.includes(`  stale    ${id}  ext-sup L=2 seed=1: ${factor} changed`),
        status.stdout,
      );

      // --rerun-stale with code that fails: the old file stays as it was.
      const failed = await bench([...args, "--rerun-stale"]);
      assert.equal(failed.code, 1, failed.stderr);
      assert.match(failed.stderr, /loss diverged at iteration/);
      assert.deepEqual(await Deno.readFile(store.runPath(id)), bytes1);
      assert.ok(await store.readFailure(id));

      // --rerun-stale with working code: replaced, with the new code's hash and numbers.
      await setFactor("2");
      const rerun = await bench([...args, "--rerun-stale"]);
      assert.equal(rerun.code, 0, rerun.stderr);
      assert.ok(
        rerun.stderr.includes(
          `run ${id} (ext-sup L=2 seed=1): stored result made by other code (${factor} changed): rerunning (--rerun-stale)`,
        ),
        rerun.stderr,
      );
      const r2 = (await store.readRun(id))!;
      assert.notEqual(r2.code!.hash, r1.code!.hash);
      assert.notEqual(r2.code!.sources[factor], r1.code!.sources[factor]);
      assert.equal(r2.code!.sources[method], r1.code!.sources[method]);
      assert.notDeepEqual(r2.curve, r1.curve);
      assert.equal(await store.readFailure(id), null);
      const fourth = await bench(args);
      assert.equal(fourth.code, 0, fourth.stderr);
      assert.ok(!fourth.stderr.includes("other code"), fourth.stderr);
      assert.match(fourth.stderr, /finished earlier, skipped\n/);
      assert.ok(!(await Deno.readTextFile(join(out, "synthetic", "table.md"))).includes("stale"));

      // A checkpoint of other code is resumed (no work lost), and the result recorded as mixed.
      await Deno.remove(store.runPath(id));
      const killed = await bench(args, { SEMISEG_TEST_KILL_AFTER_EVAL_CASES: "1" });
      assert.notEqual(killed.code, 0);
      await setFactor("3");
      const mixed = await bench(args);
      assert.equal(mixed.code, 0, mixed.stderr);
      const where = `run ${id} (ext-sup L=2 seed=1)`;
      assert.deepEqual(mixed.stderr.split("\n").filter((l) => l.startsWith(where)), [
        `${where}: resuming at iteration 10 of 10 (training finished; evaluating)`,
        `${where}: its checkpoint was written by other code (${factor} changed): resuming; the result is recorded as mixed code (--rerun-stale reruns it)`,
        `${where}: stored per-case results belong to another trained state or code: evaluating every case`,
      ]);
      const r3 = (await store.readRun(id))!;
      assert.equal(r3.code!.resumedFrom, r2.code!.hash);
      assert.deepEqual(r3.cases, r2.cases, "trained by the factor-2 code, scored again");
      const after = await bench(args);
      assert.ok(
        after.stderr.includes(
          "synthetic: 1 of 1 stored runs was made by other code (resumed from a checkpoint of other code): kept; --rerun-stale reruns them",
        ),
        after.stderr,
      );
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  },
});

/** Whether `unshare -rm` can give this (root) process a private mount namespace. */
async function canUnshare(): Promise<boolean> {
  try {
    const o = await new Deno.Command("unshare", { args: ["-rm", "true"], stderr: "null" })
      .output();
    return o.success;
  } catch {
    return false;
  }
}

const root = Deno.uid() === 0;
const readOnlyProblem = root && !(await canUnshare())
  ? "running as root (chmod does not stop writes) and `unshare -rm` (a read-only tmpfs) is unavailable"
  : null;
if (readOnlyProblem) {
  Deno.stderr.writeSync(
    new TextEncoder().encode(`run_state_test: read-only folder test skipped: ${readOnlyProblem}\n`),
  );
}

Deno.test({
  name:
    "results folder: read-only (whole, or only failed/) fails in one line naming it, before any training",
  ignore: readOnlyProblem !== null,
  sanitizeResources: false,
  async fn() {
    const tmp = await Deno.makeTempDir();
    try {
      for (const where of ["whole", "failed"] as const) {
        const out = join(tmp, where);
        const bench = join(out, "synthetic");
        const ro = where === "whole" ? out : join(bench, "failed");
        await Deno.mkdir(ro, { recursive: true });
        if (where === "failed") await Deno.mkdir(join(bench, "runs"), { recursive: true });
        // Root ignores permission bits: a read-only tmpfs in a private mount namespace.
        const cmd = root
          ? new Deno.Command("unshare", {
            args: [
              "-rm",
              "sh",
              "-c",
              'mount -t tmpfs -o ro tmpfs "$1" && shift && exec "$@"',
              "sh",
              ro,
              Deno.execPath(),
              "run",
              "-A",
              MAIN,
              ...RUN,
              "--out",
              out,
            ],
            cwd: ROOT,
            env: { OMP_NUM_THREADS: "1" },
            stdin: "null",
            stdout: "piped",
            stderr: "piped",
          })
          : null;
        if (!root) await Deno.chmod(ro, 0o555);
        const res = cmd ? await cmd.output() : await new Deno.Command(Deno.execPath(), {
          args: ["run", "-A", MAIN, ...RUN, "--out", out],
          cwd: ROOT,
          env: { OMP_NUM_THREADS: "1" },
          stdin: "null",
          stdout: "piped",
          stderr: "piped",
        }).output();
        if (!root) await Deno.chmod(ro, 0o755);
        const text = new TextDecoder().decode(res.stdout) + new TextDecoder().decode(res.stderr);
        const lines = text.split("\n").filter((l) => l !== "");
        const dir = where === "whole" ? bench : ro;
        assert.equal(res.code, 2, text);
        assert.equal(lines.length, 1, text);
        assert.ok(
          lines[0]!.startsWith(`bench: ${dir}: not writable (`) &&
            lines[0]!.endsWith(
              "): results, checkpoints and failure records could not be stored; pass --out DIR on a writable disk or fix the folder's permissions",
            ),
          lines[0],
        );
        // Nothing was trained or stored.
        assert.deepEqual(names(join(bench, "runs")), []);
        assert.deepEqual(names(join(bench, "checkpoints")), []);
      }
      // The check itself: a writable folder passes and keeps no probe file behind.
      const ok = join(tmp, "ok");
      await checkWritable([ok, join(ok, "sub")]);
      assert.deepEqual(names(ok), ["sub"]);
      assert.deepEqual(names(join(ok, "sub")), []);
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  },
});
