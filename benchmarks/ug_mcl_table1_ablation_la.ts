/**
 * UG-MCL Table 1 (arXiv 2112.02508v2): ablation of the mutual consistency framework on LA,
 * 16 labeled. Rows (1)-(6) are UG-MCL with the loss switches of methods/ug_mcl.ts:
 * (1) L_seg and (2) L_seg + L_dis are supervised V-Nets trained on the labeled scans only (as
 * the paper's text says); (3) L_seg + L_itc with the regression branch removed (beta = 1, so
 * L_itc is the seg term only); (4) + L_dis; (5) L_seg + L_dis + L_ctc (the paper's numbers equal
 * DTC's); (6) the full method. The check-mark layout is reconstructed from the flattened PDF
 * text of arXiv 2112.02508v2 Table 1. Protocol as Table 3.
 * @module
 */
import { LA_COLUMNS, LA_PROTOCOL } from "./harness/spec.ts";
import type { BenchmarkSpec, MethodEntry } from "./harness/spec.ts";
import { ugMclRow as row } from "./ug_mcl_table3_la.ts";

const ablation = (
  n: number,
  label: string,
  useLdis: boolean,
  useLitc: boolean,
  useLctc: boolean,
  extra: Partial<MethodEntry> = {},
): MethodEntry => ({
  key: `row-${n}`,
  method: "ug-mcl",
  label: `(${n}) ${label}`,
  overrides: { useLdis, useLitc, useLctc, ...(extra.overrides ?? {}) },
  ...(extra.labeledOnly ? { labeledOnly: true } : {}),
});

/** UG-MCL Table 1 (ablation) on LA. */
export const ugMclTable1AblationLa: BenchmarkSpec = {
  id: "ug_mcl_table1_ablation_la",
  title: "UG-MCL Table 1: ablation of L_dis / L_itc / L_ctc on LA, 16 labeled",
  ...LA_PROTOCOL,
  labeled: [16],
  methods: [
    ablation(1, "L_seg", false, false, false, { labeledOnly: true }),
    ablation(2, "L_seg + L_dis", true, false, false, { labeledOnly: true }),
    ablation(3, "L_seg + L_itc", false, true, false, { overrides: { beta: 1 } }),
    ablation(4, "L_seg + L_dis + L_itc", true, true, false),
    ablation(5, "L_seg + L_dis + L_ctc", true, false, true),
    ablation(6, "L_seg + L_dis + L_itc + L_ctc", true, true, true),
  ],
  table: {
    caption:
      "UG-MCL Table 1: Ablation analysis of our mutual consistency learning framework on LA dataset",
    columns: LA_COLUMNS,
    proposed: "row-6",
    reported: [
      row("row-1", 16, 0, [86.03, 76.06, 3.51, 14.26]),
      row("row-2", 16, 0, [87.88, 78.77, 2.81, 10.25]),
      row("row-3", 16, 64, [88.68, 79.90, 2.71, 9.07]),
      row("row-4", 16, 64, [89.15, 80.58, 2.03, 8.15]),
      row("row-5", 16, 64, [89.42, 80.89, 2.10, 7.32]),
      row("row-6", 16, 64, [90.16, 82.18, 1.98, 6.50]),
    ],
    reportedSource:
      "UG-MCL arXiv 2112.02508v2 Table 1 (verbatim; check-mark layout reconstructed from the PDF text)",
  },
};
