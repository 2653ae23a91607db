/**
 * The default benchmark: every registered method on the deterministic synthetic dataset, so
 * `deno task bench` with no data on disk shows the whole pipeline (train, sliding-window
 * evaluation, table) in under 5 minutes on a 2-core CPU. The task is built so that unlabeled
 * data can matter: 2 labeled of 16 training cases, whose appearance (distractor brightness,
 * background, noise, blur) varies per case (`appearance`, datasets/synthetic.ts), and the
 * supervised row also runs with all 16 labeled as the upper bound the semi-supervised rows
 * aim at. Every row: 2 seeds. Its numbers measure the code, not the papers: there are no
 * reported values, and 60 iterations are far from the papers' 6000.
 * @module
 */
import { METHODS } from "../methods/mod.ts";
import type { BenchmarkSpec } from "./harness/spec.ts";

/** Labeled training cases of the semi-supervised setting (of {@link SYNTHETIC_TRAIN}). */
export const SYNTHETIC_LABELED = 2;
/** Training cases (the supervised upper bound labels all of them). */
export const SYNTHETIC_TRAIN = 16;

/** Synthetic default benchmark (all registered methods). */
export const synthetic: BenchmarkSpec = {
  id: "synthetic",
  title: "Synthetic benchmark: every registered method at 2 of 16 labeled cases",
  dataset: {
    id: "synthetic",
    options: { n: 22, nTrain: SYNTHETIC_TRAIN, size: 32, appearance: 0.6 },
  },
  labeled: [SYNTHETIC_LABELED, SYNTHETIC_TRAIN],
  // Supervised-only rows train on the labeled cases alone, as in the papers' tables; the
  // supervised row also runs with every training case labeled (the upper bound). A row whose
  // network needs a larger patch than the benchmark's (MethodMeta.minTrainPatch) gets it.
  methods: METHODS.map((m) => {
    const edge = m.meta.minTrainPatch ?? 0;
    const patch: [number, number, number] = [edge, edge, edge];
    return {
      method: m.id,
      // The id beside the paper's row name: "CNN" and "Pretrain" are MASSL's baselines.
      label: m.meta.title.toLowerCase().includes(m.id) ? m.meta.title : `${m.meta.title} (${m.id})`,
      labeledOnly: m.meta.usesUnlabeled === false,
      labeled: m.id === "supervised" ? [SYNTHETIC_LABELED, SYNTHETIC_TRAIN] : [SYNTHETIC_LABELED],
      ...(edge > 32 ? { patch } : {}),
    };
  }),
  seeds: [1, 2],
  iterations: 60,
  batch: { labeled: 2, unlabeled: 2 },
  // 32^3, the whole synthetic case: every network keeps a bottleneck of 2x2x2 voxels. At 16^3
  // the V-Net's 4 downsamplings left 1 voxel, whose BatchNorm sees 2-4 values: seeds collapsed
  // to 0 % or reached 90 % at random, and any change in float summation order flipped them
  // (measured); MASSL's InstanceNorm zeroed it outright (MSSL == MASSL).
  patch: [32, 32, 32],
  // Tiny networks, a short consistency ramp, and 2 MC passes where a method estimates
  // uncertainty (the papers use 8): the budget is minutes on a 2-core CPU for every method.
  common: {
    nFilters: 4,
    // SGD at the papers' 0.01 does not move a 4-filter V-Net in tens of iterations (every
    // V-Net method stays at ~7 % Dice, the foreground fraction); 0.05 does (measured).
    lr: 0.05,
    lrStep: 1_000_000,
    consistencyRampup: 2,
    rampupEpochLength: 10,
    mcPasses: 2,
    mcRepeats: 1,
    pretrainIterations: 15,
  },
  eval: {
    // One 32^3 window covers a whole synthetic case: the network is fully convolutional.
    window: "ua-mt",
    patch: [32, 32, 32],
    strideXY: 16,
    strideZ: 16,
    gaussian: false,
    lcc: false,
    units: "voxel",
    emptyPolicy: "reference-code",
    metrics: ["dice", "jaccard", "hd95", "asd"],
  },
  selection: { kind: "last" },
  checkpointEvery: 20,
  table: {
    caption:
      "Synthetic benchmark: 2 of 16 training cases labeled (supervised also with all 16); Dice, Jaccard, ASD, 95HD on 6 test cases",
    columns: [
      { metric: "dice", header: "Dice[%] ↑", scale: 100, decimals: 2, higherIsBetter: true },
      { metric: "jaccard", header: "Jaccard[%] ↑", scale: 100, decimals: 2, higherIsBetter: true },
      { metric: "asd", header: "ASD[voxel] ↓", scale: 1, decimals: 2, higherIsBetter: false },
      { metric: "hd95", header: "95HD[voxel] ↓", scale: 1, decimals: 2, higherIsBetter: false },
    ],
    proposed: "supervised",
    reported: [],
    reportedSource: "none (synthetic data)",
  },
};
