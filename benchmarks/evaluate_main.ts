/**
 * `deno task evaluate --checkpoint FILE.pth --benchmark NAME [flags]`: re-score a PyTorch
 * checkpoint on a benchmark's test split under the benchmark's protocol, print its
 * paper-format row (with and without the largest connected component) beside the paper's
 * number, and store a run file marked as an external checkpoint (`harness/rescore.ts`).
 * @module
 */
import { join } from "node:path";
import { getDataset } from "../datasets/mod.ts";
import { BACKEND_CHOICES, type BackendChoice, initBackend } from "../methods/nn/backend.ts";
import { getBenchmark } from "./mod.ts";
import { checkWritable, ResultStore } from "./harness/store.ts";
import { Progress } from "./harness/progress.ts";
import { gitCommit } from "./harness/runner.ts";
import { checkOutputFolder, parseFlags } from "./harness/flags.ts";
import { findRow, rescoreCheckpoint, rescoreText } from "./harness/rescore.ts";
import type { Split } from "../datasets/types.ts";

const HELP = [
  "deno task evaluate --checkpoint FILE.pth --benchmark NAME [flags]",
  "",
  "Loads a PyTorch checkpoint (torch.save zip or legacy format; a state_dict, bare or under",
  "state_dict/model/net/..., module. prefixes stripped; UA-MT/DTC V-Net or MASSL names) into the",
  "network of a benchmark row, scores it on the benchmark's test split under the benchmark's",
  "protocol (sliding window, metrics), prints the paper-format row beside the paper's number with",
  "and without largest-connected-component post-processing, and stores a run file marked as an",
  "external checkpoint (its own row in --tables-only and deno task report). Progress on stderr.",
  "",
  "Flags:",
  "  --checkpoint FILE  the .pth/.pt/.tar file (required)",
  "  --benchmark NAME   the benchmark whose protocol and test split score it (required)",
  "  --method ROW       row key or method id (default: the first row the checkpoint fits)",
  "  --labeled N        labeled setting the row is shown at (default: the row's first)",
  "  --cases N          score only the first N test cases of the split (marked as a subset)",
  "  --case-ids A,B     score only these test cases (marked as a subset)",
  "  --key K            take the state_dict under this (dotted) key of the checkpoint",
  "  --split NAME       split or fold whose test cases to score (default: the benchmark's)",
  "  --stride XY/Z      NON-PAPER sliding-window stride (ua-mt window), e.g. 56/40 for a quick",
  "                     look on a CPU; marked as non-paper in the row, output and run file",
  "  --data-dir DIR     dataset root (default: data/<dataset>)",
  "  --out DIR          results root (default: results)",
  `  --backend NAME     ${BACKEND_CHOICES.join(" | ")} (default auto)`,
  "  --help             this help",
].join("\n");

/** Parsed flags of `deno task evaluate`. */
export interface EvaluateOptions {
  checkpoint: string;
  benchmark: string;
  method?: string;
  labeled?: number;
  cases?: number;
  caseIds?: string[];
  key?: string;
  split?: string;
  stride?: [number, number];
  dataDir?: string;
  out: string;
  backend: BackendChoice;
  help: boolean;
}

function positiveInt(flag: string, v: string): number {
  if (!/^\d+$/.test(v) || Number(v) < 1) {
    throw new Error(`--${flag}: expected a positive integer, got '${v}'`);
  }
  return Number(v);
}

