/**
 * Run a benchmark grid as a SLURM job array (`deno task bench --slurm`).
 *
 * The plan is split into N disjoint shards (N = --shards, else one run per shard, at most
 * {@link MAX_SHARDS}); array task i runs `benchmarks/main.ts` with the same plan flags plus
 * `--shard i/N`, so every task expands the same grid (same run ids) and takes its own slice.
 * Tasks write into the same results folder; the store's atomic writes keep them apart. A
 * small follow-up job (`--dependency=afterany`) rebuilds the tables once the array has ended.
 * A task that is cancelled or preempted leaves its checkpoint; `--slurm-resubmit-failed`
 * submits an array of only the shards that still have unfinished runs, and those resume.
 * @module
 */
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { FLAGS, type SlurmRequest } from "../cli.ts";
import { hashOf } from "../../methods/nn/canonical.ts";
import { type PlannedRun, shardRuns } from "./plan.ts";
import { type ResultStore, writeAtomic } from "./store.ts";
import type { BenchmarkSpec } from "./spec.ts";

/** Largest default number of array tasks (SLURM's default MaxArraySize is 1001). */
export const MAX_SHARDS = 1000;

/** Flags that never reach the array tasks: they steer the submission, not the plan. */
const NOT_FORWARDED = new Set([
  "benchmark",
  "out",
  "shard",
  "shards",
  "jobs",
  "dry-run",
  "tables-only",
  "status",
  "list",
  "help",
  "slurm",
  "partition",
  "gres",
  "time",
  "cpus",
  "mem",
  "array-parallel",
  "slurm-dry-run",
  "slurm-resubmit-failed",
]);

/** Number of array tasks for `runs` runs: `requested` (or one per run), never more than runs. */
export function shardCount(runs: number, requested: number | null): number {
  return Math.max(1, Math.min(runs, requested ?? MAX_SHARDS));
}

/** Identity of a plan: hash of its sorted run ids (flag order never changes it). */
export function planHash(runs: PlannedRun[]): string {
  return hashOf(runs.map((r) => r.runId).sort()).slice(0, 12);
}

/**
 * The plan flags of `argv` to pass on to every array task, in their original order: every
 * flag except those that steer the submission (`--slurm*`, resources, `--out`, `--shard`,
 * `--status`, ...). New plan flags added to the flag table are forwarded without edits here.
 */
export function taskArgs(argv: string[]): string[] {
  const options = Object.fromEntries(
    Object.entries(FLAGS).map(([k, f]) => [k, { type: f.type }]),
  ) as Record<string, { type: "string" | "boolean" }>;
  const { tokens } = parseArgs({ args: argv, options, strict: true, tokens: true });
  const out: string[] = [];
  for (const t of tokens) {
    if (t.kind !== "option" || NOT_FORWARDED.has(t.name)) continue;
    out.push(`--${t.name}`);
    if (t.value !== undefined) out.push(t.value);
  }
  return out;
}

/** Quote `s` for bash (single quotes unless it is plainly safe). */
export function shellQuote(s: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replaceAll("'", `'\\''`)}'`;
}

/** `--array` value: all of 0..shards-1, or only `indices`, with an optional `%K` limit. */
export function arraySpec(
  shards: number,
  indices: number[] | null,
  parallel: number | null,
): string {
  const body = indices ? indices.join(",") : shards === 1 ? "0" : `0-${shards - 1}`;
  return parallel ? `${body}%${parallel}` : body;
}

/** Everything a generated sbatch script depends on. */
export interface ScriptParams {
  benchmark: string;
  /** Number of shards N the plan is split into (`--shard i/N`). */
  shards: number;
  /** Array indices to run; null = all of 0..N-1. */
  indices: number[] | null;
  /** Runs in the plan (for the header comment). */
  runs: number;
  planHash: string;
  request: SlurmRequest;
  /** Absolute results root (`--out`). */
  outRoot: string;
  /** Absolute folder for scripts and task output (`<out>/<benchmark>/slurm`). */
  slurmDir: string;
  /** Working directory of the tasks (where relative paths in the plan flags resolve). */
  workDir: string;
  /** Absolute path of benchmarks/main.ts. */
  mainPath: string;
  /** The Deno executable (overridable at run time with SEMISEG_DENO). */
  deno: string;
  /** Plan flags from {@link taskArgs}. */
  args: string[];
}

