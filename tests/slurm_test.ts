/**
 * SLURM job arrays (`deno task bench --slurm`).
 *
 * Unit tests: the generated sbatch script (array line, resources, per-task command with
 * --shard), flag validation, and run-status classification on a temporary results folder.
 *
 * Real-cluster tests (need `sbatch` and a cluster that answers; CI starts a one-node cluster
 * with .ci/slurm_up.sh): a 4-task job array of a tiny synthetic benchmark ends with tables
 * bitwise-equal to the same plan run in one local process (cpu backend); and a task cancelled
 * mid-run with `scancel <job>_<task>` is resubmitted with --slurm-resubmit-failed, resumes
 * from its checkpoint, leaves the finished run untouched, and the tables again equal a local run.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { FLAGS, parseBenchArgs, type SlurmRequest } from "../benchmarks/cli.ts";
import { synthetic } from "../benchmarks/synthetic.ts";
import { expandGrid, shardRuns } from "../benchmarks/harness/plan.ts";
import { ResultStore } from "../benchmarks/harness/store.ts";
import {
  arraySpec,
  sbatchScript,
  type ScriptParams,
  shardCount,
  taskArgs,
} from "../benchmarks/harness/slurm_script.ts";
import { unfinishedShards } from "../benchmarks/harness/slurm.ts";
import { classifyRuns, countStates, statusReport } from "../benchmarks/harness/status.ts";

const MAIN = new URL("../benchmarks/main.ts", import.meta.url).pathname;
const dec = new TextDecoder();

// ---------------------------------------------------------------------------------------------
// Unit tests

const REQUEST: SlurmRequest = {
  partition: "gpu",
  gres: "gpu:1",
  time: "02:00:00",
  cpus: 4,
  mem: "16G",
  arrayParallel: 2,
  shards: null,
  dryRun: false,
  resubmitFailed: false,
};

function params(over: Partial<ScriptParams> = {}): ScriptParams {
  return {
    benchmark: "synthetic",
    shards: 4,
    indices: null,
    runs: 8,
    planHash: "abc123",
    request: REQUEST,
    outRoot: "/data/results",
    slurmDir: "/data/results/synthetic/slurm",
    workDir: "/repo",
    mainPath: "/repo/benchmarks/main.ts",
    deno: "/usr/bin/deno",
    args: ["--methods", "supervised,mean-teacher", "--seeds", "1,2", "--method-file", "./my m.ts"],
    ...over,
  };
}

Deno.test("slurm script: array line, resources, output files and the per-task command", () => {
  const s = sbatchScript(params());
  const lines = s.split("\n");
  assert.equal(lines[0], "#!/bin/bash");
  for (
    const d of [
      "--array=0-3%2",
      "--output=/data/results/synthetic/slurm/%A_%a.out",
      "--chdir=/repo",
      "--partition=gpu",
      "--gres=gpu:1",
      "--time=02:00:00",
      "--cpus-per-task=4",
      "--mem=16G",
      "--job-name=bench-synthetic",
    ]
  ) assert.ok(lines.includes(`#SBATCH ${d}`), `missing #SBATCH ${d}\n${s}`);
  const cmd = lines.find((l) => l.startsWith("exec "));
  assert.equal(
    cmd,
    `exec "$DENO" run -A /repo/benchmarks/main.ts --benchmark synthetic --methods ` +
      `supervised,mean-teacher --seeds 1,2 --method-file './my m.ts' --out /data/results ` +
      `--shard "$SLURM_ARRAY_TASK_ID/4"`,
  );
  assert.ok(lines.includes(`DENO="\${SEMISEG_DENO:-/usr/bin/deno}"`));
  assert.match(s, /export OMP_NUM_THREADS="\$\{OMP_NUM_THREADS:-\$SLURM_CPUS_PER_TASK\}"/);
  // Without resources and limits: no such directives; one shard is the array "0".
  const bare = sbatchScript(params({
    shards: 1,
    request: {
      ...REQUEST,
      partition: null,
      gres: null,
      time: null,
      cpus: null,
      mem: null,
      arrayParallel: null,
    },
  }));
  assert.match(bare, /^#SBATCH --array=0$/m);
  assert.doesNotMatch(bare, /--(partition|gres|time|cpus-per-task|mem)=/);
  // A resubmission runs only the given indices, still as shards of 4.
  const re = sbatchScript(params({ indices: [1, 3] }));
  assert.match(re, /^#SBATCH --array=1,3%2$/m);
  assert.match(re, /--shard "\$SLURM_ARRAY_TASK_ID\/4"$/m);
  assert.equal(arraySpec(5, null, null), "0-4");
  assert.equal(shardCount(3, null), 3);
  assert.equal(shardCount(10, 4), 4);
  assert.equal(shardCount(2, 8), 2);
});

Deno.test("slurm: plan flags are forwarded to the tasks, submission flags are not", () => {
  assert.deepEqual(
    taskArgs([
      "--slurm",
      "--benchmark",
      "synthetic",
      "--partition=debug",
      "--labeled",
      "2",
      "--out",
      "res",
      "--array-parallel",
      "3",
      "--backend=cpu",
      "--time",
      "01:00:00",
      "--jobs",
      "2",
      "--slurm-resubmit-failed",
    ]),
    ["--labeled", "2", "--backend", "cpu"],
  );
});

Deno.test("slurm: the flags kept from the tasks are those FLAGS declares forward: false", () => {
  const kept = Object.keys(FLAGS).filter((k) => FLAGS[k]!.forward === false).sort();
  assert.deepEqual(kept, [
    "array-parallel",
    "benchmark",
    "cpus",
    "dry-run",
    "gres",
    "help",
    "jobs",
    "list",
    "mem",
    "out",
    "partition",
    "shard",
    "shards",
    "slurm",
    "slurm-dry-run",
    "slurm-resubmit-failed",
    "status",
    "tables-only",
    "time",
  ]);
  // Every flag, given once: exactly the others come through, in the order given.
  const argv = Object.entries(FLAGS).flatMap(([k, f]) =>
    f.type === "string" ? [`--${k}`, "v"] : [
      `--${k}`,
    ]
  );
  const forwarded = Object.keys(FLAGS).filter((k) => FLAGS[k]!.forward !== false);
  assert.deepEqual(
    taskArgs(argv).filter((a) => a.startsWith("--")),
    forwarded.map((k) => `--${k}`),
  );
  assert.ok(forwarded.includes("rerun-stale") && forwarded.includes("no-estimate"));
});

Deno.test("slurm flags: validated with one-line errors naming the flag", () => {
  const bad: [string[], RegExp][] = [
    [["--slurm", "--time", "90"], /^--time: expected a time limit/],
    [["--slurm", "--time", "1:75:00"], /^--time: /],
    [["--slurm", "--cpus", "0"], /^--cpus: expected a positive integer/],
    [["--slurm", "--mem", "lots"], /^--mem: expected a memory size/],
    [["--slurm", "--array-parallel", "0"], /^--array-parallel: expected a positive integer/],
    [["--slurm", "--shards", "x"], /^--shards: /],
    [["--slurm", "--gres", "gpu 1"], /^--gres: /],
    [["--slurm", "--partition", "a;b"], /^--partition: /],
    [["--partition", "debug"], /^--partition: only with --slurm/],
    [["--slurm", "--shard", "0/2"], /^--shard: not with --slurm/],
    [["--slurm", "--tables-only"], /^--tables-only: not with --slurm/],
  ];
  for (const [argv, re] of bad) {
    assert.throws(() => parseBenchArgs(argv), (e: Error) => {
      assert.match(e.message, re, argv.join(" "));
      assert.ok(!e.message.includes("\n"));
      return true;
    });
  }
  const ok = parseBenchArgs([
    "--slurm-resubmit-failed",
    "--time",
    "1-00:00:00",
    "--mem",
    "4000M",
    "--cpus",
    "2",
    "--shards",
    "3",
  ]);
  assert.deepEqual(ok.slurm, {
    partition: null,
    gres: null,
    time: "1-00:00:00",
    cpus: 2,
    mem: "4000M",
    arrayParallel: null,
    shards: 3,
    dryRun: false,
    resubmitFailed: true,
  });
  assert.equal(parseBenchArgs([]).slurm, null);
  assert.equal(parseBenchArgs(["--status"]).status, true);
});

Deno.test("status: finished / failed / running / missing from the result files", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const runs = expandGrid(synthetic, {
      methods: ["supervised", "mean-teacher"],
      labeled: [2],
      seeds: [1, 2, 3],
      iterations: 8,
    });
    assert.equal(runs.length, 6);
    const store = new ResultStore(tmp, "synthetic");
    const [r0, r1, r2, r3] = runs as [
      typeof runs[0],
      typeof runs[0],
      typeof runs[0],
      typeof runs[0],
    ];
    const put = async (p: string, text: string) => {
      await Deno.mkdir(join(p, ".."), { recursive: true });
      await Deno.writeTextFile(p, text);
    };
    // A run file counts as finished only when it reads as a run record (its fields and types).
    const finished = (runId: string) =>
      JSON.stringify({
        runId,
        benchmark: "synthetic",
        rowKey: "supervised",
        method: "supervised",
        labeled: 2,
        seed: 1,
        hyperParams: {},
        spec: {},
        split: { name: "s", hash: "h" },
        provenance: {},
        timing: { trainSeconds: 1, evalSeconds: 1, iterationsPerSecond: 1 },
        curve: [],
        cases: [],
        mean: {},
        protocol: {},
        finishedAt: "2026-01-01T00:00:00Z",
      });
    await put(store.runPath(r0.runId), finished(r0.runId));
    await put(store.runPath(r1.runId), finished(r1.runId));
    await put(store.checkpointPath(r1.runId), "x"); // stale checkpoint: finished wins
    await put(
      store.failurePath(r2.runId),
      JSON.stringify({ runId: r2.runId, error: "loss diverged at iteration 3", iteration: 3 }),
    );
    await put(store.checkpointPath(r2.runId), "x"); // failed wins over running
    await put(store.checkpointPath(r3.runId), "x");
    const st = await classifyRuns(runs, store);
    assert.deepEqual(st.map((s) => s.state), [
      "finished",
      "finished",
      "failed",
      "running",
      "missing",
      "missing",
    ]);
    assert.equal(st[2]!.detail, "loss diverged at iteration 3");
    assert.match(st[3]!.detail, /^checkpoint written \d+:\d\d ago$/);
    assert.deepEqual(countStates(st), { finished: 2, running: 1, failed: 1, missing: 2 });
    const report = await statusReport(synthetic, runs, store);
    assert.match(report, /6 runs planned/);
    assert.match(report, /finished 2, running 1, failed 1, missing 2/);
    assert.match(report, new RegExp(`failed +${r2.runId} +supervised L=2 seed=3: loss diverged`));
    // Finished runs are listed only when their code is in question: these records predate
    // code hashes, so both are named once as "unknown code", never as unfinished.
    assert.match(report, /2 of 2 stored runs have no code hash/);
    assert.match(report, new RegExp(`stale +${r0.runId} +supervised L=2 seed=1: no code hash`));
    assert.doesNotMatch(report, new RegExp(`(failed|running|missing) +${r0.runId}`));
    // Shards (of 3) that still hold an unfinished run: every shard but the one with r0 and r1.
    const want = [0, 1, 2].filter((i) =>
      shardRuns(runs, { index: i, count: 3 }).some((r) => r !== r0 && r !== r1)
    );
    assert.deepEqual(await unfinishedShards(runs, 3, store), want);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test({
  name: "bench --slurm-dry-run: writes the scripts, prints them and the commands, submits nothing",
  sanitizeResources: false,
  async fn() {
    const tmp = await Deno.makeTempDir();
    try {
      const o = await bench([
        "--benchmark",
        "synthetic",
        "--methods",
        "supervised",
        "--seeds",
        "1,2,3",
        "--slurm-dry-run",
        "--shards",
        "2",
        "--array-parallel",
        "1",
        "--out",
        tmp,
      ]);
      assert.equal(o.code, 0, o.stderr);
      const dir = join(tmp, "synthetic", "slurm");
      const names = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
      assert.equal(names.length, 2, names.join(" "));
      assert.ok(names.every((n) => n.endsWith(".sbatch")));
      const script = await Deno.readTextFile(join(dir, names.find((n) => !n.includes("tables"))!));
      assert.match(script, /^#SBATCH --array=0-1%1$/m);
      assert.match(o.stdout, /6 runs in 2 shards/);
      assert.match(o.stdout, /^ {2}sbatch --parsable \//m);
      assert.match(o.stdout, /Nothing was submitted\./);
      assert.ok(script.includes(`--out ${tmp} --shard "$SLURM_ARRAY_TASK_ID/2"`));
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  },
});

// ---------------------------------------------------------------------------------------------
// Real-cluster tests

async function run(cmd: string, args: string[]): Promise<{ ok: boolean; out: string } | null> {
  try {
    const o = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped", stdin: "null" })
      .output();
    return { ok: o.success, out: dec.decode(o.stdout) + dec.decode(o.stderr) };
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
}

async function clusterProblem(): Promise<string | null> {
  const sbatch = await run("sbatch", ["--version"]);
  if (sbatch === null) return "sbatch is not installed (install slurm-wlm; see .ci/slurm_up.sh)";
  const ping = await run("sinfo", ["-h", "-o", "%t"]);
  if (!ping?.ok) {
    return `sbatch is installed but no cluster answers (sinfo: ${
      ping?.out.trim().split("\n")[0]
    }); start one with .ci/slurm_up.sh`;
  }
  return null;
}

const problem = await clusterProblem();
// In CI a cluster that was installed but does not answer is a failure, not a skip.
const requireCluster = Deno.env.get("CI") === "true" && problem !== null &&
  !problem.startsWith("sbatch is not installed");
if (problem && !requireCluster) {
  Deno.stderr.writeSync(
    new TextEncoder().encode(`slurm_test: real-cluster tests skipped: ${problem}\n`),
  );
}

/** Run the bench CLI in a subprocess (cwd = this checkout). */
async function bench(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const o = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    // oneDNN's results depend on its thread count: fix it for the local run and (through
    // sbatch's exported environment) for the array tasks alike.
    env: { OMP_NUM_THREADS: "1" },
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  }).output();
  return { code: o.code, stdout: dec.decode(o.stdout), stderr: dec.decode(o.stderr) };
}

