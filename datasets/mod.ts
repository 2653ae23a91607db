/**
 * The dataset registry: one import and one list entry per dataset file.
 * @module
 */
import type { DatasetDefinition } from "./types.ts";

/** Every registered dataset. */
export const DATASETS: readonly DatasetDefinition[] = [];

/** Look a dataset up by id; throws one line naming the valid ids. */
export function getDataset(id: string): DatasetDefinition {
  const d = DATASETS.find((x) => x.id === id);
  if (!d) {
    throw new Error(
      `unknown dataset '${id}' (expected one of ${DATASETS.map((x) => x.id).join(", ")})`,
    );
  }
  return d;
}
