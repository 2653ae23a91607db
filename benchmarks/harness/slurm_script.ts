/**
 * The sbatch scripts of `deno task bench --slurm`, rendered as text (pure: no file, no
 * process): the job array whose task i runs `benchmarks/main.ts` with the plan flags plus
 * `--shard i/N`, and the follow-up job that rebuilds the tables. Also the pieces they are made
 * of: the shard count, the plan hash, the forwarded flags and shell quoting. Writing,
 * submitting and querying them is harness/slurm.ts.
 * @module
 */
import { join } from "node:path";
import { parseArgs } from "node:util";
import { FLAGS, type SlurmRequest } from "../cli.ts";
import { hashOf } from "../../methods/nn/canonical.ts";
import type { PlannedRun } from "./plan.ts";

/** Largest default number of array tasks (SLURM's default MaxArraySize is 1001). */
export const MAX_SHARDS = 1000;

/**
 * Flags that never reach the array tasks, those declared `forward: false` in the flag table:
 * they steer the submission, not the plan.
 */
const NOT_FORWARDED = new Set(
  Object.entries(FLAGS).filter(([, f]) => f.forward === false).map(([k]) => k),
);

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
 * `--status`, ...: `forward: false` in cli.ts's FLAGS). A new plan flag is forwarded unless
 * its declaration says otherwise.
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

/** The `exec deno run ... main.ts` line of a script, plan flags and `extra` appended. */
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

/** The shebang, comment, `#SBATCH` lines and the shell set-up of a script. */
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