function jobIds(stdout: string): { array: string; tables: string } {
  const a = /Submitted SLURM job array (\d+)/.exec(stdout);
  const t = /job (\d+) rebuilds/.exec(stdout);
  assert.ok(a && t, `no job ids in:\n${stdout}`);
  return { array: a[1]!, tables: t[1]! };
}

const WAIT_MS = 1_500_000; // generous: a loaded 2-core CI machine trains slowly

/** Poll squeue until none of `ids` is queued or running (bounded). */
async function waitJobs(ids: string[]): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  while (Date.now() < deadline) {
    const q = await run("squeue", ["-h", "-j", ids.join(","), "-o", "%i %T"]);
    if (!q || !q.ok || q.out.trim() === "") return;
    await new Promise((r) => setTimeout(r, 1000));
  }
  throw new Error(`jobs ${ids.join(",")} still queued after ${WAIT_MS / 1000} s`);
}

async function cancelQuietly(ids: string[]): Promise<void> {
  if (ids.length) await run("scancel", ids);
}

async function readOrEmpty(p: string): Promise<string> {
  try {
    return await Deno.readTextFile(p);
  } catch {
    return "";
  }
}

async function assertSameTables(got: string, want: string, context: () => Promise<string>) {
  for (const f of ["table.csv", "table.md"]) {
    const [a, b] = [await readOrEmpty(join(got, f)), await readOrEmpty(join(want, f))];
    if (a !== b) {
      assert.fail(`${f} differs from the local run\n${a}\n---\n${b}\n${await context()}`);
    }
  }
}

