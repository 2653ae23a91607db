/**
 * Bad inputs found by trying about 200 of them across every task (issue 22's catalogue): each
 * fix here answers with one line naming the flag, file or folder and what was expected, before
 * any work is done or lost. Flag combinations that were ignored without a word (two modes,
 * `--shard` with `--jobs N`, `--data-dir` on the synthetic benchmark), numbers that were not
 * numbers (perf), a folder that cannot take the output (report, evaluate, `--tables-only`), a
 * root with no case at all, a malformed run file printed by every `--jobs` worker, and a
 * corrupt test case found only after the training. Every fixture is written here.
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { parseBenchArgs } from "../benchmarks/cli.ts";
import { parseArgs as parsePerfArgs } from "../benchmarks/perf.ts";
import { checkWritable, ResultStore } from "../benchmarks/harness/store.ts";
import { expandGrid } from "../benchmarks/harness/plan.ts";
import { classifyRuns } from "../benchmarks/harness/status.ts";
import { executeRun } from "../benchmarks/harness/runner.ts";
import { Progress } from "../benchmarks/harness/progress.ts";
import type { BenchmarkSpec } from "../benchmarks/harness/spec.ts";
import { synthetic } from "../benchmarks/synthetic.ts";
import { checkRoot } from "../datasets/check.ts";
import { getDataset } from "../datasets/mod.ts";
import { la } from "../datasets/la.ts";
import { writeHdf5 } from "../datasets/io/hdf5.ts";
import { initBackend } from "../methods/nn/backend.ts";
import { ROOT, task } from "./task_util.ts";

const MAIN = join(ROOT, "benchmarks", "main.ts");

/** The message of the Error `f` throws (fails when it throws none). */
function thrown(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    return (e as Error).message;
  }
  throw new assert.AssertionError({ message: "no error thrown" });
}

/** Run a task; assert exit 2 and exactly one output line matching `want`; returns it. */
async function oneLine(script: string, args: string[], want: RegExp): Promise<string> {
  const r = await task(script, args);
  const lines = (r.stdout + r.stderr).split("\n").filter((l) => l !== "");
  const what = `${script} ${args.join(" ")}:\n${r.stdout}${r.stderr}`;
  assert.equal(r.code, 2, what);
  assert.equal(lines.length, 1, what);
  assert.match(lines[0]!, want, what);
  return lines[0]!;
}

Deno.test("bench flags: empty --methods, unsafe integers, two modes, --shard with --jobs N", () => {
  assert.equal(
    thrown(() => parseBenchArgs(["--methods", ""])),
    "--methods: expected a comma-separated list of method ids or row keys, got '' (deno task bench --list lists them)",
  );
  assert.match(thrown(() => parseBenchArgs(["--methods", " , "])), /^--methods: expected /);
  // 1e20 is an integer to Number.isInteger, and a run that never ends.
  assert.equal(
    thrown(() => parseBenchArgs(["--iterations", "1e20"])),
    "--iterations: expected one positive integer, got '1e20'",
  );
  assert.match(thrown(() => parseBenchArgs(["--seeds", "1e20"])), /^--seeds: expected /);
  assert.equal(parseBenchArgs(["--iterations", "9007199254740991"]).iterations, 2 ** 53 - 1);
  for (
    const [args, want] of [
      [["--dry-run", "--tables-only"], "--dry-run: not with --tables-only (pass one of them)"],
      [["--status", "--dry-run"], "--dry-run: not with --status (pass one of them)"],
      [["--tables-only", "--list"], "--tables-only: not with --list (pass one of them)"],
      [
        ["--shard", "0/2", "--jobs", "2"],
        "--shard: not with --jobs 2 (a shard runs in one process; drop one of them)",
      ],
      [["--shard", "0/2", "--jobs", "auto"], /^--shard: not with --jobs auto /],
    ] as const
  ) {
    const msg = thrown(() => parseBenchArgs([...args]));
    if (typeof want === "string") assert.equal(msg, want);
    else assert.match(msg, want);
  }
  // What --jobs workers are started with stays valid; one mode alone is fine.
  const w = parseBenchArgs(["--jobs", "1", "--shard", "1/2"]);
  assert.deepEqual([w.jobs, w.shard], ["1", "1/2"]);
  assert.equal(parseBenchArgs(["--status"]).status, true);
  assert.equal(parseBenchArgs(["--methods", "supervised,"]).methods?.join(), "supervised");
});

