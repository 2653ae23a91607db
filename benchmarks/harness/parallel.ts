/**
 * `--jobs N`: run a plan as N worker processes on one machine, each taking a disjoint
 * `--shard i/N` slice (the same mechanism SLURM job arrays use), then build the tables once.
 * tfjs's cpu backend runs on one JS thread per process, so on a 2-core machine two workers
 * roughly halve the wall time of a grid.
 * @module
 */

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
  opts: { quiet?: boolean } = {},
): Promise<number> {
  const children = Array.from({ length: jobs }, (_, i) =>
    new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", MAIN, ...withoutJobs(argv), "--jobs", "1", "--shard", `${i}/${jobs}`],
      // Workers inherit OMP_NUM_THREADS (default 1, see methods/nn/native/dnnl.ts), so their
      // numbers equal a single-process run's.
      // Backend fallback notices are the same in every worker: print them once.
      env: {
        SEMISEG_WORKER: `${i + 1}/${jobs}`,
        ...(i > 0 || opts.quiet ? { SEMISEG_NOTICES: "0" } : {}),
      },
      stdin: "null",
      stdout: "null",
      stderr: "inherit",
    }).spawn());
  const codes = await Promise.all(children.map(async (c) => (await c.status).code));
  return Math.max(...codes);
}
