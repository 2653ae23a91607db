/**
 * `deno task bench`: plan, run and tabulate a benchmark. With no --benchmark it picks the
 * synthetic default (every registered method; minutes on a 2-core CPU).
 * @module
 */
import { join } from "node:path";
import { isExternalMethod, METHODS } from "../methods/mod.ts";
import { DATASETS, getDataset } from "../datasets/mod.ts";
import { initBackend } from "../methods/nn/backend.ts";
import { BENCHMARKS, getBenchmark } from "./mod.ts";
import { type BenchOptions, helpText, parseBenchArgs } from "./cli.ts";
import { checkOutputFolder } from "./harness/flags.ts";
import { expandGrid, parseShard, type PlannedRun, shardRuns } from "./harness/plan.ts";
import { ChecksumMismatchError, checkWritable, ResultStore } from "./harness/store.ts";
import { checkRecords, CodeHasher, markStaleRows, staleSummary } from "./harness/code_hash.ts";
import { buildTable, tableCsv, tableMarkdown } from "./harness/tables.ts";
import { writeReport } from "./harness/report.ts";
import { Progress } from "./harness/progress.ts";
import { executeRun, gitCommit, skippedLine } from "./harness/runner.ts";
import { loadMethodFile, withMethodFile } from "./harness/external.ts";
import { compareReport } from "./harness/compare.ts";
import {
  availableMemoryBytes,
  claimedWallSeconds,
  CLAIMS_ENV,
  jobsForMemory,
  longestFirst,
  resolveJobs,
  RunClaims,
  runWorkers,
} from "./harness/parallel.ts";
import { slurmQueueLines, submitSlurm } from "./harness/slurm.ts";
import { statusReport } from "./harness/status.ts";
import type { BenchmarkSpec } from "./harness/spec.ts";
import type { Case, Dataset, Split } from "../datasets/types.ts";
import type { Provenance } from "../methods/nn/backend.ts";
import {
  type DataFacts,
  estimatePlan,
  forwardKey,
  humanDuration,
  machineKey,
  MIN_RUN_ITERATIONS,
  nominalTestWindows,
  type RunWindows,
  storedRunCosts,
  storedWorkerBytes,
  storeRates,
  trainKey,
} from "./harness/estimate.ts";
import { caseWindows } from "./harness/evaluate.ts";
import type { RunRecord } from "./harness/store.ts";

const out = (s: string) => Deno.stdout.writeSync(new TextEncoder().encode(s + "\n"));
const err = (s: string) => Deno.stderr.writeSync(new TextEncoder().encode(s + "\n"));

function listing(): string {
  const lines = ["Benchmarks:"];
  for (const b of BENCHMARKS) lines.push(`  ${b.id.padEnd(28)} ${b.title}`);
  lines.push("Methods:");
  for (const m of METHODS) {
    lines.push(
      `  ${m.id.padEnd(28)} ${m.meta.title} (${m.meta.paper})${
        m.meta.reconstructed ? " [reconstructed]" : ""
      }`,
    );
  }
  lines.push("Datasets:");
  for (const d of DATASETS) lines.push(`  ${d.id.padEnd(28)} ${d.title}`);
  return lines.join("\n");
}

function dataRoot(spec: BenchmarkSpec, opts: BenchOptions): string {
  return opts.dataDir ?? join("data", spec.dataset.id);
}

function pickSplit(splits: Split[], name: string | undefined, spec: BenchmarkSpec): Split {
  if (name === undefined) {
    const s = splits[0];
    if (!s) throw new Error(`dataset ${spec.dataset.id}: no split defined`);
    return s;
  }
  const s = splits.find((x) => x.name === name);
  if (!s) {
    throw new Error(
      `benchmark ${spec.id}: dataset ${spec.dataset.id} has no split '${name}' (expected one of ${
        splits.map((x) => x.name).join(", ")
      })`,
    );
  }
  return s;
}