Deno.test("perf flags: a number flag that is not a whole number is one line naming it", () => {
  const o = parsePerfArgs(["--batch", "3", "--runs", "1", "--warmup", "0", "--mem-steps", "0"]);
  assert.deepEqual([o.batch, o.runs, o.warmup, o.memSteps], [3, 1, 0, 0]);
  for (
    const [args, want] of [
      [["--batch", "abc"], "--batch: expected a positive integer, got 'abc'"],
      [["--runs", "0"], "--runs: expected a positive integer, got '0'"],
      [["--threads", "-1"], "--threads: expected a positive integer, got '-1'"],
      [["--nf", "2.5"], "--nf: expected a positive integer, got '2.5'"],
      [["--mem-steps", "-5"], "--mem-steps: expected a non-negative integer, got '-5'"],
      [["--warmup", "x"], "--warmup: expected a non-negative integer, got 'x'"],
      [["--js-max-voxels", ""], "--js-max-voxels: expected a non-negative integer, got ''"],
    ] as const
  ) {
    assert.equal(thrown(() => parsePerfArgs([...args])), want);
  }
});

Deno.test("perf --json under a missing folder, compile flags: one line, exit 2, before any work", async () => {
  await oneLine(
    "benchmarks/perf.ts",
    ["--json", "/nonexistent/dir/perf.json", "--no-torch"],
    /^perf: --json: '\/nonexistent\/dir\/perf\.json': folder '\/nonexistent\/dir' does not exist$/,
  );
  const tmp = await Deno.makeTempDir();
  try {
    const file = join(tmp, "a-file");
    await Deno.writeTextFile(file, "x");
    await oneLine(
      "benchmarks/compile.ts",
      ["--bogus"],
      /^compile: unknown or incomplete flag --bogus /,
    );
    await oneLine(
      "benchmarks/compile.ts",
      ["--form", "zip"],
      /^compile: unknown or incomplete flag --form /,
    );
    await oneLine(
      "benchmarks/compile.ts",
      ["--out", file, "--no-check"],
      new RegExp(`^compile: --out: '${file}' is a file, not a folder \\(pass a folder for `),
    );
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("checkWritable: the line says what could not be stored", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(join(tmp, "f"), "x");
    // A file where a folder should be: not writable, as root too.
    const dir = join(tmp, "f", "sub");
    await assert.rejects(
      () => checkWritable([dir], "the report and its plots"),
      (e: Error) =>
        e.message.startsWith(`${dir}: not writable (`) &&
        e.message.endsWith(
          "): the report and its plots could not be stored; pass --out DIR on a writable disk or fix the folder's permissions",
        ) && !e.message.includes("\n"),
    );
    await assert.rejects(
      () => checkWritable([dir]),
      /: results, checkpoints and failure records could not be stored; /,
    );
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("report, evaluate and --tables-only: a results folder that cannot take the output is one line, before any work", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    // <out>/synthetic is a file: --out passes its own check, the benchmark folder cannot be made.
    const out = join(tmp, "out");
    await Deno.mkdir(out);
    await Deno.writeTextFile(join(out, "synthetic"), "not a folder");
    const dir = join(out, "synthetic");
    await oneLine(
      "benchmarks/report_main.ts",
      ["--out", out],
      new RegExp(
        `^report: ${dir}: not writable \\(.*\\): the report and its plots could not be stored; `,
      ),
    );
    await oneLine(
      MAIN,
      ["--tables-only", "--out", out],
      new RegExp(
        `^bench: ${dir}: not writable \\(.*\\): the tables and the report could not be stored; `,
      ),
    );
    // evaluate: before the checkpoint is even read (it does not exist).
    await oneLine(
      "benchmarks/evaluate_main.ts",
      ["--checkpoint", join(tmp, "none.pth"), "--benchmark", "synthetic", "--out", out],
      new RegExp(
        `^evaluate: ${dir}: not writable \\(.*\\): the re-scored run file could not be stored; `,
      ),
    );
    const file = join(tmp, "a-file");
    await Deno.writeTextFile(file, "x");
    await oneLine(
      "benchmarks/evaluate_main.ts",
      ["--checkpoint", join(tmp, "none.pth"), "--benchmark", "synthetic", "--out", file],
      new RegExp(`^evaluate: --out: '${file}' is a file, not a folder`),
    );
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("bench: --data-dir on the synthetic benchmark, a root with no case, a malformed run file under --jobs 2", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const tiny = ["--methods", "supervised", "--labeled", "2", "--iterations", "1"];
    await oneLine(
      MAIN,
      [...tiny, "--data-dir", tmp, "--dry-run"],
      /^bench: --data-dir: benchmark synthetic generates its data and reads no dataset root \(pass --benchmark NAME /,
    );
    const la8 = ["--benchmark", "la_baselines", "--methods", "supervised", "--labeled", "8"];
    const aFile = join(tmp, "a-file");
    await Deno.writeTextFile(aFile, "x");
    await oneLine(
      MAIN,
      [...la8, "--data-dir", aFile, "--no-estimate"],
      new RegExp(
        `^bench: --data-dir: '${aFile}' is a file, not a folder \\(pass the la data root\\)$`,
      ),
    );
    // An LA root that exists but holds no case (an empty folder, another dataset's layout).
    const root = join(tmp, "empty");
    await Deno.mkdir(root);
    await Deno.writeTextFile(join(root, "volume-1.nii.gz"), "a LiTS file, not an LA case");
    await oneLine(
      MAIN,
      [...la8, "--seeds", "1,2", "--iterations", "1", "--no-estimate", "--data-dir", root],
      new RegExp(`^bench: ${root}: no la case found there \\(expected the layout `),
    );
    // A file that is JSON but no run record: the parent says it once, before starting workers.
    const out = join(tmp, "out");
    const [, second] = expandGrid(synthetic, {
      methods: ["supervised"],
      labeled: [2],
      seeds: [1, 2],
      iterations: 1,
    });
    const store = new ResultStore(out, "synthetic");
    await Deno.mkdir(join(store.dir, "runs"), { recursive: true });
    await Deno.writeTextFile(store.runPath(second!.runId), "{}");
    await oneLine(
      MAIN,
      [...tiny, "--seeds", "1,2", "--jobs", "2", "--no-estimate", "--backend", "cpu", "--out", out],
      new RegExp(
        `^bench: ${store.runPath(second!.runId)}: not a run record \\(missing 'runId'; delete it`,
      ),
    );
    assert.deepEqual([...Deno.readDirSync(join(store.dir, "runs"))].map((e) => e.name), [
      `${second!.runId}.json`,
    ]);
    // --status: a failure record that is not JSON is that run's state, not the end of the report.
    await Deno.remove(store.runPath(second!.runId));
    await Deno.mkdir(join(store.dir, "failed"), { recursive: true });
    await Deno.writeTextFile(store.failurePath(second!.runId), "garbage");
    const [first] = expandGrid(synthetic, {
      methods: ["supervised"],
      labeled: [2],
      seeds: [1],
      iterations: 1,
    });
    const st = await classifyRuns([first!, second!], store);
    assert.deepEqual(st.map((x) => x.state), ["missing", "failed"]);
    assert.equal(
      st[1]!.detail,
      `${store.failurePath(second!.runId)}: not valid JSON (delete it to recompute that run)`,
    );
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("deno task data: --root a file, and a root with no case, are one line each", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const run = async (id: string, root: string) => {
      const lines: string[] = [];
      const code = await checkRoot(getDataset(id), root, (l) => lines.push(l));
      return { code, lines };
    };
    const file = join(tmp, "f");
    await Deno.writeTextFile(file, "x");
    assert.deepEqual(await run("la", file), {
      code: 1,
      lines: [`${file}: a file, not a folder (pass the folder that holds the la cases)`],
    });
    const { code, lines } = await run("lits", tmp);
    assert.equal(code, 1);
    assert.equal(lines.length, 4, lines.join("\n"));
    assert.equal(lines[0], `lits: 0 cases under ${tmp}`);
    assert.match(
      lines[2]!,
      new RegExp(
        `^${tmp}: no lits case found there \\(all 131 split cases missing; the first: \\d+: missing \\(expected ${tmp}/volume-\\d+\\.nii \\+ segmentation-\\d+\\.nii\\)\\)$`,
      ),
    );
    assert.equal(lines[3], "lits: 1 problem(s)");
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test({
  name: "runner: a corrupt test case fails the run before its first training step",
  sanitizeResources: false,
  async fn() {
    const tmp = await Deno.makeTempDir();
    try {
      const shape = [20, 18, 16];
      const n = 20 * 18 * 16;
      const image = Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37) * 2);
      const label = Uint8Array.from({ length: n }, (_, i) => (i % 7 === 0 ? 1 : 0));
      for (const id of ["TRAIN_A", "TEST_T"]) {
        await Deno.mkdir(join(tmp, id));
        await writeHdf5(join(tmp, id, "mri_norm2.h5"), {
          image: { data: image, shape },
          label: { data: id === "TEST_T" ? label.map((v, i) => (i === 0 ? 3 : v)) : label, shape },
        }, { gzip: 4 });
      }
      const splitFile = join(tmp, "split.json");
      await Deno.writeTextFile(
        splitFile,
        JSON.stringify({
          dataset: "la",
          source: "test",
          splits: [{ name: "t", train: ["TRAIN_A"], val: [], test: ["TEST_T"] }],
        }),
      );
      const spec: BenchmarkSpec = {
        ...synthetic,
        id: "bad_test_case",
        dataset: { id: "la", options: { splitFile } },
        methods: [{ method: "supervised", labeledOnly: true }],
        labeled: [1],
        seeds: [1],
        iterations: 3,
        patch: [16, 16, 16],
        common: { nFilters: 2 },
        eval: { ...synthetic.eval, patch: [16, 16, 16], strideXY: 16, strideZ: 16 },
        checkpointEvery: 1,
      };
      const ds = la.open(tmp, { splitFile });
      const store = new ResultStore(join(tmp, "out"), spec.id);
      const [run] = expandGrid(spec);
      const r = await executeRun(run!, {
        spec,
        dataset: ds,
        split: (await ds.splits())[0]!,
        store,
        provenance: await initBackend("cpu"),
        gitCommit: "test",
        progress: new Progress(1e9, false),
        cache: new Map(),
        index: 0,
        total: 1,
      });
      assert.equal(r.status, "failed");
      if (r.status !== "failed") return;
      const file = join(tmp, "TEST_T", "mri_norm2.h5");
      assert.equal(
        r.error,
        `run ${
          run!.runId
        } (supervised L=1 seed=1): failed at iteration 0: ${file}: unexpected label values 3 (allowed 0, 1)`,
      );
      // No step was taken: no checkpoint (one every iteration) was ever written.
      const ckpts = (() => {
        try {
          return [...Deno.readDirSync(join(store.dir, "checkpoints"))].map((e) => e.name);
        } catch {
          return [];
        }
      })();
      assert.deepEqual(ckpts, []);
      assert.equal((await store.readFailure(run!.runId))?.iteration, 0);
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  },
});

Deno.test("report: a results root without run files is one line, and nothing is created there", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const out = join(tmp, "no-results");
    await oneLine(
      "benchmarks/report_main.ts",
      ["--out", out],
      new RegExp(`^report: no run files under ${out}/synthetic/runs \\(expected the results of `),
    );
    assert.equal(await Deno.stat(out).then(() => true, () => false), false);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("environment: a junk SEMISEG_GC_MB, SEMISEG_POOL_MB or SEMISEG_CONV_LAYOUT is named in one line", async () => {
  for (
    const [env, code, want] of [
      [
        { SEMISEG_GC_MB: "abc" },
        'import { gcLimitBytes } from "./benchmarks/harness/memory.ts"; gcLimitBytes();',
        /^SEMISEG_GC_MB=abc: expected a positive number of MiB; using 1024$/m,
      ],
      [
        { SEMISEG_POOL_MB: "-3" },
        'import { initBackend } from "./methods/nn/backend.ts"; await initBackend("cpu");',
        /^SEMISEG_POOL_MB=-3: expected a number of MiB >= 0 \(0 turns the pool off\); using 1024$/m,
      ],
      [
        { SEMISEG_CONV_LAYOUT: "bogus" },
        'import { initBackend } from "./methods/nn/backend.ts"; await initBackend("cpu");',
        /^SEMISEG_CONV_LAYOUT=bogus: expected plain, blocked or auto; using auto$/m,
      ],
    ] as const
  ) {
    const r = await new Deno.Command(Deno.execPath(), {
      args: ["eval", code],
      cwd: ROOT,
      env,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const err = new TextDecoder().decode(r.stderr);
    // The conv layout and the pool bound are read when the native kernels load: nothing to
    // name without them.
    if (!("SEMISEG_GC_MB" in env) && /native kernels unavailable/.test(err)) continue;
    assert.match(err, want, err);
    assert.equal(err.split("\n").filter((l) => /SEMISEG_/.test(l)).length, 1, err);
  }
});

Deno.test("perf --help lists its flags (exit 0) instead of 'unknown flag --help'", async () => {
  const r = await task("benchmarks/perf.ts", ["--help"]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^usage: deno task perf \[flags\]/);
  for (const flag of ["--shapes", "--full", "--infer-only", "--backends", "--threads", "--json"]) {
    assert.ok(r.stdout.includes(flag), `${flag} missing from --help`);
  }
});
