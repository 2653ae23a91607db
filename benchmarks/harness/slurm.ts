/**
 * Run a benchmark grid as a SLURM job array (`deno task bench --slurm`).
 *
 * The plan is split into N disjoint shards (N = --shards, else one run per shard, at most
 * `MAX_SHARDS`); array task i runs `benchmarks/main.ts` with the same plan flags plus
 * `--shard i/N`, so every task expands the same grid (same run ids) and takes its own slice.
 * Tasks write into the same results folder; the store's atomic writes keep them apart. A
 * small follow-up job (`--dependency=afterany`) rebuilds the tables once the array has ended.
 * A task that is cancelled or preempted leaves its checkpoint; `--slurm-resubmit-failed`
 * submits an array of only the shards that still have unfinished runs, and those resume.
 *
 * This module is the I/O: the scripts (rendered by harness/slurm_script.ts) are written under
 * `<results>/<benchmark>/slurm/`, submitted with `sbatch`, recorded in `submissions.json` and
 * followed with `squeue`.
 * @module
 */
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { SlurmRequest } from "../cli.ts";
import { type PlannedRun, shardRuns } from "./plan.ts";
import { type ResultStore, writeAtomic } from "./store.ts";
import type { BenchmarkSpec } from "./spec.ts";
import {
  planHash,
  sbatchScript,
  type ScriptParams,
  shardCount,
  shellQuote,
  tablesScript,
  taskArgs,
} from "./slurm_script.ts";

/** One submission, as recorded in `<results>/<benchmark>/slurm/submissions.json`. */
export interface Submission {
  jobId: string;
  tablesJobId: string | null;
  planHash: string;
  shards: number;
  indices: number[] | null;
  script: string;
  submittedAt: string;
}

/** The recorded submissions of a benchmark's results folder (oldest first). */
export async function readSubmissions(store: ResultStore): Promise<Submission[]> {
  const p = join(store.dir, "slurm", "submissions.json");
  try {
    return JSON.parse(await Deno.readTextFile(p)) as Submission[];
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw new Error(`${p}: not readable JSON (${e instanceof Error ? e.message : String(e)})`);
  }
}

/** Append `s` to the benchmark's `submissions.json` (atomically). */
async function recordSubmission(store: ResultStore, s: Submission): Promise<void> {
  const all = [...await readSubmissions(store), s];
  await writeAtomic(
    join(store.dir, "slurm", "submissions.json"),
    new TextEncoder().encode(JSON.stringify(all, null, 1) + "\n"),
  );
}

/** Run a SLURM client command; null when it is not installed. */
async function slurmCmd(
  cmd: string,
  args: string[],
): Promise<{ ok: boolean; stdout: string; stderr: string } | null> {
  try {
    const o = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped", stdin: "null" })
      .output();
    const dec = new TextDecoder();
    return { ok: o.success, stdout: dec.decode(o.stdout), stderr: dec.decode(o.stderr) };
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
}

/** `squeue` lines (`id state elapsed reason`) of a job's tasks; [] when none is queued. */
async function queued(jobId: string): Promise<string[] | null> {
  const r = await slurmCmd("squeue", ["-h", "-j", jobId, "-o", "%i %T %M %R"]);
  if (r === null) return null;
  // A job that ended long ago is purged: squeue then fails with "Invalid job id".
  return r.ok ? r.stdout.split("\n").filter((l) => l.trim() !== "") : [];
}

/**
 * Lines for `--status`: the latest submission of this plan and what `squeue` says of it
 * (nothing when this plan was never submitted; a note when `squeue` is not installed).
 */
export async function slurmQueueLines(store: ResultStore, runs: PlannedRun[]): Promise<string[]> {
  const hash = planHash(runs);
  const mine = (await readSubmissions(store)).filter((s) => s.planHash === hash);
  const last = mine.at(-1);
  if (!last) return [];
  const lines = [
    `SLURM: ${mine.length} submission(s) of this plan; latest job ${last.jobId} (${
      last.indices ? `shards ${last.indices.join(",")}` : `all ${last.shards} shards`
    }, ${last.submittedAt})`,
  ];
  const q = await queued([last.jobId, last.tablesJobId].filter((x) => x !== null).join(","));
  if (q === null) lines.push("  squeue is not installed here: queue state unknown");
  else if (q.length === 0) lines.push("  nothing of it is queued or running now");
  else lines.push(...q.map((l) => `  ${l}`));
  return lines;
}

/** Whether `path` exists. */
async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/** Indices of the shards (of `shards`) that still have a run without a result file. */
export async function unfinishedShards(
  runs: PlannedRun[],
  shards: number,
  store: ResultStore,
): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < shards; i++) {
    for (const r of shardRuns(runs, { index: i, count: shards })) {
      if (!(await exists(store.runPath(r.runId)))) {
        out.push(i);
        break;
      }
    }
  }
  return out;
}

/** What {@link submitSlurm} needs from the entry point. */
export interface SlurmContext {
  spec: BenchmarkSpec;
  /** The full plan (no --shard). */
  runs: PlannedRun[];
  store: ResultStore;
  request: SlurmRequest;
  /** The command line as given (plan flags are forwarded from it). */
  argv: string[];
  /** Prints one or more lines. */
  print: (s: string) => void;
}

/**
 * Write the sbatch scripts under `<results>/<benchmark>/slurm/`, then submit them with
 * `sbatch --parsable` (or, with --slurm-dry-run, print them and the commands). Returns the
 * exit code; a failing sbatch is a one-line error.
 */
