/**
 * Bad input in the results folder and on the command line (issue 22): a run file that is JSON
 * but not a run record, a truncated checkpoint, and the flags `--iterations -1`, `--seeds 1,1`
 * and `--out FILE`. Each is one line naming the file or flag; a truncated checkpoint is set
 * aside and its run restarts from iteration 0, ending equal to an uninterrupted run.
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { encodeCheckpoint, ResultStore, type RunRecord } from "../benchmarks/harness/store.ts";
import { parseBenchArgs } from "../benchmarks/cli.ts";
import { expandGrid } from "../benchmarks/harness/plan.ts";
import { classifyRuns } from "../benchmarks/harness/status.ts";
import { synthetic } from "../benchmarks/synthetic.ts";
import { ROOT, task, TINY_RUN } from "./task_util.ts";
import { fakeRecord } from "./records.ts";

const MAIN = join(ROOT, "benchmarks", "main.ts");
const REPORT = join(ROOT, "benchmarks", "report_main.ts");

/** A well-formed record of run `runId` (the fields every reader uses). */
function record(runId: string): RunRecord {
  // null: JSON's spelling of NaN (an empty prediction's distances) is a valid metric value.
  const values = { dice: 0.9, jaccard: 0.8, asd: null as unknown as number, hd95: 1 };
  return fakeRecord(runId, {
    curve: [{ iteration: 1, values: { loss: 0.5 } }],
    cases: [{ id: "c0", values }],
    mean: { ...values },
  });
}

