/**
 * Flag parsing for `deno task bench` (node:util parseArgs, strict): every flag documented in
 * one table so `--help` and the parser cannot drift apart.
 * @module
 */
import { BACKEND_CHOICES, type BackendChoice } from "../methods/nn/backend.ts";
import { joinNegativeValues, parseFlags } from "./harness/flags.ts";

interface FlagDoc {
  type: "string" | "boolean";
  help: string;
  arg?: string;
  /**
   * false: the flag steers a submission or a listing, not the plan, and is not passed on to
   * SLURM array tasks (harness/slurm_script.ts `taskArgs`); every other flag is forwarded.
   */
  forward?: false;
}

/** Every flag of `deno task bench`. */
export const FLAGS: Record<string, FlagDoc> = {
  benchmark: {
    type: "string",
    arg: "NAME",
    help: "benchmark to run (default: synthetic, which needs no data)",
    forward: false,
  },
  methods: { type: "string", arg: "A,B", help: "only these method rows (ids or row keys)" },
  labeled: { type: "string", arg: "N,M", help: "only these labeled-case settings" },
  seeds: {
    type: "string",
    arg: "S,T",
    help: "base seeds, each listed once (default: the benchmark's)",
  },
  iterations: {
    type: "string",
    arg: "N",
    help: "training iterations per run (default: the benchmark's)",
  },
  backend: {
    type: "string",
    arg: "NAME",
    help: `compute backend: ${BACKEND_CHOICES.join(" | ")} (default auto)`,
  },
  "data-dir": { type: "string", arg: "DIR", help: "dataset root (default: data/<dataset>)" },
  out: { type: "string", arg: "DIR", help: "results root (default: results)", forward: false },
  shard: {
    type: "string",
    arg: "i/n",
    help: "run only the i-th (0-based) of n disjoint slices of the grid",
    forward: false,
  },
  jobs: {
    type: "string",
    arg: "N|auto",
    help:
      "worker processes on this machine, each a disjoint shard (default auto: one per CPU core)",
    forward: false,
  },
  "method-file": {
    type: "string",
    arg: "FILE",
    help: "also run the method a file default-exports (type-checked; rows marked external)",
  },
  compare: {
    type: "string",
    arg: "METHOD",
    help: "after running, print METHOD vs every other row with paired t-tests and a verdict",
  },
  "rerun-stale": {
    type: "boolean",
    help:
      "rerun the stored runs made by other code than this checkout, or with no code hash (each stored file is replaced only when its rerun finishes)",
  },
  "dry-run": {
    type: "boolean",
    help:
      "print the run plan with ids (stdout) and its estimated wall time (stderr, from stored or probed step rates); run nothing",
    forward: false,
  },
  "no-estimate": {
    type: "boolean",
    help:
      "skip the wall-time estimate printed by --dry-run and at the start of a run (no probe steps)",
  },
  "tables-only": {
    type: "boolean",
    help: "rebuild tables from the stored run files; train nothing",
    forward: false,
  },
  status: {
    type: "boolean",
    help: "report finished / running / failed / missing runs of the plan from the result files",
    forward: false,
  },
  slurm: {
    type: "boolean",
    help: "submit the plan as a SLURM job array (one task per shard) instead of running it",
    forward: false,
  },
  shards: {
    type: "string",
    arg: "N",
    help: "SLURM: array tasks (default: one per run)",
    forward: false,
  },
  partition: {
    type: "string",
    arg: "P",
    help: "SLURM: partition (sbatch --partition)",
    forward: false,
  },
  gres: {
    type: "string",
    arg: "G",
    help: "SLURM: generic resources per task, e.g. gpu:1",
    forward: false,
  },
  time: {
    type: "string",
    arg: "HH:MM:SS",
    help: "SLURM: time limit per task ([D-]HH:MM:SS)",
    forward: false,
  },
  cpus: { type: "string", arg: "N", help: "SLURM: CPUs per task", forward: false },
  mem: { type: "string", arg: "M", help: "SLURM: memory per task, e.g. 8G", forward: false },
  "array-parallel": {
    type: "string",
    arg: "K",
    help: "SLURM: at most K tasks at a time (%K)",
    forward: false,
  },
  "slurm-dry-run": {
    type: "boolean",
    help: "SLURM: write the sbatch script, print it and the sbatch command; submit nothing",
    forward: false,
  },
  "slurm-resubmit-failed": {
    type: "boolean",
    help: "SLURM: submit only the shards that still have unfinished runs (they resume)",
    forward: false,
  },
  list: { type: "boolean", help: "list benchmarks, methods and datasets", forward: false },
  help: { type: "boolean", help: "this help", forward: false },
};

