/**
 * Grid expansion: a benchmark spec x CLI filters -> the list of runs, each with a stable id
 * (SHA-256 of its canonical spec, so neither flag order nor method order changes it).
 * @module
 */
import { getMethod, METHODS } from "../../methods/mod.ts";
import {
  type HyperParams,
  type MethodDefinition,
  resolveHyperParams,
} from "../../methods/types.ts";
import { hashOf } from "../../methods/nn/canonical.ts";
import type { BenchmarkSpec, MethodEntry } from "./spec.ts";

/** One run of the grid. */
export interface PlannedRun {
  /** First 16 hex digits of the spec hash. */
  runId: string;
  benchmark: string;
  rowKey: string;
  method: string;
  labeled: number;
  seed: number;
  /** The fold (split name) of a cross-validated benchmark; null = the benchmark's split. */
  split: string | null;
  labeledOnly: boolean;
  /** Training patch [x, y, z] (the row's, else the benchmark's). */
  patch: [number, number, number];
  hyperParams: HyperParams;
  /** Everything that determines the run's numbers; what the id hashes. */
  spec: Record<string, unknown>;
}

/** Filters from the command line; absent = everything the spec declares. */
export interface PlanFilter {
  methods?: string[];
  labeled?: number[];
  seeds?: number[];
  iterations?: number;
}

/** The row key of a method entry. */
export function rowKey(e: MethodEntry): string {
  return e.key ?? e.method;
}

/** True when `name` is a row key or a row's method id of `spec`. */
function isRowOf(spec: BenchmarkSpec, name: string): boolean {
  return spec.methods.some((e) => rowKey(e) === name || e.method === name);
}

/** True when `id` is a method registered in methods/mod.ts (not a `--method-file` one). */
function isRegistered(id: string): boolean {
  return METHODS.some((d) => d.id === id);
}

/**
 * Resolve `--methods` names to the row keys or method ids of `spec`, or to registered method
 * ids that are not rows of it (added rows, see {@link withAddedMethods}): an exact match
 * first; otherwise the name with `_` read as `-` (the file name `deno task new-method
 * my_method` writes, whose id is `my-method`). Unknown names are one-line errors listing the
 * choices.
 */
export function resolveMethodNames(spec: BenchmarkSpec, names: string[]): string[] {
  const keys = spec.methods.map(rowKey);
  const known = (m: string) => isRowOf(spec, m) || isRegistered(m);
  return names.map((m) => {
    if (known(m)) return m;
    const dashed = m.replaceAll("_", "-");
    if (known(dashed)) return dashed;
    throw new Error(
      `--methods: '${m}' is not in benchmark ${spec.id} (expected one of ${
        keys.join(", ")
      }) nor a registered method (deno task bench --list)`,
    );
  });
}

/**
 * The row a registered method gets in a benchmark that does not declare it: keyed by its id,
 * the benchmark's common settings and the method's default hyper-parameters (as every row
 * without overrides), labeled-only when the method uses no unlabeled data, the benchmark's
 * patch grown to the method's `minTrainPatch`; marked added. Its runs hash like any row's,
 * so adding it changes no other row's run ids.
 */
// deno-lint-ignore no-explicit-any
export function addedEntry(spec: BenchmarkSpec, def: MethodDefinition<any>): MethodEntry {
  const edge = def.meta.minTrainPatch ?? 0;
  const patch = spec.patch.map((p) => Math.max(p, edge)) as [number, number, number];
  return {
    method: def.id,
    added: true,
    ...(def.meta.usesUnlabeled === false ? { labeledOnly: true } : {}),
    ...(patch.join() === spec.patch.join() ? {} : { patch }),
  };
}

/**
 * `spec` with a row added for each of `names` (resolved, see {@link resolveMethodNames}) that
 * is a registered method but not a row of `spec`, in the order given. Other rows are unchanged.
 */
export function withAddedMethods(spec: BenchmarkSpec, names: string[]): BenchmarkSpec {
  const extra: MethodEntry[] = [];
  for (const n of names) {
    if (isRowOf(spec, n) || extra.some((e) => e.method === n)) continue;
    extra.push(addedEntry(spec, getMethod(n)));
  }
  return extra.length ? { ...spec, methods: [...spec.methods, ...extra] } : spec;
}

/** Expand `spec` into runs, sorted by row, labeled, seed. Unknown filter values are errors. */
export function expandGrid(spec: BenchmarkSpec, filter: PlanFilter = {}): PlannedRun[] {
  if (filter.methods) {
    const names = resolveMethodNames(spec, filter.methods);
    spec = withAddedMethods(spec, names);
    filter = { ...filter, methods: names };
  }
  for (const l of filter.labeled ?? []) {
    if (!spec.labeled.includes(l)) {
      throw new Error(
        `--labeled: ${l} is not a setting of ${spec.id} (expected one of ${
          spec.labeled.join(", ")
        })`,
      );
    }
  }
  const iterations = filter.iterations ?? spec.iterations;
  const seeds = filter.seeds ?? spec.seeds;
  const runs: PlannedRun[] = [];
  for (const entry of spec.methods) {
    const key = rowKey(entry);
    if (filter.methods && !filter.methods.includes(key) && !filter.methods.includes(entry.method)) {
      continue;
    }
    const def = getMethod(entry.method);
    const common = Object.fromEntries(
      Object.entries(spec.common ?? {}).filter(([k]) => k in def.defaults),
    );
    const hp = resolveHyperParams(def, { ...common, ...entry.overrides });
    for (const labeled of entry.labeled ?? spec.labeled) {
      if (filter.labeled && !filter.labeled.includes(labeled)) continue;
      for (const fold of spec.dataset.folds ?? [null]) {
        for (const seed of seeds) {
          const runSpec = {
            ...(fold === null ? {} : { split: fold }),
            benchmark: spec.id,
            dataset: spec.dataset,
            method: entry.method,
            rowKey: key,
            hyperParams: hp,
            labeled,
            labeledOnly: entry.labeledOnly ?? false,
            seed,
            iterations,
            batch: spec.batch,
            patch: entry.patch ?? spec.patch,
            eval: spec.eval,
            selection: spec.selection,
          };
          runs.push({
            runId: hashOf(runSpec).slice(0, 16),
            benchmark: spec.id,
            rowKey: key,
            method: entry.method,
            labeled,
            seed,
            split: fold,
            labeledOnly: entry.labeledOnly ?? false,
            patch: entry.patch ?? spec.patch,
            hyperParams: hp,
            spec: runSpec,
          });
        }
      }
    }
  }
  return runs;
}

/** Parse `i/n` (0 <= i < n) for --shard. */
export function parseShard(s: string): { index: number; count: number } {
  const m = /^(\d+)\/(\d+)$/.exec(s);
  const index = m ? Number(m[1]) : NaN, count = m ? Number(m[2]) : NaN;
  if (!m || count < 1 || index >= count) {
    throw new Error(`--shard: expected i/n with 0 <= i < n (e.g. 0/4), got '${s}'`);
  }
  return { index, count };
}

/** The i-th of n disjoint slices, assigned by position in run-id order (stable). */
export function shardRuns(
  runs: PlannedRun[],
  shard: { index: number; count: number },
): PlannedRun[] {
  const sorted = [...runs].sort((a, b) => a.runId.localeCompare(b.runId));
  const mine = new Set(
    sorted.filter((_, i) => i % shard.count === shard.index).map((r) => r.runId),
  );
  return runs.filter((r) => mine.has(r.runId));
}
