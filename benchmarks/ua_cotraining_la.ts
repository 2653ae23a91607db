/**
 * Uncertainty-Aware Deep Co-training (Zheng et al., arXiv 2111.11629) on LA at 8 and 16
 * labeled scans, beside the supervised V-Net, MT, UA-MT and DTC baselines, under the shared
 * UA-MT/DTC protocol (UA-MT `train.list`/`test.list` 80/20 split, batch 2+2, SGD 0.01, 6000
 * iterations; DTC `code/test_LA.py`: stride 18/4, largest connected component, voxel units). The
 * method is RECONSTRUCTED from the abstract (methods/ua_cotraining.ts): the paper's datasets and
 * tables are not recoverable, so there are no reported numbers in this table.
 * @module
 */
import { LA_COLUMNS, LA_PROTOCOL } from "./harness/spec.ts";
import type { BenchmarkSpec } from "./harness/spec.ts";
import { LA_BASELINE_ROWS } from "./la_baselines.ts";

/** LA benchmark of the reconstructed UA deep co-training against the LA baselines. */
export const uaCotrainingLa: BenchmarkSpec = {
  id: "ua_cotraining_la",
  title: "LA: Uncertainty-Aware Deep Co-training (reconstructed) vs baselines, 8 and 16 labeled",
  ...LA_PROTOCOL,
  labeled: [8, 16],
  methods: [
    ...LA_BASELINE_ROWS,
    { method: "ua-cotraining", label: "UA Deep Co-training (reconstructed)" },
  ],
  table: {
    caption:
      "LA: Uncertainty-Aware Deep Co-training (reconstructed from the abstract; Dice, Jaccard, ASD, 95HD)",
    columns: LA_COLUMNS,
    proposed: "ua-cotraining",
    reported: [],
    reportedSource:
      "n/a (arXiv 2111.11629: only the abstract is available; its datasets and tables are unknown)",
  },
};
