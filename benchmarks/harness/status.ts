/**
 * `deno task bench --status`: where each run of the plan stands, read from the result files
 * alone (so it works with or without SLURM, from any machine that sees the results folder):
 * finished (`runs/<id>.json`), failed (`failed/<id>.json`, or a run file that is not a run
 * record), running (a checkpoint and no
 * result: in progress, or interrupted and waiting to be resumed) or missing (nothing yet).
 * Finished runs made by other code than the current checkout, or with no code hash, are
 * listed as stale (still counted as finished: `--rerun-stale` reruns them).
 * @module
 */
import type { PlannedRun } from "./plan.ts";
import { ChecksumMismatchError, type ResultStore } from "./store.ts";
import {
  type CodeCheck,
  CodeHasher,
  compareCode,
  describeChanged,
  staleSummary,
} from "./code_hash.ts";
import type { BenchmarkSpec } from "./spec.ts";
import { formatDuration } from "./progress.ts";

/** Where a planned run stands. Precedence: finished, failed, running, missing. */
export type RunState = "finished" | "running" | "failed" | "missing";

/** The state of one planned run, with a short detail (failure reason, checkpoint age). */
export interface RunStatus {
  run: PlannedRun;
  state: RunState;
  detail: string;
  /** For a finished run: its code against the current code. */
  code?: CodeCheck;
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
 * when it reads as a run record; one that does not (not JSON, not a record, a checksum that
 * does not match) is failed, its detail the one-line error naming the file and the fix. With
 * `code`, each finished run's code is compared with the current code.
 */
export async function classifyRuns(
  runs: PlannedRun[],
  store: ResultStore,
  now: Date = new Date(),
  code?: CodeHasher,
): Promise<RunStatus[]> {
  const out: RunStatus[] = [];
  for (const run of runs) {
    if (await mtime(store.runPath(run.runId))) {
      try {
        const rec = (await store.readRun(run.runId))!;
        const dataset = (run.spec["dataset"] as { id: string }).id;
        const check = code
          ? compareCode(rec.code, await code.forRun(run.method, dataset))
          : undefined;
        out.push({ run, state: "finished", detail: "", ...(check ? { code: check } : {}) });
      } catch (e) {
        const msg = (e instanceof Error ? e.message : String(e)).split("\n")[0]!;
        const fix = e instanceof ChecksumMismatchError
          ? "; the bench sets it aside and runs it again"
          : "";
        out.push({ run, state: "failed", detail: msg + fix });
      }
      continue;
    }
    let failure;
    try {
      failure = await store.readFailure(run.runId);
    } catch (e) {
      // A failure record that does not read is still a failed run: say so, list the others.
      out.push({ run, state: "failed", detail: (e as Error).message.split("\n")[0]! });
      continue;
    }
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
 * The `--status` report: counts, the stale-code line (when finished runs were made by other
 * code), then one line per run that is not finished or is stale, then `extra` lines (the SLURM
 * queue, when the plan was submitted there).
 */
export async function statusReport(
  spec: BenchmarkSpec,
  runs: PlannedRun[],
  store: ResultStore,
  extra: string[] = [],
  code: CodeHasher = new CodeHasher(),
): Promise<string> {
  const statuses = await classifyRuns(runs, store, new Date(), code);
  const c = countStates(statuses);
  const lines = [
    `Status of ${spec.id}: ${runs.length} runs planned, results in ${store.dir}`,
    `  finished ${c.finished}, running ${c.running}, failed ${c.failed}, missing ${c.missing}`,
  ];
  const checks = new Map(
    statuses.flatMap((s) => (s.code ? [[s.run.runId, s.code] as const] : [])),
  );
  const stale = staleSummary(checks, c.finished);
  if (stale) lines.push(`  ${stale}`);
  for (const s of statuses) {
    const r = s.run;
    const what = `${r.runId}  ${r.rowKey} L=${r.labeled} seed=${r.seed}`;
    if (s.state === "finished") {
      if (s.code && s.code.state !== "current") {
        const why = s.code.state === "unknown"
          ? "no code hash (unknown code)"
          : describeChanged(s.code.changed, s.code.changed.length === 0);
        lines.push(`  ${"stale".padEnd(8)} ${what}: ${why}`);
      }
      continue;
    }
    lines.push(`  ${s.state.padEnd(8)} ${what}${s.detail ? `: ${s.detail}` : ""}`);
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
