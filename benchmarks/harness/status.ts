/**
 * `deno task bench --status`: where each run of the plan stands, read from the result files
 * alone (so it works with or without SLURM, from any machine that sees the results folder):
 * finished (`runs/<id>.json`), failed (`failed/<id>.json`, or a run file that is not a run
 * record), running (a checkpoint and no
 * result: in progress, or interrupted and waiting to be resumed) or missing (nothing yet).
 * @module
 */
import type { PlannedRun } from "./plan.ts";
import type { ResultStore } from "./store.ts";
import type { BenchmarkSpec } from "./spec.ts";
import { formatDuration } from "./progress.ts";

/** Where a planned run stands. Precedence: finished, failed, running, missing. */
export type RunState = "finished" | "running" | "failed" | "missing";

/** The state of one planned run, with a short detail (failure reason, checkpoint age). */
export interface RunStatus {
  run: PlannedRun;
  state: RunState;
  detail: string;
}

async function mtime(path: string): Promise<Date | null> {
  try {
    return (await Deno.stat(path)).mtime ?? new Date(0);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
}

/**
 * Classify every run of `runs` from the files in `store`. A run file counts as finished only
 * when it reads as a run record; one that does not (not JSON, or not a record) is failed, its
 * detail the one-line error naming the file and the fix.
 */
export async function classifyRuns(
  runs: PlannedRun[],
  store: ResultStore,
  now: Date = new Date(),
): Promise<RunStatus[]> {
  const out: RunStatus[] = [];
  for (const run of runs) {
    if (await mtime(store.runPath(run.runId))) {
      try {
        await store.readRun(run.runId);
        out.push({ run, state: "finished", detail: "" });
      } catch (e) {
        const msg = (e instanceof Error ? e.message : String(e)).split("\n")[0]!;
        out.push({ run, state: "failed", detail: msg });
      }
      continue;
    }
    const failure = await store.readFailure(run.runId);
    if (failure) {
      out.push({ run, state: "failed", detail: failure.error });
      continue;
    }
    const ckpt = await mtime(store.checkpointPath(run.runId));
    if (ckpt) {
      const age = formatDuration((now.getTime() - ckpt.getTime()) / 1000);
      out.push({ run, state: "running", detail: `checkpoint written ${age} ago` });
      continue;
    }
    out.push({ run, state: "missing", detail: "" });
  }
  return out;
}

/** Counts per state. */
export function countStates(statuses: RunStatus[]): Record<RunState, number> {
  const c: Record<RunState, number> = { finished: 0, running: 0, failed: 0, missing: 0 };
  for (const s of statuses) c[s.state]++;
  return c;
}

/**
 * The `--status` report: counts, then one line per run that is not finished, then
 * `extra` lines (the SLURM queue, when the plan was submitted there).
 */
export async function statusReport(
  spec: BenchmarkSpec,
  runs: PlannedRun[],
  store: ResultStore,
  extra: string[] = [],
): Promise<string> {
  const statuses = await classifyRuns(runs, store);
  const c = countStates(statuses);
  const lines = [
    `Status of ${spec.id}: ${runs.length} runs planned, results in ${store.dir}`,
    `  finished ${c.finished}, running ${c.running}, failed ${c.failed}, missing ${c.missing}`,
  ];
  for (const s of statuses) {
    if (s.state === "finished") continue;
    const r = s.run;
    lines.push(
      `  ${s.state.padEnd(8)} ${r.runId}  ${r.rowKey} L=${r.labeled} seed=${r.seed}${
        s.detail ? `: ${s.detail}` : ""
      }`,
    );
  }
  if (c.running > 0) {
    lines.push(
      "  (running = checkpoint and no result: in progress, or interrupted and resumable)",
    );
  }
  lines.push(...extra);
  if (c.finished < runs.length) {
    lines.push("`--tables-only` builds the tables from the finished runs, marking missing cells.");
  }
  return lines.join("\n");
}
