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
import { expandGrid, parseShard, type PlannedRun, shardRuns } from "./harness/plan.ts";
import { ResultStore } from "./harness/store.ts";
import { buildTable, tableCsv, tableMarkdown } from "./harness/tables.ts";
import { writeReport } from "./harness/report.ts";
import { Progress } from "./harness/progress.ts";
import { executeRun, gitCommit } from "./harness/runner.ts";
import { loadMethodFile } from "./harness/external.ts";
import { compareReport } from "./harness/compare.ts";
import { resolveJobs, runWorkers } from "./harness/parallel.ts";
import { slurmQueueLines, submitSlurm } from "./harness/slurm.ts";
import { statusReport } from "./harness/status.ts";
import type { BenchmarkSpec } from "./harness/spec.ts";
import type { Split } from "../datasets/types.ts";

const out = (s: string) => Deno.stdout.writeSync(new TextEncoder().encode(s + "\n"));

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

async function writeTables(spec: BenchmarkSpec, store: ResultStore): Promise<string> {
  const table = buildTable(spec, await store.readAllRuns());
  const md = tableMarkdown(table);
  await store.writeText("table.md", md);
  await store.writeText("table.csv", tableCsv(table));
  await writeReport(spec, store);
  return md;
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
  let spec = getBenchmark(opts.benchmark ?? "synthetic");
  let externalId: string | null = null;
  if (opts.methodFile) {
    const def = await loadMethodFile(opts.methodFile);
    externalId = def.id;
    spec = {
      ...spec,
      methods: [...spec.methods, { method: def.id, label: def.meta.title, external: true }],
    };
  }
  // A --method-file method always runs, whatever --methods selects.
  const methods = opts.methods && externalId ? [...opts.methods, externalId] : opts.methods;
  const filter = {
    ...(methods ? { methods } : {}),
    ...(opts.labeled ? { labeled: opts.labeled } : {}),
    ...(opts.seeds ? { seeds: opts.seeds } : {}),
    ...(opts.iterations ? { iterations: opts.iterations } : {}),
  };
  let runs = expandGrid(spec, filter);
  if (opts.shard) runs = shardRuns(runs, parseShard(opts.shard));
  const store = new ResultStore(opts.out, spec.id);
  if (opts.status) {
    out(await statusReport(spec, runs, store, await slurmQueueLines(store, runs)));
    return 0;
  }
  if (opts.slurm) {
    return await submitSlurm({ spec, runs, store, request: opts.slurm, argv, print: out });
  }
  if (opts.dryRun) {
    out(`Plan for ${spec.id} (${spec.title}), results in ${store.dir}:`);
    for (const l of describePlan(spec, runs)) out(l);
    return 0;
  }
  if (opts.tablesOnly) {
    out(await writeTables(spec, store));
    if (opts.compare) out(compareReport(spec, await store.readAllRuns(), opts.compare).join("\n"));
    return 0;
  }
  const dsDef = getDataset(spec.dataset.id);
  const root = dataRoot(spec, opts);
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
  const allSplits = await dataset.splits();
  const folds = (spec.dataset.folds ?? []).map((f) => pickSplit(allSplits, f, spec));
  const split = folds[0] ?? pickSplit(allSplits, spec.dataset.split, spec);
  const jobs = opts.shard ? 1 : resolveJobs(opts.jobs, runs.length);
  if (jobs > 1) {
    const t0 = performance.now();
    const code = await runWorkers(argv, jobs);
    const table = await writeTables(spec, store);
    out(
      opts.compare
        ? compareReport(spec, await store.readAllRuns(), opts.compare).join("\n")
        : table,
    );
    out(
      `${jobs} workers done in ${
        ((performance.now() - t0) / 1000).toFixed(1)
      } s; tables in ${store.dir}`,
    );
    return code;
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
    cache: new Map(),
    index: 0,
    total: runs.length,
  };
  const t0 = performance.now();
  let failed = 0;
  for (const [i, run] of runs.entries()) {
    const res = await executeRun(run, { ...ctx, index: i });
    if (res.status === "skipped") {
      progress.line(
        `run ${run.runId} (${run.rowKey} L=${run.labeled} seed=${run.seed}): finished earlier, skipped`,
      );
    }
    if (res.status === "failed") {
      failed++;
      const external = opts.methodFile && isExternalMethod(run.method);
      progress.line(external ? `--method-file ${opts.methodFile}: ${res.error}` : res.error);
    }
  }
  const table = await writeTables(spec, store);
  out(
    opts.compare ? compareReport(spec, await store.readAllRuns(), opts.compare).join("\n") : table,
  );
  out(
    `${runs.length - failed}/${runs.length} runs done in ${
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