/** A SLURM submission request (`--slurm`, `--slurm-dry-run`, `--slurm-resubmit-failed`). */
export interface SlurmRequest {
  partition: string | null;
  gres: string | null;
  time: string | null;
  cpus: number | null;
  mem: string | null;
  arrayParallel: number | null;
  /** Array tasks; null = the default (one per run, capped). */
  shards: number | null;
  dryRun: boolean;
  resubmitFailed: boolean;
}

/** Parsed and validated options. */
export interface BenchOptions {
  benchmark: string | null;
  methods: string[] | null;
  labeled: number[] | null;
  seeds: number[] | null;
  iterations: number | null;
  backend: BackendChoice;
  dataDir: string | null;
  out: string;
  shard: string | null;
  jobs: string | null;
  methodFile: string | null;
  compare: string | null;
  dryRun: boolean;
  /** Print the wall-time estimate (false with --no-estimate). */
  estimate: boolean;
  tablesOnly: boolean;
  /** --rerun-stale: rerun stored runs made by other code (or without a code hash). */
  rerunStale: boolean;
  /** --status: report the plan's run states. */
  status: boolean;
  /** Set when the plan is to be submitted to SLURM. */
  slurm: SlurmRequest | null;
  list: boolean;
  help: boolean;
}

/** The --help text. */
export function helpText(): string {
  const lefts = Object.entries(FLAGS).map(([name, f]) => `  --${name}${f.arg ? ` ${f.arg}` : ""}`);
  const width = Math.max(24, ...lefts.map((l) => l.length));
  const rows = Object.values(FLAGS).map((f, i) => `${lefts[i]!.padEnd(width)} ${f.help}`);
  return [
    "deno task bench [flags]",
    "",
    "Runs a benchmark (methods x labeled settings x seeds), stores one JSON file per finished",
    "run under results/<benchmark>/runs/ and writes the paper-format tables beside them.",
    "Finished runs are skipped and interrupted runs resume from their last checkpoint;",
    "stored runs made by other code are reported and kept (--rerun-stale reruns them).",
    "",
    "Flags:",
    ...rows,
  ].join("\n");
}

function intList(flag: string, v: string | undefined): number[] | null {
  if (v === undefined) return null;
  const xs = v.split(",").map((s) => s.trim()).filter((s) => s !== "");
  const out = xs.map(Number);
  if (xs.length === 0 || out.some((x) => !Number.isSafeInteger(x) || x < 0)) {
    throw new Error(
      `--${flag}: expected a comma-separated list of non-negative integers, got '${v}'`,
    );
  }
  // A repeated value would plan the same runs twice (same ids): refuse it rather than guess.
  const twice = out.find((x, i) => out.indexOf(x) !== i);
  if (twice !== undefined) {
    throw new Error(`--${flag}: ${twice} is listed twice in '${v}' (list each value once)`);
  }
  return out;
}

const SLURM_VALUE_FLAGS: Record<string, { re: RegExp; expect: string }> = {
  shards: { re: /^[1-9]\d*$/, expect: "a positive integer" },
  partition: { re: /^[\w.-]+(,[\w.-]+)*$/, expect: "a partition name (or a,b)" },
  gres: { re: /^[\w.:-]+(,[\w.:-]+)*$/, expect: "a gres list such as gpu:1" },
  time: {
    re: /^(\d+-)?\d+:[0-5]\d:[0-5]\d$/,
    expect: "a time limit [D-]HH:MM:SS such as 02:00:00",
  },
  cpus: { re: /^[1-9]\d*$/, expect: "a positive integer" },
  mem: { re: /^[1-9]\d*[KMGT]?$/, expect: "a memory size such as 8G or 4000M" },
  "array-parallel": { re: /^[1-9]\d*$/, expect: "a positive integer" },
};

