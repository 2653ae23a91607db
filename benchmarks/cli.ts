/**
 * Flag parsing for `deno task bench` (node:util parseArgs, strict): every flag documented in
 * one table so `--help` and the parser cannot drift apart.
 * @module
 */
import { parseArgs } from "node:util";
import { BACKEND_CHOICES, type BackendChoice } from "../methods/nn/backend.ts";

interface FlagDoc {
  type: "string" | "boolean";
  help: string;
  arg?: string;
}

/** Every flag of `deno task bench`. */
export const FLAGS: Record<string, FlagDoc> = {
  benchmark: {
    type: "string",
    arg: "NAME",
    help: "benchmark to run (default: synthetic, which needs no data)",
  },
  methods: { type: "string", arg: "A,B", help: "only these method rows (ids or row keys)" },
  labeled: { type: "string", arg: "N,M", help: "only these labeled-case settings" },
  seeds: { type: "string", arg: "S,T", help: "base seeds (default: the benchmark's)" },
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
  out: { type: "string", arg: "DIR", help: "results root (default: results)" },
  shard: {
    type: "string",
    arg: "i/n",
    help: "run only the i-th (0-based) of n disjoint slices of the grid",
  },
  "dry-run": {
    type: "boolean",
    help: "print the run plan with ids and estimated cost; run nothing",
  },
  "tables-only": {
    type: "boolean",
    help: "rebuild tables from the stored run files; train nothing",
  },
  list: { type: "boolean", help: "list benchmarks, methods and datasets" },
  help: { type: "boolean", help: "this help" },
};

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
  dryRun: boolean;
  tablesOnly: boolean;
  list: boolean;
  help: boolean;
}

/** The --help text. */
export function helpText(): string {
  const rows = Object.entries(FLAGS).map(([name, f]) => {
    const left = `  --${name}${f.arg ? ` ${f.arg}` : ""}`;
    return `${left.padEnd(24)} ${f.help}`;
  });
  return [
    "deno task bench [flags]",
    "",
    "Runs a benchmark (methods x labeled settings x seeds), stores one JSON file per finished",
    "run under results/<benchmark>/runs/ and writes the paper-format tables beside them.",
    "Finished runs are skipped and interrupted runs resume from their last checkpoint.",
    "",
    "Flags:",
    ...rows,
  ].join("\n");
}

function intList(flag: string, v: string | undefined): number[] | null {
  if (v === undefined) return null;
  const xs = v.split(",").map((s) => s.trim()).filter((s) => s !== "");
  const out = xs.map(Number);
  if (xs.length === 0 || out.some((x) => !Number.isInteger(x) || x < 0)) {
    throw new Error(
      `--${flag}: expected a comma-separated list of non-negative integers, got '${v}'`,
    );
  }
  return out;
}

/** Parse argv; every problem is a one-line Error naming the flag. */
export function parseBenchArgs(argv: string[]): BenchOptions {
  const options = Object.fromEntries(
    Object.entries(FLAGS).map(([k, f]) => [k, { type: f.type }]),
  ) as Record<string, { type: "string" | "boolean" }>;
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({ args: argv, options, strict: true, allowPositionals: false }));
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    const unknown = /Unknown option '([^']+)'/.exec(msg);
    if (unknown) throw new Error(`unknown flag ${unknown[1]} (see --help for the flags)`);
    const pos = /Unexpected argument '([^']+)'/.exec(msg);
    if (pos) throw new Error(`unexpected argument '${pos[1]}' (flags take the form --name value)`);
    throw new Error((msg.split("\n")[0] ?? msg).replace(/^Option '([^']+)'/, "flag $1"));
  }
  const str = (k: string) => values[k] as string | undefined;
  const backend = (str("backend") ?? "auto") as BackendChoice;
  if (!(BACKEND_CHOICES as readonly string[]).includes(backend)) {
    throw new Error(
      `--backend: unknown backend '${backend}' (expected one of ${BACKEND_CHOICES.join(", ")})`,
    );
  }
  const iters = intList("iterations", str("iterations"));
  if (iters && (iters.length !== 1 || iters[0]! < 1)) {
    throw new Error(`--iterations: expected one positive integer, got '${str("iterations")}'`);
  }
  const methods = str("methods");
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
    dryRun: values["dry-run"] === true,
    tablesOnly: values["tables-only"] === true,
    list: values.list === true,
    help: values.help === true,
  };
}