/** All SLURM output files of a results folder, for failure messages. */
async function slurmLogs(dir: string): Promise<string> {
  const parts: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) {
      if (e.name.endsWith(".out")) {
        parts.push(`== ${e.name}\n${await readOrEmpty(join(dir, e.name))}`);
      }
    }
  } catch { /* no folder yet */ }
  return parts.join("\n");
}

const PLAN_A = [
  "--benchmark",
  "synthetic",
  "--methods",
  "supervised,mean-teacher",
  "--labeled",
  "2",
  "--seeds",
  "1,2",
  "--iterations",
  "8",
  "--backend",
  "cpu",
];

Deno.test({
  name: "slurm cluster: a 4-task job array gives the tables of a one-process local run",
  ignore: problem !== null && !requireCluster,
  sanitizeResources: false,
  async fn() {
    if (problem) assert.fail(`slurm cluster required in CI: ${problem}`);
    const tmp = await Deno.makeTempDir();
    const [local, cluster] = [join(tmp, "local"), join(tmp, "cluster")];
    const ids: string[] = [];
    try {
      const localRun = bench([...PLAN_A, "--jobs", "1", "--out", local]); // in parallel with the array
      const sub = await bench([...PLAN_A, "--out", cluster, "--slurm", "--array-parallel", "2"]);
      assert.equal(sub.code, 0, sub.stderr);
      const job = jobIds(sub.stdout);
      ids.push(job.array, job.tables);
      assert.match(sub.stdout, /4 runs in 4 shards/);
      assert.match(sub.stdout, new RegExp(`squeue -j ${job.array}`));
      const loc = await localRun;
      assert.equal(loc.code, 0, loc.stderr);
      await waitJobs(ids);
      const slurmDir = join(cluster, "synthetic", "slurm");
      const logs = () => slurmLogs(slurmDir);
      for (let i = 0; i < 4; i++) {
        const o = await readOrEmpty(join(slurmDir, `${job.array}_${i}.out`));
        assert.match(o, new RegExp(`shard ${i}/4 of benchmark synthetic`), await logs());
        assert.match(o, /1\/1 runs done/, await logs());
      }
      const runFiles = [...Deno.readDirSync(join(cluster, "synthetic", "runs"))];
      assert.equal(runFiles.length, 4, await logs());
      await assertSameTables(join(cluster, "synthetic"), join(local, "synthetic"), logs);
      const st = await bench([...PLAN_A, "--out", cluster, "--status"]);
      assert.match(st.stdout, /finished 4, running 0, failed 0, missing 0/);
      assert.match(st.stdout, new RegExp(`latest job ${job.array} \\(all 4 shards`));
    } finally {
      await cancelQuietly(ids);
      await Deno.remove(tmp, { recursive: true });
    }
  },
});

