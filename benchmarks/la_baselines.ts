/**
 * LA baselines (UA-MT / DTC protocol): supervised V-Net, Mean Teacher, UA-MT and DTC at 8 and
 * 16 labeled scans, scored as DTC's test script does (stride 18/4, largest connected
 * component, voxel units). Paper numbers: DTC README tables (UA-MT, DTC at 8 and 16 labeled)
 * and UG-MCL Table 3 (supervised, MT at 16 labeled; arXiv 2112.02508v2), quoted verbatim.
 * @module
 */
import { LA_COLUMNS, LA_PROTOCOL } from "./harness/spec.ts";
import type { BenchmarkSpec, MethodEntry } from "./harness/spec.ts";

/** The LA baseline rows (supervised V-Net on labeled data only, MT, UA-MT, DTC). */
export const LA_BASELINE_ROWS: MethodEntry[] = [
  { method: "supervised", label: "Supervised baseline (V-Net)", labeledOnly: true },
  { method: "mean-teacher", label: "MT" },
  { method: "ua-mt", label: "UA-MT" },
  { method: "dtc", label: "DTC" },
];

/** Baseline-only LA benchmark. */
export const laBaselines: BenchmarkSpec = {
  id: "la_baselines",
  title: "LA (2018 Atrial Segmentation Challenge): baselines at 8 and 16 labeled scans",
  ...LA_PROTOCOL,
  labeled: [8, 16],
  methods: LA_BASELINE_ROWS,
  table: {
    caption: "LA: baselines (DTC protocol; Dice, Jaccard, ASD, 95HD)",
    columns: LA_COLUMNS,
    proposed: "dtc",
    reported: [
      {
        key: "supervised",
        labeled: 16,
        unlabeled: 0,
        values: { dice: 86.03, jaccard: 76.06, asd: 3.51, hd95: 14.26 },
      },
      {
        key: "mean-teacher",
        labeled: 16,
        unlabeled: 64,
        values: { dice: 88.23, jaccard: 79.29, asd: 2.73, hd95: 10.64 },
      },
      {
        key: "ua-mt",
        labeled: 16,
        unlabeled: 64,
        values: { dice: 88.88, jaccard: 80.21, asd: 2.26, hd95: 7.32 },
      },
      {
        key: "dtc",
        labeled: 16,
        unlabeled: 64,
        values: { dice: 89.42, jaccard: 80.98, asd: 2.10, hd95: 7.32 },
      },
      {
        key: "ua-mt",
        labeled: 8,
        unlabeled: 72,
        values: { dice: 84.25, jaccard: 73.48, asd: 3.36, hd95: 13.84 },
      },
      {
        key: "dtc",
        labeled: 8,
        unlabeled: 72,
        values: { dice: 87.51, jaccard: 78.17, asd: 2.36, hd95: 8.23 },
      },
    ],
    reportedSource:
      "DTC README (UA-MT, DTC; the 8-labeled DTC row is quoted from MC-Net) and UG-MCL Table 3 (supervised, MT at 16)",
  },
};
