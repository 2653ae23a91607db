/**
 * MASSL Table 2 (Chen et al., MICCAI 2019, arXiv 1907.12303): WMH 2017, 60 FLAIR scans from
 * 3 sites, 30 train / 10 val / 20 test site-balanced Monte-Carlo folds, 10 (20) / 20 (10) /
 * 30 (30) labeled (unlabeled), Dice averaged over 5 folds (paper Sec. 3 and Table 2).
 *
 * Same modelling as `massl_table1_brats18.ts`: the five folds (`datasets/wmh.ts` splits
 * "fold1".."fold5") are `dataset.folds`, and cells are means over them; the "30 (30)" column reconstructs the labeled images. The
 * WMH code, preprocessing and patch size are not public: the BraTS18 protocol (patch
 * 32x128x128, batch 1 + 1, 50 % overlap windows) is assumed [I]; 6000 iterations [I].
 * @module
 */
import type { BenchmarkSpec, ReportedRow, TableColumn } from "./harness/spec.ts";
import {
  MASSL_COLUMNS,
  MASSL_EVAL,
  MASSL_FOLDS,
  MASSL_PROTOCOL,
  masslReported,
} from "./massl_table1_brats18.ts";

/**
 * The paper's Dice column, then the other metrics its evaluation code names (WMH challenge
 * names: AVD, lesion recall, lesion F1; ShuaiChenBIGR/MASSL-segmentation-framework
 * `module/evaluation_voxel.py`), which it computed but did not print: ours only, shown without a
 * paper value.
 */
export const WMH_COLUMNS: TableColumn[] = [
  ...MASSL_COLUMNS,
  { metric: "avd", header: "AVD[%]", scale: 1, decimals: 2, higherIsBetter: false },
  { metric: "lesionRecall", header: "Recall", scale: 1, decimals: 4, higherIsBetter: true },
  { metric: "lesionF1", header: "F1", scale: 1, decimals: 4, higherIsBetter: true },
];

/** Table 2 verbatim (arXiv 1907.12303; "*": significantly better than CNN, p < 0.05). */
export const MASSL_TABLE2_REPORTED: ReportedRow[] = masslReported([[10, 20], [20, 10], [30, 30]], [
  ["cnn", [0.6030, 0.6762, 0.6915], ["", "", ""]],
  ["pretrain-dec", [0.6088, 0.6252, 0.6439], ["", "", ""]],
  ["pretrain-cnn", [0.6615, 0.6779, 0.6890], ["*", "", ""]],
  ["mssl-a0.7", [0.5930, 0.6326, 0.6860], ["", "", ""]],
  ["mssl-a0.9", [0.6189, 0.6163, 0.6906], ["", "", ""]],
  ["mssl-alter", [0.6509, 0.6646, 0.6880], ["", "", ""]],
  ["massl-a0.7", [0.6074, 0.6869, 0.6900], ["", "", ""]],
  ["massl-a0.9", [0.6654, 0.6925, 0.6806], ["*", "", ""]],
  ["massl-alter", [0.6670, 0.7111, 0.7204], ["*", "", ""]],
]);

/** Table 2: every row x setting on each of the 5 folds; table cells are means over folds. */
export const masslTable2Wmh17: BenchmarkSpec = {
  id: "massl_table2_wmh17",
  title: "MASSL Table 2: WMH 2017 (FLAIR), 5 Monte-Carlo folds",
  dataset: { id: "wmh", folds: MASSL_FOLDS.map((k) => `fold${k}`) },
  labeled: [10, 20, 30],
  ...MASSL_PROTOCOL,
  eval: { ...MASSL_EVAL, metrics: ["dice", "avd", "lesionRecall", "lesionF1"] },
  table: {
    caption: "Table 2: WMH17 results. Dice similarity coefficient, averaged over all " +
      "cross-validation. *: significantly better than CNN (p<0.05).",
    columns: WMH_COLUMNS,
    proposed: "massl-alter",
    reported: MASSL_TABLE2_REPORTED,
    reportedSource: "Chen et al., MICCAI 2019 (arXiv 1907.12303) Table 2, mean of 5 folds; " +
      "the significantly-worse dagger marks and the Greek letter were lost in the seed text copy",
  },
};
