/**
 * The benchmark registry: one import and one list entry per paper-table file.
 * @module
 */
import type { BenchmarkSpec } from "./harness/spec.ts";
import { synthetic } from "./synthetic.ts";
import { laBaselines } from "./la_baselines.ts";

/** Every registered benchmark; the first is the default when no dataset is on disk. */
export const BENCHMARKS: readonly BenchmarkSpec[] = [synthetic, laBaselines];

/** Look a benchmark up by id; one-line error naming the valid ids. */
export function getBenchmark(id: string): BenchmarkSpec {
  const b = BENCHMARKS.find((x) => x.id === id);
  if (!b) {
    throw new Error(
      `--benchmark: unknown benchmark '${id}' (expected one of ${
        BENCHMARKS.map((x) => x.id).join(", ")
      })`,
    );
  }
  return b;
}
