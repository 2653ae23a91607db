/**
 * AHU-MultiNet (Liu et al., Computers in Biology and Medicine 2022) on LiTS 2017. The paper's
 * LiTS protocol is unknown (only the abstract could be found; no code): everything here is a
 * documented project default [I], not the paper's — the project's 100 train / 31 test split
 * (datasets/splits/lits.json), the LIVER as a binary target (the method is binary), HU window
 * [-160, 240] + z-score, crop to the liver bounding box with a 10-voxel margin, 10 and 20
 * labeled (10 % / 20 % of the training cases), and the LA schedule and test protocol
 * (patch 112x112x80, 6000 iterations, batch 2 + 2, stride 18/4, LCC, voxel units).
 * Paper numbers: n/a. Rows as the LA benchmark.
 * @module
 */
import { LA_COLUMNS, LA_EVAL } from "./harness/spec.ts";
import type { BenchmarkSpec } from "./harness/spec.ts";
import { AHU_ROWS } from "./ahu_multinet_la.ts";

/** AHU-MultiNet on LiTS (liver, project split). */
export const ahuMultiNetLits: BenchmarkSpec = {
  id: "ahu_multinet_lits",
  title: "AHU-MultiNet (reconstructed): LiTS 2017 liver, 10 and 20 labeled (project protocol)",
  dataset: {
    id: "lits",
    split: "default",
    options: { target: "liver", crop: "liver", margin: 10, windowLow: -160, windowHigh: 240 },
  },
  labeled: [10, 20],
  methods: AHU_ROWS,
  seeds: [1337, 1338, 1339],
  iterations: 6000,
  batch: { labeled: 2, unlabeled: 2 },
  patch: [112, 112, 80],
  eval: LA_EVAL,
  selection: { kind: "last" },
  checkpointEvery: 250,
  table: {
    caption: "AHU-MultiNet (reconstructed from the abstract) on LiTS 2017 (liver)",
    columns: LA_COLUMNS,
    proposed: "ahu-multinet",
    reported: [],
    reportedSource:
      "n/a (AHU-MultiNet paper not accessible; its LiTS split, target and labeled counts are unknown)",
  },
};
