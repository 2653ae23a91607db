/**
 * UG-MCL Table 3 (Zhang et al., AIIM 2022, arXiv 2112.02508v2): LA, 16 labeled / 64 unlabeled,
 * V-Net for every method, DTC's test protocol (stride 18/4, largest connected component, voxel
 * units: DTC `code/test_LA.py`). Rows we run: supervised baseline (labeled only), MT, UA-MT,
 * DTC, UG-MCL (paper mode), and the supervised upper bound (all 80 labeled). The paper's other
 * rows (TCSE, SASS, DUWM, URPC) are printed from the paper only. Reported values
 * and the paper's p-value marks (* p < 0.05, ** p < 0.01, paired t-test vs UG-MCL) are verbatim.
 * @module
 */
import { LA_COLUMNS, LA_PROTOCOL } from "./harness/spec.ts";
import type { BenchmarkSpec, ReportedRow } from "./harness/spec.ts";

type M = ReportedRow["marks"];
const row = (
  key: string,
  labeled: number,
  unlabeled: number,
  v: [number, number, number, number],
  marks?: [string, string, string, string],
): ReportedRow => {
  const r: ReportedRow = {
    key,
    labeled,
    unlabeled,
    values: { dice: v[0], jaccard: v[1], asd: v[2], hd95: v[3] },
  };
  if (marks) {
    const m: M = {};
    if (marks[0]) m.dice = marks[0];
    if (marks[1]) m.jaccard = marks[1];
    if (marks[2]) m.asd = marks[2];
    if (marks[3]) m.hd95 = marks[3];
    r.marks = m;
  }
  return r;
};

/** Reported-row helper shared by the UG-MCL benchmarks (values in the table's column order). */
export const ugMclRow = row;

/** UG-MCL Table 3 on LA. */
export const ugMclTable3La: BenchmarkSpec = {
  id: "ug_mcl_table3_la",
  title: "UG-MCL Table 3: LA, 16 labeled / 64 unlabeled (V-Net, DTC protocol)",
  ...LA_PROTOCOL,
  labeled: [16, 80],
  methods: [
    {
      method: "supervised",
      label: "Supervised baseline",
      labeledOnly: true,
      labeled: [16],
    },
    { method: "mean-teacher", label: "MT [16]", labeled: [16] },
    { method: "ua-mt", label: "UA-MT [17]", labeled: [16] },
    { method: "dtc", label: "DTC [21]", labeled: [16] },
    { method: "entropy-min", label: "Entropy Mini [52]", labeled: [16] },
    { method: "ug-mcl", label: "UG-MCL (Ours)", labeled: [16] },
    {
      key: "supervised-upper",
      method: "supervised",
      label: "Supervised upper-bound",
      labeledOnly: true,
      labeled: [80],
    },
  ],
  table: {
    caption:
      "UG-MCL Table 3: Quantitative comparison between our methods and other semi-supervised methods on LA dataset (V-Net backbone)",
    columns: LA_COLUMNS,
    proposed: "ug-mcl",
    reported: [
      row("supervised", 16, 0, [86.03, 76.06, 3.51, 14.26], ["**", "**", "**", "**"]),
      row("TCSE [37]", 16, 64, [88.15, 79.20, 2.44, 9.57], ["**", "**", "*", "*"]),
      row("mean-teacher", 16, 64, [88.23, 79.29, 2.73, 10.64], ["**", "**", "*", "**"]),
      row("ua-mt", 16, 64, [88.88, 80.21, 2.26, 7.32], ["*", "*", "", ""]),
      row("entropy-min", 16, 64, [88.45, 79.51, 3.72, 14.14], ["*", "**", "**", "**"]),
      row("SASS [20]", 16, 64, [89.54, 81.24, 2.20, 8.24], ["", "", "", "*"]),
      row("DUWM [18]", 16, 64, [89.65, 81.35, 2.03, 7.04]),
      row("URPC [38]", 16, 64, [88.74, 79.93, 3.66, 12.73], ["*", "*", "**", "**"]),
      row("dtc", 16, 64, [89.42, 80.89, 2.10, 7.32], ["*", "*", "", ""]),
      row("ug-mcl", 16, 64, [90.16, 82.18, 1.98, 6.50]),
      row("supervised-upper", 80, 0, [91.14, 83.82, 1.52, 5.75]),
    ],
    reportedSource: "UG-MCL arXiv 2112.02508v2 Table 3 (verbatim, with its p-value marks)",
  },
};