/** The SLURM request of the parsed flags, or null; one-line errors naming the flag. */
function slurmRequest(values: Record<string, string | boolean | undefined>): SlurmRequest | null {
  const str = (k: string) => values[k] as string | undefined;
  for (const [k, { re, expect }] of Object.entries(SLURM_VALUE_FLAGS)) {
    const v = str(k);
    if (v !== undefined && !re.test(v)) throw new Error(`--${k}: expected ${expect}, got '${v}'`);
  }
  const on = values.slurm === true || values["slurm-dry-run"] === true ||
    values["slurm-resubmit-failed"] === true;
  if (!on) {
    const stray = Object.keys(SLURM_VALUE_FLAGS).find((k) => str(k) !== undefined);
    if (stray) throw new Error(`--${stray}: only with --slurm (a SLURM submission)`);
    return null;
  }
  for (const k of ["shard", "dry-run", "tables-only", "status"]) {
    if (values[k] !== undefined) {
      throw new Error(`--${k}: not with --slurm (the job array assigns the shards itself)`);
    }
  }
  const int = (k: string) => str(k) === undefined ? null : Number(str(k));
  return {
    partition: str("partition") ?? null,
    gres: str("gres") ?? null,
    time: str("time") ?? null,
    cpus: int("cpus"),
    mem: str("mem") ?? null,
    arrayParallel: int("array-parallel"),
    shards: int("shards"),
    dryRun: values["slurm-dry-run"] === true,
    resubmitFailed: values["slurm-resubmit-failed"] === true,
  };
}

/** Parse argv; every problem is a one-line Error naming the flag. */
export function parseBenchArgs(argv: string[]): BenchOptions {
  const options = Object.fromEntries(
    Object.entries(FLAGS).map(([k, f]) => [k, { type: f.type }]),
  ) as Record<string, { type: "string" | "boolean" }>;
  const args = joinNegativeValues(
    argv,
    Object.keys(FLAGS).filter((k) => FLAGS[k]!.type === "string"),
  );
  const { values }: { values: Record<string, string | boolean | undefined> } = parseFlags(
    args,
    options,
  );
  const str = (k: string) => values[k] as string | undefined;
  const backend = (str("backend") ?? "auto") as BackendChoice;
  if (!(BACKEND_CHOICES as readonly string[]).includes(backend)) {
    throw new Error(
      `--backend: unknown backend '${backend}' (expected one of ${BACKEND_CHOICES.join(", ")})`,
    );
  }
  const iters = str("iterations")?.split(",").map((s) => s.trim()).filter((s) => s !== "")
    .map(Number);
  // Safe integers only: 1e20 would plan a run that never ends.
  if (iters && (iters.length !== 1 || !Number.isSafeInteger(iters[0]) || iters[0]! < 1)) {
    throw new Error(`--iterations: expected one positive integer, got '${str("iterations")}'`);
  }
  const methods = str("methods");
  if (methods !== undefined && methods.split(",").every((s) => s.trim() === "")) {
    throw new Error(
      `--methods: expected a comma-separated list of method ids or row keys, got '${methods}' (deno task bench --list lists them)`,
    );
  }
  // One mode per invocation: a second one would be ignored without a word.
  const modes = ["dry-run", "tables-only", "status", "list"].filter((k) => values[k] === true);
  if (modes.length > 1) {
    throw new Error(`--${modes[0]}: not with --${modes[1]} (pass one of them)`);
  }
  // --shard is one slice run by this process; --jobs N would be ignored (workers get --jobs 1).
  if (str("shard") !== undefined && str("jobs") !== undefined && str("jobs") !== "1") {
    throw new Error(
      `--shard: not with --jobs ${str("jobs")} (a shard runs in one process; drop one of them)`,
    );
  }
  for (const k of ["tables-only", "status"]) {
    if (values["rerun-stale"] === true && values[k] === true) {
      throw new Error(`--rerun-stale: not with --${k} (it reruns runs; --${k} runs nothing)`);
    }
  }
  return {
    benchmark: str("benchmark") ?? null,
    methods: methods === undefined ? null : methods.split(",").map((s) => s.trim()).filter(Boolean),
    labeled: intList("labeled", str("labeled")),
    seeds: intList("seeds", str("seeds")),
    iterations: iters ? iters[0]! : null,
    backend,
    dataDir: str("data-dir") ?? null,
    out: str("out") ?? "results",
    shard: str("shard") ?? null,
    jobs: str("jobs") ?? null,
    methodFile: str("method-file") ?? null,
    compare: str("compare") ?? null,
    dryRun: values["dry-run"] === true,
    estimate: values["no-estimate"] !== true,
    tablesOnly: values["tables-only"] === true,
    rerunStale: values["rerun-stale"] === true,
    status: values.status === true,
    slurm: slurmRequest(values),
    list: values.list === true,
    help: values.help === true,
  };
}