// 21 iterations: the synthetic benchmark checkpoints every 20, so a task cancelled after its
// checkpoint resumes at iteration 20.
const PLAN_B = [
  "--benchmark",
  "synthetic",
  "--methods",
  "supervised",
  "--labeled",
  "2",
  "--seeds",
  "1,2",
  "--iterations",
  "21",
  "--backend",
  "cpu",
];

Deno.test({
  name:
    "slurm cluster: scancel one task mid-run, --slurm-resubmit-failed resumes only it, tables equal",
  ignore: problem !== null && !requireCluster,
  sanitizeResources: false,
  async fn() {
    if (problem) assert.fail(`slurm cluster required in CI: ${problem}`);
    const tmp = await Deno.makeTempDir();
    const [local, cluster] = [join(tmp, "local"), join(tmp, "cluster")];
    const store = new ResultStore(cluster, "synthetic");
    const runs = expandGrid(synthetic, {
      methods: ["supervised"],
      labeled: [2],
      seeds: [1, 2],
      iterations: 21,
    });
    const [keep] = shardRuns(runs, { index: 0, count: 2 });
    const [victim] = shardRuns(runs, { index: 1, count: 2 });
    assert.ok(keep && victim);
    const ids: string[] = [];
    const slurmDir = join(cluster, "synthetic", "slurm");
    const logs = () => slurmLogs(slurmDir);
    try {
      const localRun = bench([...PLAN_B, "--jobs", "1", "--out", local]);
      const sub = await bench([...PLAN_B, "--out", cluster, "--slurm"]);
      assert.equal(sub.code, 0, sub.stderr);
      const job = jobIds(sub.stdout);
      ids.push(job.array, job.tables);

      // Cancel task 1 once its run has a checkpoint (iteration 20) and no result yet.
      const deadline = Date.now() + WAIT_MS;
      let cancelled = false;
      while (Date.now() < deadline) {
        const [ckpt, done] = await Promise.all([
          exists(store.checkpointPath(victim.runId)),
          exists(store.runPath(victim.runId)),
        ]);
        if (done) break;
        if (ckpt) {
          const c = await run("scancel", [`${job.array}_1`]);
          assert.ok(c?.ok, c?.out);
          cancelled = true;
          break;
        }
        await new Promise((r) => setTimeout(r, 25));
      }
      assert.ok(cancelled, `task 1 finished before it could be cancelled\n${await logs()}`);
      await waitJobs(ids);
      assert.ok(!(await exists(store.runPath(victim.runId))), "the cancelled run has no result");
      assert.ok(await exists(store.checkpointPath(victim.runId)), "its checkpoint survives");
      assert.ok(await exists(store.runPath(keep.runId)), `task 0 finished\n${await logs()}`);
      const keepPath = store.runPath(keep.runId);
      const [keepBytes, keepMtime] = [
        await Deno.readFile(keepPath),
        (await Deno.stat(keepPath)).mtime,
      ];

      const st = await bench([...PLAN_B, "--out", cluster, "--status"]);
      assert.match(st.stdout, /finished 1, running 1, failed 0, missing 0/);
      assert.match(st.stdout, new RegExp(`running +${victim.runId}`));

      const re = await bench([...PLAN_B, "--out", cluster, "--slurm", "--slurm-resubmit-failed"]);
      assert.equal(re.code, 0, re.stderr);
      assert.match(re.stdout, /1 of 2 shards \(1\) still have unfinished runs/);
      const job2 = jobIds(re.stdout);
      ids.push(job2.array, job2.tables);
      const resubmitScript = [...Deno.readDirSync(slurmDir)].find((e) =>
        e.name.endsWith("-resubmit.sbatch")
      );
      assert.ok(resubmitScript);
      assert.match(
        await Deno.readTextFile(join(slurmDir, resubmitScript.name)),
        /^#SBATCH --array=1$/m,
      );
      await waitJobs([job2.array, job2.tables]);

      const resumed = await readOrEmpty(join(slurmDir, `${job2.array}_1.out`));
      // From the iteration-20 checkpoint, or, when the cancel landed after the last step, from
      // the end-of-training checkpoint (iteration 21: evaluation only); never from 0.
      assert.match(
        resumed,
        /resuming at iteration (20|21 of 21 \(training finished; evaluating\))/,
        await logs(),
      );
      assert.ok(!(await exists(join(slurmDir, `${job2.array}_0.out`))), "shard 0 was not rerun");
      assert.deepEqual(await Deno.readFile(keepPath), keepBytes, "finished run not rewritten");
      assert.equal((await Deno.stat(keepPath)).mtime?.getTime(), keepMtime?.getTime());
      assert.ok(await exists(store.runPath(victim.runId)), await logs());
      assert.ok(!(await exists(store.checkpointPath(victim.runId))));

      const loc = await localRun;
      assert.equal(loc.code, 0, loc.stderr);
      await assertSameTables(join(cluster, "synthetic"), join(local, "synthetic"), logs);

      const again = await bench([
        ...PLAN_B,
        "--out",
        cluster,
        "--slurm",
        "--slurm-resubmit-failed",
      ]);
      assert.equal(again.code, 0, again.stderr);
      assert.match(again.stdout, /all 2 runs of this plan are finished/);
    } finally {
      await cancelQuietly(ids);
      await Deno.remove(tmp, { recursive: true });
    }
  },
});

async function exists(p: string): Promise<boolean> {
  try {
    await Deno.stat(p);
    return true;
  } catch {
    return false;
  }
}
