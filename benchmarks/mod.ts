/**
 * The benchmark registry: one import and one list entry per paper-table file.
 * @module
 */
import type { BenchmarkSpec } from "./harness/spec.ts";
import { synthetic } from "./synthetic.ts";
import { laBaselines } from "./la_baselines.ts";
import { uaCotrainingLa } from "./ua_cotraining_la.ts";
import { masslTable1Brats18 } from "./massl_table1_brats18.ts";
import { masslTable2Wmh17 } from "./massl_table2_wmh17.ts";
import { ugMclTable3La } from "./ug_mcl_table3_la.ts";
import { ugMclTable4Brats19 } from "./ug_mcl_table4_brats19.ts";
import { ugMclTable1AblationLa } from "./ug_mcl_table1_ablation_la.ts";
import { ugMclTable2BetaLa } from "./ug_mcl_table2_beta_la.ts";
import { ahuMultiNetLa } from "./ahu_multinet_la.ts";
import { ahuMultiNetLits } from "./ahu_multinet_lits.ts";

/** Every registered benchmark; the first is the default when no dataset is on disk. */
export const BENCHMARKS: readonly BenchmarkSpec[] = [
  synthetic,
  laBaselines,
  uaCotrainingLa,
  masslTable1Brats18,
  masslTable2Wmh17,
  ugMclTable3La,
  ugMclTable4Brats19,
  ugMclTable1AblationLa,
  ugMclTable2BetaLa,
  ahuMultiNetLa,
  ahuMultiNetLits,
];

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