function benchCommand(p: ScriptParams, extra: string): string {
  const words = [
    `"$DENO"`,
    "run",
    "-A",
    shellQuote(p.mainPath),
    "--benchmark",
    shellQuote(p.benchmark),
    ...p.args.map(shellQuote),
    "--out",
    shellQuote(p.outRoot),
  ];
  return `exec ${words.join(" ")} ${extra}`;
}

function header(p: ScriptParams, lines: string[], comment: string[]): string[] {
  return [
    "#!/bin/bash",
    ...comment.map((c) => `# ${c}`),
    ...lines.map((l) => `#SBATCH ${l}`),
    "set -euo pipefail",
    `DENO="\${SEMISEG_DENO:-${p.deno}}"`,
  ];
}

/** The sbatch script of the job array: one task per shard, resources from the flags. */
export function sbatchScript(p: ScriptParams): string {
  const r = p.request;
  const directives = [
    `--job-name=bench-${p.benchmark}`,
    `--array=${arraySpec(p.shards, p.indices, r.arrayParallel)}`,
    `--output=${join(p.slurmDir, "%A_%a.out")}`,
    `--chdir=${p.workDir}`,
    ...(r.partition ? [`--partition=${r.partition}`] : []),
    ...(r.gres ? [`--gres=${r.gres}`] : []),
    ...(r.time ? [`--time=${r.time}`] : []),
    ...(r.cpus ? [`--cpus-per-task=${r.cpus}`] : []),
    ...(r.mem ? [`--mem=${r.mem}`] : []),
  ];
  const lines = header(p, directives, [
    `Generated by \`deno task bench --slurm\`: benchmark ${p.benchmark}, ${p.runs} runs in ${p.shards} shards (plan ${p.planHash}).`,
    "Every task expands the same plan and runs its own slice (--shard i/N). Finished runs are",
    "skipped and interrupted runs resume from their checkpoints, so resubmitting is safe.",
  ]);
  lines.push(
    `: "\${SLURM_ARRAY_TASK_ID:?submit this script with sbatch: it is a SLURM job array}"`,
    "# oneDNN threads = the CPUs SLURM gave the task (unless OMP_NUM_THREADS is set already).",
    `if [ -n "\${SLURM_CPUS_PER_TASK:-}" ]; then export OMP_NUM_THREADS="\${OMP_NUM_THREADS:-$SLURM_CPUS_PER_TASK}"; fi`,
    `echo "job \${SLURM_ARRAY_JOB_ID:-?} task $SLURM_ARRAY_TASK_ID on $(hostname): shard $SLURM_ARRAY_TASK_ID/${p.shards} of benchmark ${p.benchmark}"`,
    benchCommand(p, `--shard "$SLURM_ARRAY_TASK_ID/${p.shards}"`),
    "",
  );
  return lines.join("\n");
}

/** The follow-up job that rebuilds the tables from the run files once the array has ended. */
export function tablesScript(p: ScriptParams): string {
  const r = p.request;
  const directives = [
    `--job-name=tables-${p.benchmark}`,
    `--output=${join(p.slurmDir, "tables_%j.out")}`,
    `--chdir=${p.workDir}`,
    "--ntasks=1",
    "--cpus-per-task=1",
    "--time=00:15:00",
    ...(r.partition ? [`--partition=${r.partition}`] : []),
  ];
  const lines = header(p, directives, [
    `Generated by \`deno task bench --slurm\`: rebuild the tables of ${p.benchmark} (plan ${p.planHash})`,
    "from whatever run files are present once the job array has ended.",
  ]);
  lines.push(benchCommand(p, "--tables-only"), "");
  return lines.join("\n");
}

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
