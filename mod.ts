/**
 * semiseg-bench: reproducible benchmarks for semi-supervised 3D medical image segmentation.
 *
 * The public API: the method and dataset contracts and registries, the seeded RNG, backend
 * selection, and the harness pieces (benchmark specs, grid expansion, results store, tables).
 *
 * @example Derive per-purpose seeds and list registered methods
 * ```ts
 * import { deriveSeed, METHODS, Rng } from "./mod.ts";
 *
 * const seed = deriveSeed(1337, "la", 16, "sampler");
 * const rng = new Rng(seed);
 * console.log(seed, rng.uniform(), METHODS.map((m) => m.id));
 * ```
 * @module
 */
export * from "./methods/types.ts";
export { getMethod, METHODS } from "./methods/mod.ts";
export * from "./datasets/types.ts";
export { DATASETS, getDataset } from "./datasets/mod.ts";
export { deriveSeed, Rng, type RngState } from "./methods/nn/rng.ts";
export {
  BACKEND_CHOICES,
  type BackendChoice,
  initBackend,
  type Provenance,
} from "./methods/nn/backend.ts";
export * from "./benchmarks/harness/spec.ts";
export { expandGrid, type PlannedRun } from "./benchmarks/harness/plan.ts";
export { ResultStore, type RunRecord } from "./benchmarks/harness/store.ts";
export { buildTable, tableCsv, tableMarkdown } from "./benchmarks/harness/tables.ts";
export { pairedTTest } from "./benchmarks/harness/stats.ts";