export async function submitSlurm(ctx: SlurmContext): Promise<number> {
  const { spec, runs, store, request, print } = ctx;
  const outRoot = resolve(store.root);
  const slurmDir = join(outRoot, spec.id, "slurm");
  if (/\s/.test(slurmDir) || /\s/.test(Deno.cwd())) {
    throw new Error(
      `--slurm: #SBATCH lines cannot hold paths with whitespace ('${slurmDir}', cwd '${Deno.cwd()}')`,
    );
  }
  const hash = planHash(runs);
  const previous = (await readSubmissions(store)).filter((s) => s.planHash === hash);
  const shards = request.shards !== null
    ? shardCount(runs.length, request.shards)
    : previous.at(-1)?.shards ?? shardCount(runs.length, null);
  const pending = await unfinishedShards(runs, shards, store);
  const args = taskArgs(ctx.argv);
  const planFlags = ["--benchmark", spec.id, ...args, "--out", outRoot].map(shellQuote).join(" ");
  if (pending.length === 0) {
    print(
      `all ${runs.length} runs of this plan are finished in ${store.dir}; nothing to submit ` +
        `(tables: deno task bench ${planFlags} --tables-only)`,
    );
    return 0;
  }
  const indices = request.resubmitFailed ? pending : null;
  const params: ScriptParams = {
    benchmark: spec.id,
    shards,
    indices,
    runs: runs.length,
    planHash: hash,
    request,
    outRoot,
    slurmDir,
    workDir: Deno.cwd(),
    mainPath: fileURLToPath(new URL("../main.ts", import.meta.url)),
    deno: Deno.execPath(),
    args,
  };
  const base = join(slurmDir, `${hash}${indices ? "-resubmit" : ""}`);
  const arrayPath = `${base}.sbatch`, tablesPath = `${base}-tables.sbatch`;
  const arrayText = sbatchScript(params), tablesText = tablesScript(params);
  await writeAtomic(arrayPath, new TextEncoder().encode(arrayText));
  await writeAtomic(tablesPath, new TextEncoder().encode(tablesText));
  await Deno.chmod(arrayPath, 0o755);
  await Deno.chmod(tablesPath, 0o755);
  const what = indices
    ? `${indices.length} of ${shards} shards (${indices.join(",")}) still have unfinished runs`
    : `${runs.length} runs in ${shards} shards`;
  if (request.dryRun) {
    print(`# ${arrayPath}\n${arrayText}`);
    print(`# ${tablesPath}\n${tablesText}`);
    print(`SLURM dry run for ${spec.id}: ${what}. Would submit:`);
    print(`  sbatch --parsable ${shellQuote(arrayPath)}`);
    print(`  sbatch --parsable --dependency=afterany:<array job id> ${shellQuote(tablesPath)}`);
    print("Nothing was submitted.");
    return 0;
  }
  for (const s of previous) {
    const q = await queued(s.jobId);
    if (q && q.length > 0) {
      throw new Error(
        `--slurm: job ${s.jobId} of this plan still has ${q.length} task(s) queued or running ` +
          `(squeue -j ${s.jobId}); wait for it or scancel it first`,
      );
    }
  }
  const jobId = await sbatch([arrayPath]);
  let tablesJobId: string | null = null;
  let tablesNote: string;
  try {
    tablesJobId = await sbatch([`--dependency=afterany:${jobId}`, tablesPath]);
    tablesNote =
      `job ${tablesJobId} rebuilds table.md/table.csv in ${store.dir} when the array has ended`;
  } catch (e) {
    // The array is queued either way; the tables can be rebuilt by hand.
    tablesNote = `no tables job (${e instanceof Error ? e.message : String(e)}); ` +
      `run --tables-only when the array has ended`;
  }
  await recordSubmission(store, {
    jobId,
    tablesJobId,
    planHash: hash,
    shards,
    indices,
    script: arrayPath,
    submittedAt: new Date().toISOString(),
  });
  const limit = request.arrayParallel ? `, at most ${request.arrayParallel} at a time` : "";
  print(
    [
      `Submitted SLURM job array ${jobId} for ${spec.id}: ${what}${limit}.`,
      `  script: ${arrayPath}`,
      `  ${tablesNote}`,
      "Follow it:",
      `  squeue -j ${[jobId, tablesJobId].filter((x) => x !== null).join(",")}`,
      `  tail -f ${join(slurmDir, `${jobId}_*.out`)}`,
      `  deno task bench ${planFlags} --status`,
      `Resubmit what a cancelled or failed task left unfinished (it resumes from checkpoints):`,
      `  deno task bench ${planFlags} --slurm --slurm-resubmit-failed`,
    ].join("\n"),
  );
  return 0;
}

/** `sbatch --parsable ARGS`: the job id, or a one-line error. */
async function sbatch(args: string[]): Promise<string> {
  const r = await slurmCmd("sbatch", ["--parsable", ...args]);
  if (r === null) {
    throw new Error(
      "--slurm: sbatch is not installed here (use --slurm-dry-run to only write the script)",
    );
  }
  const id = /^(\d+)/.exec(r.stdout.trim());
  if (!r.ok || !id) {
    const why = (r.stderr.trim() || r.stdout.trim()).split("\n")[0];
    throw new Error(`--slurm: sbatch ${args.at(-1)} failed: ${why}`);
  }
  return id[1]!;
}