/** Estimated cost of a plan in iterations x batch voxels (a unit comparable across runs). */
function describePlan(spec: BenchmarkSpec, runs: PlannedRun[]): string[] {
  const perBatch = spec.batch.labeled + spec.batch.unlabeled;
  const lines = runs.map((r) =>
    `${r.runId}  ${r.rowKey.padEnd(20)} labeled=${String(r.labeled).padEnd(4)} seed=${
      String(r.seed).padEnd(6)
    }${r.split === null ? "" : ` fold=${r.split.padEnd(6)}`} iterations=${r.spec["iterations"]}${
      r.patch.join() === spec.patch.join() ? "" : ` patch=${r.patch.join("x")}`
    }`
  );
  const its = runs.reduce((s, r) => s + (r.spec["iterations"] as number), 0);
  const voxelPasses = runs.reduce(
    (s, r) => s + (r.spec["iterations"] as number) * r.patch.reduce((a, b) => a * b, 1) * perBatch,
    0,
  );
  lines.push(
    `${runs.length} runs, ${its} training iterations in all, ${
      (voxelPasses / 1e9).toFixed(2)
    } G voxel-passes (patches x batch ${spec.batch.labeled}+${spec.batch.unlabeled})`,
  );
  return lines;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Load the cases of `ids` that are on disk (through `cache`), skipping unreadable ones. */
async function loadPresent(dataset: Dataset, ids: string[], cache: Map<string, Case>) {
  const out: Case[] = [];
  for (const id of ids) {
    let c = cache.get(id);
    if (!c) {
      try {
        c = await dataset.load(id);
      } catch {
        continue;
      }
      cache.set(id, c);
    }
    out.push(c);
  }
  return out;
}

/** Channels and classes of the data (for the probe batch), and the windows each run evaluates. */
async function estimateData(
  spec: BenchmarkSpec,
  dataset: Dataset | null,
  cache: Map<string, Case>,
): Promise<{
  facts: DataFacts;
  windows: (run: PlannedRun) => RunWindows | null;
  source: string;
  /** Bytes of every case of the split(s) a worker would load (mean of those read x count). */
  caseBytes: number | null;
}> {
  const assumed: DataFacts = { channels: 1, nClasses: 2, source: "assumed: 1 channel, 2 classes" };
  if (dataset === null) {
    const nominal = nominalTestWindows(spec.dataset.id, spec.eval);
    return {
      facts: assumed,
      windows: () => (nominal === null ? null : { test: nominal.windows, val: 0 }),
      source: nominal?.note ?? `no ${spec.dataset.id} data on disk: test volume shapes unknown`,
      caseBytes: null,
    };
  }
  const splits = await dataset.splits();
  const bySplit = new Map<string | null, RunWindows | null>();
  let facts: DataFacts | null = null;
  let present = 0, listed = 0;
  /** Windows of `ids`, the mean of those on disk standing in for the rest; null: none there. */
  const count = async (ids: string[]): Promise<number | null> => {
    if (ids.length === 0) return 0;
    const cases = await loadPresent(dataset, ids, cache);
    if (cases[0] && facts === null) {
      facts = { channels: cases[0].image.channels, nClasses: dataset.nClasses, source: "dataset" };
    }
    if (cases.length === 0) return null;
    const sum = cases.reduce((s, c) => s + caseWindows(c.image.shape, spec.eval), 0);
    return Math.round((sum / cases.length) * ids.length);
  };
  const names = spec.dataset.folds ?? [spec.dataset.split ?? null];
  for (const name of names) {
    const split = name === null ? splits[0] : splits.find((s) => s.name === name);
    if (!split) continue;
    const test = await count(split.test);
    const val = spec.selection.kind === "best-val" ? await count(split.val) : 0;
    listed += split.test.length;
    present += split.test.filter((id) => cache.has(id)).length;
    bySplit.set(
      spec.dataset.folds ? name : null,
      test === null || val === null ? null : { test, val },
    );
  }
  // A worker keeps every case it loads: the split's training, validation and test cases.
  const read = [...cache.values()];
  const allIds = new Set<string>();
  for (const name of names) {
    const split = name === null ? splits[0] : splits.find((s) => s.name === name);
    for (const id of [...(split?.train ?? []), ...(split?.val ?? []), ...(split?.test ?? [])]) {
      allIds.add(id);
    }
  }
  const meanBytes = read.length === 0 ? NaN : read.reduce(
    (s, c) => s + c.image.data.byteLength + c.label.data.byteLength,
    0,
  ) / read.length;
  return {
    caseBytes: Number.isFinite(meanBytes) ? meanBytes * allIds.size : null,
    facts: facts ?? { ...assumed, nClasses: dataset.nClasses },
    windows: (run) => bySplit.get(spec.dataset.folds ? run.split : null) ?? null,
    source: present === listed
      ? `from the ${listed} test volumes on disk`
      : present === 0
      ? "no test volume on disk: shapes unknown"
      : `from ${present} of ${listed} test volumes on disk, their mean for the rest`,
  };
}

/** Print the plan's wall-time estimate on stderr (never fails the command). */
async function printEstimate(a: {
  spec: BenchmarkSpec;
  runs: PlannedRun[];
  opts: BenchOptions;
  provenance: Provenance;
  store: ResultStore;
  jobs: number;
  dataset: Dataset | null;
  cache: Map<string, Case>;
}): Promise<void> {
  try {
    let dataset = a.dataset;
    if (dataset === null) {
      try {
        dataset = getDataset(a.spec.dataset.id).open(
          dataRoot(a.spec, a.opts),
          a.spec.dataset.options ?? {},
        );
      } catch {
        dataset = null; // not on disk: nominal shapes
      }
    }
    const data = await estimateData(a.spec, dataset, a.cache);
    const finished = new Set<string>();
    for (const r of a.runs) if (await exists(a.store.runPath(r.runId))) finished.add(r.runId);
    const est = await estimatePlan({
      spec: a.spec,
      runs: a.runs,
      finished,
      provenance: a.provenance,
      outRoot: a.opts.out,
      jobs: a.jobs,
      facts: data.facts,
      windows: data.windows,
      windowsSource: data.source,
      caseBytes: data.caseBytes,
      print: err,
    });
    const jobs = await printJobs(a.spec, a.runs, a.opts, a.provenance);
    if (jobs !== null && jobs < a.jobs && jobs >= 1) {
      err(
        `estimated wall time with ${jobs} worker${jobs === 1 ? "" : "s"} (memory): ${
          humanDuration(claimedWallSeconds(est.runSeconds, jobs))
        }`,
      );
    }
  } catch (e) {
    err(`estimate: not available (${e instanceof Error ? e.message.split("\n")[0] : String(e)})`);
  }
}

/** Where a `--dry-run` child tells its `--jobs` parent how many workers memory allows. */
const JOBS_OUT_ENV = "SEMISEG_JOBS_OUT";

/**
 * The worker count for this plan from the cores and the memory measured on this machine (one
 * line on stderr when memory is tight or decided); written to `$SEMISEG_JOBS_OUT` for the
 * parent of `--jobs` workers, which starts them after this estimate.
 */
async function printJobs(
  spec: BenchmarkSpec,
  runs: PlannedRun[],
  opts: BenchOptions,
  provenance: Provenance,
): Promise<number | null> {
  if (opts.shard) return null;
  const per = await storedWorkerBytes(spec, runs, opts.out, provenance);
  const { jobs, notice } = jobsForMemory(opts.jobs, runs.length, {
    availableBytes: availableMemoryBytes(),
    perWorkerBytes: per.bytes,
    source: per.source,
  });
  if (notice) err(notice);
  const to = Deno.env.get(JOBS_OUT_ENV);
  if (to) await Deno.writeTextFile(to, String(jobs));
  return jobs;
}

/** A finished run's measured rates, stored for later estimates on this machine. */
async function rememberRates(
  spec: BenchmarkSpec,
  run: PlannedRun,
  rec: RunRecord,
  provenance: Provenance,
  dataset: Dataset,
  cache: Map<string, Case>,
  outRoot: string,
): Promise<void> {
  const its = run.spec["iterations"] as number;
  if (its < MIN_RUN_ITERATIONS || spec.selection.kind !== "last") return;
  const test = rec.cases.map((c) => cache.get(c.id)).filter((c) => c !== undefined);
  if (test.length === 0) return;
  const facts: DataFacts = {
    channels: test[0]!.image.channels,
    nClasses: dataset.nClasses,
    source: "dataset",
  };
  const windows = test.reduce((s, c) => s + caseWindows(c.image.shape, spec.eval), 0);
  const at = new Date().toISOString();
  await storeRates(
    outRoot,
    machineKey(provenance),
    {
      [trainKey(spec, run, facts)]: {
        seconds: rec.timing.trainSeconds / its,
        source: `run ${run.runId}, ${its} it`,
        at,
      },
    },
    {
      [forwardKey(spec, run, facts)]: {
        seconds: rec.timing.evalSeconds / windows,
        source: `run ${run.runId}, ${windows} windows incl. metrics`,
        at,
      },
    },
  ).catch(() => {});
}

/**
 * Write table.md, table.csv and the report from the stored runs; rows built from runs of other
 * code (or without a code hash) are marked, with a footer line. `onStale` hears that line.
 */
async function writeTables(
  spec: BenchmarkSpec,
  store: ResultStore,
  code: CodeHasher,
  onStale: (line: string) => void = () => {},
  plan?: PlannedRun[],
): Promise<string> {
  const runs = await store.readAllRuns();
  const table = buildTable(spec, runs, plan ? { plan } : {});
  const checks = await checkRecords(runs.filter((r) => r.benchmark === spec.id), code);
  if (markStaleRows(table, runs, checks) > 0) {
    onStale(`${spec.id}: ${staleSummary(checks, runs.length)}`);
  }
  const md = tableMarkdown(table);
  await store.writeText("table.md", md);
  await store.writeText("table.csv", tableCsv(table));
  await writeReport(spec, store, plan ? { plan } : {});
  return md;
}

/** The one-line summary of the plan's stored runs made by other code, or null (none). */
async function planStaleLine(
  runs: PlannedRun[],
  store: ResultStore,
  code: CodeHasher,
): Promise<string | null> {
  const records: RunRecord[] = [];
  for (const r of runs) {
    // A checksum mismatch is the runner's to report (set aside, run again); a file that is
    // not a run record stops the bench here, in one line, before any worker starts.
    const rec = await store.readRun(r.runId).catch((e) => {
      if (e instanceof ChecksumMismatchError) return null;
      throw e;
    });
    if (rec) records.push(rec);
  }
  return staleSummary(await checkRecords(records, code), records.length);
}

/** Entry point; returns the process exit code. */
export async function main(argv: string[]): Promise<number> {
  const opts = parseBenchArgs(argv);
  if (opts.help) {
    out(helpText());
    return 0;
  }
  if (opts.list) {
    out(listing());
    return 0;
  }
  await checkOutputFolder("--out", opts.out);
  let spec = getBenchmark(opts.benchmark ?? "synthetic");
  // The synthetic dataset is generated: a --data-dir there would be ignored without a word
  // (a user who meant a real benchmark would get synthetic numbers).
  if (opts.dataDir !== null && spec.dataset.id === "synthetic") {
    throw new Error(
      `--data-dir: benchmark ${spec.id} generates its data and reads no dataset root (pass --benchmark NAME for a benchmark on real data; deno task bench --list lists them)`,
    );
  }
  let externalId: string | null = null;
  if (opts.methodFile) {
    const def = await loadMethodFile(opts.methodFile);
    externalId = def.id;
    spec = withMethodFile(spec, def);
  }
  // A --method-file method always runs, whatever --methods selects.
  const methods = opts.methods && externalId ? [...opts.methods, externalId] : opts.methods;
  const filter = {
    ...(methods ? { methods } : {}),
    ...(opts.labeled ? { labeled: opts.labeled } : {}),
    ...(opts.seeds ? { seeds: opts.seeds } : {}),
    ...(opts.iterations ? { iterations: opts.iterations } : {}),
  };
  // The whole plan (every shard) is what the tables describe.
  const plan = expandGrid(spec, filter);
  let runs = plan;
  // A --jobs worker claims runs from the whole plan; a SLURM task (--shard) takes its slice.
  const claimsDir = Deno.env.get(CLAIMS_ENV);
  if (opts.shard && !claimsDir) runs = shardRuns(runs, parseShard(opts.shard));
  const store = new ResultStore(opts.out, spec.id);
  // The code each run depends on (harness/code_hash.ts); a --method-file method is hashed
  // from its file.
  const code = new CodeHasher(
    externalId && opts.methodFile ? { [externalId]: opts.methodFile } : {},
  );
  if (opts.status) {
    out(await statusReport(spec, runs, store, await slurmQueueLines(store, runs), code));
    return 0;
  }
  if (opts.slurm) {
    return await submitSlurm({ spec, runs, store, request: opts.slurm, argv, print: out });
  }
  if (opts.dryRun) {
    // The backend the plan would run on, selected first so that its notices (a fallback, or
    // native kernels missing: how much slower, and the fix) are the first lines, as in a run.
    let provenance: Provenance | null = null;
    try {
      provenance = await initBackend(opts.backend);
    } catch (e) {
      err(`bench: ${e instanceof Error ? e.message : String(e)}`);
    }
    out(`Plan for ${spec.id} (${spec.title}), results in ${store.dir}:`);
    for (const l of describePlan(spec, runs)) out(l);
    // The estimate goes to stderr: the plan on stdout stays what it was.
    if (opts.estimate && provenance) {
      await printEstimate({
        spec,
        runs,
        opts,
        provenance,
        store,
        jobs: opts.shard ? 1 : resolveJobs(opts.jobs, runs.length),
        dataset: null,
        cache: new Map(),
      });
    }
    return 0;
  }
  if (opts.tablesOnly) {
    // The tables, the report and its plots are written here: one line if they cannot be.
    await checkWritable([store.dir, join(store.dir, "plots")], "the tables and the report");
    out(await writeTables(spec, store, code, err));
    if (opts.compare) out(compareReport(spec, await store.readAllRuns(), opts.compare).join("\n"));
    return 0;
  }
  const dsDef = getDataset(spec.dataset.id);
  const root = dataRoot(spec, opts);
  if (opts.dataDir !== null && (await Deno.stat(root).catch(() => null))?.isFile) {
    throw new Error(
      `--data-dir: '${root}' is a file, not a folder (pass the ${dsDef.id} data root)`,
    );
  }
  // Check the data (root, splits, folds) before any worker starts: one line, naming the root.
  let dataset;
  try {
    dataset = dsDef.open(root, spec.dataset.options ?? {});
  } catch (e) {
    throw new Error(
      `${
        (e as Error).message
      } (pass --data-dir DIR; \`deno task data ${spec.dataset.id}\` prints where to obtain the data and the expected layout)`,
    );
  }
  // A root with no case at all (another dataset's layout, an empty folder): one line naming
  // it, not one "file not found" per run.
  if (dsDef.id !== "synthetic" && (await dataset.caseIds()).length === 0) {
    throw new Error(
      `${root}: no ${dsDef.id} case found there (expected the layout \`deno task data ${dsDef.id}\` prints; pass --data-dir DIR)`,
    );
  }
  const allSplits = await dataset.splits();
  const folds = (spec.dataset.folds ?? []).map((f) => pickSplit(allSplits, f, spec));
  const split = folds[0] ?? pickSplit(allSplits, spec.dataset.split, spec);
  // Every folder a run writes into, before any training (or probe step): one line naming the
  // first that is not writable, instead of losing a run's work when it is stored.
  await checkWritable(store.writableDirs());
  // Stored runs of the plan made by other code: one line (the parent of --jobs workers says it).
  if (Deno.env.get("SEMISEG_WORKER") === undefined) {
    const line = await planStaleLine(runs, store, code);
    if (line) err(`${spec.id}: ${line}`);
  }
  const jobs = opts.shard ? 1 : resolveJobs(opts.jobs, runs.length);
  if (jobs > 1) {
    const t0 = performance.now();
    // The estimate runs as a --dry-run child, which frees its device (a GPU) before the
    // workers start; it prints the backend notices, so the workers stay quiet.
    let estimated = false;
    let workers = jobs;
    if (opts.estimate) {
      const jobsOut = await Deno.makeTempFile({ prefix: "semiseg-jobs-" });
      const child = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", new URL(import.meta.url).pathname, ...argv, "--dry-run"],
        env: { [JOBS_OUT_ENV]: jobsOut },
        stdin: "null",
        stdout: "null",
        stderr: "inherit",
      }).output();
      estimated = child.success;
      // The child measured what a worker holds: fewer workers when they would not fit.
      const said = Number(await Deno.readTextFile(jobsOut).catch(() => ""));
      if (Number.isInteger(said) && said >= 1) workers = said;
      await Deno.remove(jobsOut).catch(() => {});
    }
    // Workers claim runs longest first from one folder (parallel.ts).
    const claims = await RunClaims.fresh(join(store.dir, ".claims"));
    const exit = await runWorkers(argv, workers, { quiet: estimated, claims });
    await claims.remove();
    const table = await writeTables(spec, store, code, undefined, plan);
    out(
      opts.compare
        ? compareReport(spec, await store.readAllRuns(), opts.compare).join("\n")
        : table,
    );
    out(
      `${workers} workers done in ${
        ((performance.now() - t0) / 1000).toFixed(1)
      } s; tables in ${store.dir}`,
    );
    return exit;
  }
  const provenance = await initBackend(opts.backend);
  const progress = new Progress();
  const ctx = {
    spec,
    dataset,
    split,
    splits: new Map(folds.map((f) => [f.name, f])),
    store,
    provenance,
    gitCommit: await gitCommit(),
    progress,
    cache: new Map<string, Case>(),
    index: 0,
    total: runs.length,
    code,
    rerunStale: opts.rerunStale,
  };
  // --jobs workers leave the estimate to their parent; SLURM tasks (--shard) print their own.
  if (opts.estimate && Deno.env.get("SEMISEG_WORKER") === undefined) {
    await printEstimate({
      spec,
      runs,
      opts,
      provenance,
      store,
      jobs: 1,
      dataset,
      cache: ctx.cache,
    });
  }
  const t0 = performance.now();
  let failed = 0;
  const claims = claimsDir ? new RunClaims(claimsDir) : null;
  if (claims) {
    // Longest first by the rates stored for this machine, so the workers finish together.
    const data = await estimateData(spec, dataset, ctx.cache);
    const cost = await storedRunCosts({
      spec,
      runs,
      provenance,
      outRoot: opts.out,
      facts: data.facts,
      windows: data.windows,
    });
    runs = longestFirst(runs, (r) => cost.get(r.runId) ?? NaN);
  }
  let ran = 0;
  for (const [i, run] of runs.entries()) {
    if (claims && !claims.tryClaim(run.runId)) continue;
    ran++;
    const res = await executeRun(run, { ...ctx, index: i });
    if (res.status === "finished") {
      await rememberRates(spec, run, res.record, provenance, dataset, ctx.cache, opts.out);
    }
    if (res.status === "skipped") progress.line(skippedLine(run, res));
    if (res.status === "failed") {
      failed++;
      const external = opts.methodFile && isExternalMethod(run.method);
      progress.line(external ? `--method-file ${opts.methodFile}: ${res.error}` : res.error);
    }
  }
  const table = await writeTables(spec, store, code, undefined, plan);
  out(
    // A shard (a --jobs worker, a SLURM task) has only its slice: the parent compares.
    opts.compare && !opts.shard
      ? compareReport(spec, await store.readAllRuns(), opts.compare).join("\n")
      : table,
  );
  out(
    `${ran - failed}/${ran} runs done in ${
      ((performance.now() - t0) / 1000).toFixed(1)
    } s; tables in ${store.dir}`,
  );
  return failed > 0 ? 1 : 0;
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (e) {
    Deno.stderr.writeSync(
      new TextEncoder().encode(`bench: ${e instanceof Error ? e.message : String(e)}\n`),
    );
    Deno.exit(2);
  }
}
