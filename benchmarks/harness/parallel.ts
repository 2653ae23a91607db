/**
 * `--jobs N`: run a plan as N worker processes on one machine, then build the tables once.
 * Workers share the plan through claims: each takes the next run nobody has claimed, longest
 * first by the stored step rates, so they finish together (a static `--shard i/N` slice, as a
 * SLURM job array uses, could leave one worker with both long runs). tfjs's cpu backend runs
 * on one JS thread per process, so on a 2-core machine two workers roughly halve the wall
 * time of a grid.
 * @module
 */
import { join } from "node:path";

const MAIN = new URL("../main.ts", import.meta.url).pathname;

/** Resolve `--jobs` (`auto` = one worker per CPU core) to a count. */
export function resolveJobs(jobs: string | null, runs: number): number {
  const cores = Math.max(1, navigator.hardwareConcurrency || 1);
  const n = jobs === null || jobs === "auto" ? cores : Number(jobs);
  if (!Number.isInteger(n) || n < 1) {
    throw new Error(`--jobs: expected a positive integer or auto, got '${jobs}'`);
  }
  return Math.max(1, Math.min(n, runs));
}

/** Environment variable naming the claims folder of a `--jobs` plan's workers. */
export const CLAIMS_ENV = "SEMISEG_CLAIMS";

/**
 * The claims of one `--jobs` plan: a folder where a worker creates `<run-id>` exclusively
 * before running it, so each run is taken by exactly one worker whatever their order.
 */
export class RunClaims {
  constructor(readonly dir: string) {}
  /** A fresh, empty claims folder (left-overs of an interrupted plan removed). */
  static async fresh(dir: string): Promise<RunClaims> {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    await Deno.mkdir(dir, { recursive: true });
    return new RunClaims(dir);
  }
  /** Claim `runId`: true for the first caller over all workers, false afterwards. */
  tryClaim(runId: string): boolean {
    try {
      Deno.openSync(join(this.dir, runId), { write: true, createNew: true }).close();
      return true;
    } catch (e) {
      if (e instanceof Deno.errors.AlreadyExists) return false;
      throw new Error(
        `${join(this.dir, runId)}: cannot claim the run (${
          e instanceof Error ? e.message : String(e)
        })`,
      );
    }
  }
  /** Remove the folder once the workers are done. */
  async remove(): Promise<void> {
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }
}

/**
 * Runs longest first (`cost` in seconds; NaN, an unknown cost, counts as longest), ties in plan
 * order: the order workers claim in, which keeps the last runs short (LPT list scheduling).
 */
export function longestFirst<T>(runs: readonly T[], cost: (r: T) => number): T[] {
  const c = (r: T) => {
    const x = cost(r);
    return Number.isNaN(x) ? Infinity : x;
  };
  return runs.map((r, i) => ({ r, i, c: c(r) })).sort((a, b) => b.c - a.c || a.i - b.i).map((
    x,
  ) => x.r);
}

/**
 * Wall time of `costs` taken longest first by `jobs` workers that each claim the next run as
 * soon as they are free (the largest worker sum of the list schedule).
 */
export function claimedWallSeconds(costs: readonly number[], jobs: number): number {
  const load = new Array<number>(Math.max(1, jobs)).fill(0);
  for (const c of longestFirst(costs, (x) => x)) {
    let k = 0;
    for (let j = 1; j < load.length; j++) if (load[j]! < load[k]!) k = j;
    load[k]! += c;
  }
  return Math.max(...load);
}

/** What `--jobs auto` weighs besides the cores: memory available and what a worker needs. */
export interface WorkerMemory {
  /** Bytes the system can give (MemAvailable). */
  availableBytes: number;
  /** Bytes one worker is expected to hold at its peak (NaN: unknown). */
  perWorkerBytes: number;
  /** How the per-worker figure was obtained, for the notice. */
  source: string;
}

/** Share of the available memory the workers may plan to use (the rest: the OS, page cache). */
export const MEMORY_HEADROOM = 0.85;

/** Memory the system can give now (`Deno.systemMemoryInfo().available`), NaN if unknown. */
export function availableMemoryBytes(): number {
  try {
    return Deno.systemMemoryInfo().available;
  } catch {
    return NaN;
  }
}

/**
 * `--jobs auto` with memory: one worker per core, but no more than fit in
 * {@link MEMORY_HEADROOM} of the available memory at `perWorkerBytes` each (at least one).
 * An explicit count is kept. Returns the count and, when memory decided or is tight, a
 * one-line notice.
 */
export function jobsForMemory(
  jobs: string | null,
  runs: number,
  mem: WorkerMemory,
): { jobs: number; notice: string | null } {
  const n = resolveJobs(jobs, runs);
  const gb = (b: number) => `${(b / 2 ** 30).toFixed(1)} GB`;
  if (!(mem.perWorkerBytes > 0) || !(mem.availableBytes > 0)) return { jobs: n, notice: null };
  const fit = Math.max(1, Math.floor(mem.availableBytes * MEMORY_HEADROOM / mem.perWorkerBytes));
  const what = `${gb(mem.availableBytes)} available, about ${
    gb(mem.perWorkerBytes)
  } per worker (${mem.source})`;
  if (jobs !== null && jobs !== "auto") {
    return {
      jobs: n,
      notice: n > fit ? `--jobs ${n}: ${what}: ${fit} fit; expect swapping or an OOM kill` : null,
    };
  }
  if (fit >= n) {
    return { jobs: n, notice: `--jobs auto: ${n} worker${n === 1 ? "" : "s"} (${what})` };
  }
  return {
    jobs: fit,
    notice: `--jobs auto: ${fit} worker${fit === 1 ? "" : "s"}, not ${n} (one per core): ${what}`,
  };
}

/** Drop `--jobs` (and its value) from argv. */
export function withoutJobs(argv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--jobs") i++;
    else if (!a.startsWith("--jobs=")) out.push(a);
  }
  return out;
}

/**
 * Run `argv` as `jobs` shard workers; resolves to the worst exit code. Backend notices are
 * printed by the first worker only, or by none with `quiet` (the caller printed them).
 */
export async function runWorkers(
  argv: string[],
  jobs: number,
  opts: { quiet?: boolean; claims?: RunClaims } = {},
): Promise<number> {
  const children = Array.from({ length: jobs }, (_, i) =>
    new Deno.Command(Deno.execPath(), {
      // With claims the workers share the plan; the shard still names the worker in logs.
      args: ["run", "-A", MAIN, ...withoutJobs(argv), "--jobs", "1", "--shard", `${i}/${jobs}`],
      // Workers inherit OMP_NUM_THREADS (default 1, see methods/nn/native/dnnl.ts), so their
      // numbers equal a single-process run's.
      // Backend fallback notices are the same in every worker: print them once.
      env: {
        SEMISEG_WORKER: `${i + 1}/${jobs}`,
        ...(opts.claims ? { [CLAIMS_ENV]: opts.claims.dir } : {}),
        ...(i > 0 || opts.quiet ? { SEMISEG_NOTICES: "0" } : {}),
      },
      stdin: "null",
      stdout: "null",
      stderr: "inherit",
    }).spawn());
  const codes = await Promise.all(children.map(async (c) => (await c.status).code));
  return Math.max(...codes);
}