Deno.test("run records: JSON that is not a run record is one line naming the file, the field and the fix", async () => {
  const root = await Deno.makeTempDir();
  try {
    const store = new ResultStore(root, "synthetic");
    await store.writeRun(record("good"));
    assert.deepEqual(await store.readRun("good"), record("good"));
    const { cases: _, ...noCases } = record("nocases");
    const bad: [string, unknown, string][] = [
      ["empty", {}, "missing 'runId'"],
      ["nocases", noCases, "missing 'cases'"],
      ["array", [], "the file holds an array, expected an object"],
      ["nul", null, "the file holds null, expected an object"],
      ["casestr", { ...record("casestr"), cases: "x" }, "'cases' is a string, expected an array"],
      ["labeledstr", { ...record("labeledstr"), labeled: "2" }, "'labeled' is a string"],
      [
        "dicestr",
        { ...record("dicestr"), cases: [{ id: "c0", values: { dice: "0.9" } }] },
        "'cases[0].values.dice' is a string, expected a number",
      ],
      ["caseid", { ...record("caseid"), cases: [{ values: {} }] }, "missing 'cases[0].id'"],
      ["splitnum", { ...record("splitnum"), split: { name: "s", hash: 3 } }, "'split.hash'"],
      ["otherid", record("someone-else"), "its runId 'someone-else' is not its file name's"],
    ];
    for (const [name, value, why] of bad) {
      const p = store.runPath(name);
      await Deno.writeTextFile(p, JSON.stringify(value));
      const err = await store.readRun(name).then(() => null, (e: Error) => e.message);
      assert.ok(err !== null, name);
      assert.equal(err.split("\n").length, 1, err);
      assert.ok(err.startsWith(`${p}: not a run record (${why}`), err);
      assert.ok(err.endsWith("; delete it to recompute that run)"), err);
      await assert.rejects(() => store.readAllRuns(), (e: Error) => e.message === err, name);
      await Deno.remove(p);
    }
    assert.equal((await store.readAllRuns()).length, 1);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("run records: --tables-only, report and --status name a malformed run file in one line", async () => {
  const root = await Deno.makeTempDir();
  try {
    const runs = expandGrid(synthetic, { methods: ["supervised"], labeled: [2] });
    const store = new ResultStore(root, "synthetic");
    await store.writeRun(record(runs[0]!.runId));
    const badPath = store.runPath(runs[1]!.runId);
    await Deno.writeTextFile(badPath, "{}");
    const want = `${badPath}: not a run record (missing 'runId'; delete it to recompute that run)`;
    const plan = ["--methods", "supervised", "--labeled", "2", "--out", root];
    for (
      const [script, args, prefix] of [
        [MAIN, [...plan, "--tables-only"], "bench"],
        [REPORT, ["--out", root], "report"],
      ] as const
    ) {
      const r = await task(script, [...args]);
      const lines = (r.stdout + r.stderr).split("\n").filter((l) => l !== "");
      assert.equal(r.code, 2, r.stderr);
      assert.deepEqual(lines, [`${prefix}: ${want}`]);
    }
    // --status: the malformed file is not counted as finished; its line names it.
    const st = await classifyRuns(runs, store);
    assert.deepEqual(st.map((s) => s.state), ["finished", "failed"]);
    assert.equal(st[1]!.detail, want);
    const r = await task(MAIN, [...plan, "--status"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /finished 1, running 0, failed 1, missing 0/);
    assert.ok(r.stdout.includes(`failed   ${runs[1]!.runId}  supervised L=2 seed=`), r.stdout);
    assert.ok(r.stdout.includes(want), r.stdout);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

const RUN = TINY_RUN;

Deno.test({
  name:
    "checkpoint: a truncated one is set aside in one line and its run restarts, equal to an uninterrupted run",
  sanitizeResources: false,
  async fn() {
    const tmp = await Deno.makeTempDir();
    try {
      const [a, b] = [join(tmp, "a"), join(tmp, "b")];
      const full = await task(MAIN, [...RUN, "--out", a]);
      assert.equal(full.code, 0, full.stderr);
      const [run] = expandGrid(synthetic, {
        methods: ["supervised"],
        labeled: [2],
        seeds: [1],
        iterations: 10,
      });
      const storeA = new ResultStore(a, "synthetic");
      const storeB = new ResultStore(b, "synthetic");
      // A checkpoint cut short (a copy interrupted, a full disk): header intact, data missing.
      const whole = encodeCheckpoint({
        iteration: 5,
        method: { tensors: { w: { shape: [256], values: new Float32Array(256) } }, extra: {} },
        harness: { trainSeconds: 1 },
      });
      const ckpt = storeB.checkpointPath(run!.runId);
      await Deno.mkdir(join(ckpt, ".."), { recursive: true });
      await Deno.writeFile(ckpt, whole.subarray(0, whole.length >> 1));
      const rerun = await task(MAIN, [...RUN, "--out", b]);
      assert.equal(rerun.code, 0, rerun.stderr);
      const said = rerun.stderr.split("\n").filter((l) => l.includes("corrupt checkpoint"));
      assert.deepEqual(said, [
        `run ${
          run!.runId
        } (supervised L=2 seed=1): ${ckpt}: corrupt checkpoint (expected ${whole.length} bytes, found ${
          whole.length >> 1
        }); set aside as ${ckpt}.bad, restarting from iteration 0`,
      ]);
      assert.match(rerun.stdout, /^1\/1 runs done/m);
      assert.deepEqual(
        [...Deno.readDirSync(join(b, "synthetic", "checkpoints"))].map((e) => e.name),
        [
          `${run!.runId}.ckpt.bad`,
        ],
      );
      const ra = (await storeA.readRun(run!.runId))!, rb = (await storeB.readRun(run!.runId))!;
      assert.deepEqual(rb.cases, ra.cases);
      assert.deepEqual(rb.mean, ra.mean);
      assert.deepEqual(rb.curve, ra.curve);
      assert.equal(await storeB.readFailure(run!.runId), null);
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  },
});

Deno.test("flags: --iterations -1, --seeds 1,1 and --out FILE are one line naming the flag", async () => {
  const msg = (argv: string[]) => {
    try {
      parseBenchArgs(argv);
    } catch (e) {
      return (e as Error).message;
    }
    return "no error";
  };
  assert.equal(
    msg(["--iterations", "-1"]),
    "--iterations: expected one positive integer, got '-1'",
  );
  assert.equal(msg(["--iterations=-1"]), "--iterations: expected one positive integer, got '-1'");
  assert.equal(
    msg(["--seeds", "-3"]),
    "--seeds: expected a comma-separated list of non-negative integers, got '-3'",
  );
  assert.equal(
    msg(["--seeds", "1,1"]),
    "--seeds: 1 is listed twice in '1,1' (list each value once)",
  );
  assert.equal(
    msg(["--seeds", "2, 7,2"]),
    "--seeds: 2 is listed twice in '2, 7,2' (list each value once)",
  );
  assert.equal(
    msg(["--labeled", "2,2"]),
    "--labeled: 2 is listed twice in '2,2' (list each value once)",
  );
  assert.equal(
    msg(["--methods", "-x"]),
    "flag --methods needs a value (one that starts with '-' is written --methods=-VALUE)",
  );
  // Distinct values and the flags without values are unchanged.
  assert.deepEqual(parseBenchArgs(["--seeds", "1,2", "--iterations", "30"]).seeds, [1, 2]);
  assert.equal(parseBenchArgs(["--iterations", "30"]).iterations, 30);

  const tmp = await Deno.makeTempDir();
  try {
    const file = join(tmp, "file");
    await Deno.writeTextFile(file, "x");
    const cases: [string, string[], string][] = [
      [
        MAIN,
        ["--iterations", "-1"],
        "bench: --iterations: expected one positive integer, got '-1'",
      ],
      [
        MAIN,
        ["--seeds", "1,1"],
        "bench: --seeds: 1 is listed twice in '1,1' (list each value once)",
      ],
      [
        MAIN,
        ["--out", file, "--dry-run"],
        `bench: --out: '${file}' is a file, not a folder (pass a folder for the results)`,
      ],
      [
        MAIN,
        ["--out", join(file, "sub"), "--tables-only"],
        `bench: --out: '${
          join(file, "sub")
        }' lies under '${file}', which is a file (pass a folder for the results)`,
      ],
      [
        REPORT,
        ["--out", file],
        `report: --out: '${file}' is a file, not a folder (pass a folder for the results)`,
      ],
    ];
    for (const [script, args, want] of cases) {
      const r = await task(script, args);
      const lines = (r.stdout + r.stderr).split("\n").filter((l) => l !== "");
      assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
      assert.deepEqual(lines, [want]);
    }
    assert.equal(await Deno.readTextFile(file), "x", "the file is left as it was");
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("checkpoint: a corrupt file is set aside as .bad and the run's other checkpoint removed", async () => {
  const root = await Deno.makeTempDir();
  try {
    const store = new ResultStore(root, "synthetic");
    const state = {
      iteration: 4,
      method: { tensors: { w: { shape: [4], values: new Float32Array(4) } }, extra: {} },
      harness: {},
    };
    await store.writeCheckpoint("r", state);
    await store.writeBest("r", { iteration: 2, score: 0.5, state: state.method });
    const best = await Deno.readFile(store.bestPath("r"));
    // Cut inside the JSON header (after the magic, the SHA-256 and the header length).
    await Deno.writeFile(store.bestPath("r"), best.subarray(0, 72));
    const err = await store.readBest("r").then(() => null, (e: Error) => e.message);
    assert.equal(
      err,
      `${store.bestPath("r")}: corrupt checkpoint (header length beyond end of file)`,
    );
    assert.equal(
      await store.setAsideCheckpoints("r", store.bestPath("r")),
      `${store.bestPath("r")}.bad`,
    );
    // The good checkpoint goes too: without its best-val state it cannot resume the selection.
    assert.deepEqual([...Deno.readDirSync(join(store.dir, "checkpoints"))].map((e) => e.name), [
      "r.best.ckpt.bad",
    ]);
    assert.equal(await store.readCheckpoint("r"), null);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
