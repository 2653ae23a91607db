/**
 * UG-MCL Table 2 (arXiv 2112.02508v2): the balance weight beta of Eq. 4 between the seg and
 * SDF intra-task consistency terms, beta in {0, 0.25, 0.5, 0.75, 1}, LA 16 labeled, full method
 * otherwise (paper mode of methods/ug_mcl.ts). Protocol as Table 3.
 * @module
 */
import { LA_COLUMNS, LA_PROTOCOL } from "./harness/spec.ts";
import type { BenchmarkSpec } from "./harness/spec.ts";
import { ugMclRow as row } from "./ug_mcl_table3_la.ts";

const BETAS = [0, 0.25, 0.5, 0.75, 1];

/** UG-MCL Table 2 (beta sweep) on LA. */
export const ugMclTable2BetaLa: BenchmarkSpec = {
  id: "ug_mcl_table2_beta_la",
  title: "UG-MCL Table 2: intra-task balance weight beta on LA, 16 labeled",
  ...LA_PROTOCOL,
  labeled: [16],
  methods: BETAS.map((beta) => ({
    key: `beta-${beta}`,
    method: "ug-mcl",
    label: `β = ${beta}`,
    overrides: { beta },
  })),
  table: {
    caption:
      "UG-MCL Table 2: Experimental results of different balance weight β of segmentation task and regression task for self-ensembling on LA dataset",
    columns: LA_COLUMNS,
    proposed: "beta-0.75",
    reported: [
      row("beta-0", 16, 64, [89.60, 81.30, 2.51, 8.66]),
      row("beta-0.25", 16, 64, [89.86, 81.75, 2.22, 7.18]),
      row("beta-0.5", 16, 64, [90.07, 82.03, 2.17, 7.57]),
      row("beta-0.75", 16, 64, [90.16, 82.18, 1.98, 6.50]),
      row("beta-1", 16, 64, [89.99, 81.93, 2.74, 7.95]),
    ],
    reportedSource: "UG-MCL arXiv 2112.02508v2 Table 2 (verbatim)",
  },
};
