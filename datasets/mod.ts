/**
 * The dataset registry: one import and one list entry per dataset file.
 * @module
 */
import { brats18, brats19 } from "./brats.ts";
import { la } from "./la.ts";
import { lits } from "./lits.ts";
import { synthetic } from "./synthetic.ts";
import type { DatasetDefinition } from "./types.ts";
import { wmh } from "./wmh.ts";

/** Every registered dataset. */
export const DATASETS: readonly DatasetDefinition[] = [la, brats19, brats18, wmh, lits, synthetic];

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