/** Parse argv; every problem is one line naming the flag. */
export function parseEvaluateArgs(argv: string[]): EvaluateOptions {
  const { values }: { values: Record<string, string | boolean | undefined> } = parseFlags(argv, {
    checkpoint: { type: "string" },
    benchmark: { type: "string" },
    method: { type: "string" },
    labeled: { type: "string" },
    cases: { type: "string" },
    "case-ids": { type: "string" },
    key: { type: "string" },
    split: { type: "string" },
    stride: { type: "string" },
    "data-dir": { type: "string" },
    out: { type: "string" },
    backend: { type: "string" },
    help: { type: "boolean" },
  });
  const str = (k: string) => values[k] as string | undefined;
  const help = values.help === true;
  const checkpoint = str("checkpoint"), benchmark = str("benchmark");
  if (!help && checkpoint === undefined) throw new Error("--checkpoint FILE is required");
  if (!help && benchmark === undefined) {
    throw new Error("--benchmark NAME is required (deno task bench --list lists them)");
  }
  const backend = str("backend") ?? "auto";
  if (!(BACKEND_CHOICES as readonly string[]).includes(backend)) {
    throw new Error(
      `--backend: unknown backend '${backend}' (expected one of ${BACKEND_CHOICES.join(", ")})`,
    );
  }
  if (str("cases") !== undefined && str("case-ids") !== undefined) {
    throw new Error("--cases and --case-ids: pass one of them");
  }
  const o: EvaluateOptions = {
    checkpoint: checkpoint ?? "",
    benchmark: benchmark ?? "",
    out: str("out") ?? "results",
    backend: backend as BackendChoice,
    help,
  };
  if (str("method") !== undefined) o.method = str("method")!;
  if (str("labeled") !== undefined) o.labeled = positiveInt("labeled", str("labeled")!);
  if (str("cases") !== undefined) o.cases = positiveInt("cases", str("cases")!);
  if (str("case-ids") !== undefined) {
    const ids = str("case-ids")!.split(",").map((s) => s.trim()).filter((s) => s !== "");
    if (ids.length === 0) throw new Error("--case-ids: expected a comma-separated list of ids");
    o.caseIds = ids;
  }
  if (str("key") !== undefined) o.key = str("key")!;
  if (str("split") !== undefined) o.split = str("split")!;
  if (str("data-dir") !== undefined) o.dataDir = str("data-dir")!;
  if (str("stride") !== undefined) {
    const m = /^(\d+)\/(\d+)$/.exec(str("stride")!);
    if (!m || Number(m[1]) < 1 || Number(m[2]) < 1) {
      throw new Error(
        `--stride: expected XY/Z (positive integers, e.g. 56/40), got '${str("stride")}'`,
      );
    }
    o.stride = [Number(m[1]), Number(m[2])];
  }
  return o;
}

function pickSplit(splits: Split[], name: string | undefined, what: string): Split {
  const s = name === undefined ? splits[0] : splits.find((x) => x.name === name);
  if (!s) {
    throw new Error(
      `${what}: no split '${name}' (expected one of ${splits.map((x) => x.name).join(", ")})`,
    );
  }
  return s;
}

/** Entry point; returns the process exit code. */
export async function main(argv: string[]): Promise<number> {
  const out = (s: string) => Deno.stdout.writeSync(new TextEncoder().encode(s + "\n"));
  const opts = parseEvaluateArgs(argv);
  if (opts.help) {
    out(HELP);
    return 0;
  }
  // Before anything is read or scored: --out must be a folder (or able to become one).
  await checkOutputFolder("--out", opts.out);
  const spec = getBenchmark(opts.benchmark);
  if (opts.method !== undefined) findRow(spec, opts.method);
  const root = opts.dataDir ?? join("data", spec.dataset.id);
  if (opts.dataDir !== undefined && (await Deno.stat(root).catch(() => null))?.isFile) {
    throw new Error(
      `--data-dir: '${root}' is a file, not a folder (pass the ${spec.dataset.id} data root)`,
    );
  }
  let dataset;
  try {
    dataset = getDataset(spec.dataset.id).open(root, spec.dataset.options ?? {});
  } catch (e) {
    throw new Error(
      `${
        (e as Error).message
      } (pass --data-dir DIR; \`deno task data ${spec.dataset.id}\` prints where to obtain the data and the expected layout)`,
    );
  }
  const splits = await dataset.splits();
  const split = pickSplit(
    splits,
    opts.split ?? spec.dataset.folds?.[0] ?? spec.dataset.split,
    `benchmark ${spec.id}: dataset ${spec.dataset.id}`,
  );
  // The run file is written after the scoring: a folder that cannot take it is one line now.
  const store = new ResultStore(opts.out, spec.id);
  await checkWritable([store.dir, join(store.dir, "runs")], "the re-scored run file");
  const provenance = await initBackend(opts.backend);
  const result = await rescoreCheckpoint({
    spec,
    checkpoint: opts.checkpoint,
    ...(opts.method !== undefined ? { method: opts.method } : {}),
    ...(opts.labeled !== undefined ? { labeled: opts.labeled } : {}),
    ...(opts.cases !== undefined ? { cases: opts.cases } : {}),
    ...(opts.caseIds !== undefined ? { caseIds: opts.caseIds } : {}),
    ...(opts.stride !== undefined ? { stride: opts.stride } : {}),
    ...(opts.key !== undefined ? { key: opts.key } : {}),
    dataset,
    split,
    root,
    store,
    provenance,
    gitCommit: await gitCommit(),
    progress: new Progress(),
  });
  out(rescoreText(spec, result));
  return 0;
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (e) {
    const msg = ((e instanceof Error ? e.message : String(e)).split("\n")[0] ?? "").trim();
    Deno.stderr.writeSync(new TextEncoder().encode(`evaluate: ${msg}\n`));
    Deno.exit(2);
  }
}
