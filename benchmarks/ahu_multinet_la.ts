/**
 * AHU-MultiNet (Liu et al., Computers in Biology and Medicine 2022) on LA, 8 and 16 labeled,
 * with the shared UA-MT/DTC protocol (UA-MT `train_LA_meanteacher_certainty_unlabel.py`, DTC
 * `train_la_dtc.py`, `test_LA.py`): 6000 iterations, batch 2 + 2,
 * patch 112x112x80, SGD 0.01 x0.1 every 2500, DTC's test (stride 18/4, LCC, voxel units).
 *
 * The method is RECONSTRUCTED from the abstract (methods/ahu_multinet.ts); the paper's tables
 * could not be retrieved, so the paper column is n/a. Rows: supervised (labeled only), UA-MT,
 * DTC (the method it extends), AHU-MultiNet with Kendall weighting (the proposed row), the
 * simplified `exp(-s) L + s` weighting, and fixed unit weights (the manual-weighting ablation
 * the abstract argues against).
 * @module
 */
import { LA_COLUMNS, LA_PROTOCOL } from "./harness/spec.ts";
import type { BenchmarkSpec, MethodEntry } from "./harness/spec.ts";

/** The AHU-MultiNet rows shared by the LA and LiTS benchmarks. */
export const AHU_ROWS: MethodEntry[] = [
  { method: "supervised", label: "Supervised baseline (V-Net)", labeledOnly: true },
  { method: "ua-mt", label: "UA-MT" },
  { method: "dtc", label: "DTC" },
  { method: "ahu-multinet", label: "AHU-MultiNet (reconstructed, Kendall weighting)" },
  {
    key: "ahu-multinet-simplified",
    method: "ahu-multinet",
    label: "AHU-MultiNet, exp(-s) L + s weighting",
    overrides: { weighting: "simplified" },
  },
  {
    key: "ahu-multinet-fixed",
    method: "ahu-multinet",
    label: "AHU-MultiNet, fixed unit weights",
    overrides: { weighting: "none" },
  },
];

/** AHU-MultiNet on LA. */
export const ahuMultiNetLa: BenchmarkSpec = {
  id: "ahu_multinet_la",
  title: "AHU-MultiNet (reconstructed): LA, 8 and 16 labeled (DTC protocol)",
  ...LA_PROTOCOL,
  labeled: [8, 16],
  methods: AHU_ROWS,
  table: {
    caption: "AHU-MultiNet (reconstructed from the abstract) on LA: Dice, Jaccard, ASD, 95HD",
    columns: LA_COLUMNS,
    proposed: "ahu-multinet",
    reported: [],
    reportedSource:
      "n/a (AHU-MultiNet paper not accessible; no numbers reported here, fill in from the article)",
  },
};
