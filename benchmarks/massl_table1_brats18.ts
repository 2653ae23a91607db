/**
 * MASSL Table 1 (Chen et al., MICCAI 2019, arXiv 1907.12303): BraTS 2018 HGG, FLAIR only,
 * binary whole tumour, 20 (100) / 50 (70) / 120 (120) labeled (unlabeled) scans, Dice averaged
 * over 5 Monte-Carlo cross-validation folds (paper Sec. 3 and Table 1; schedule from the official
 * code ShuaiChenBIGR/MASSL-segmentation-framework `Network_training_SSL_epoch_attention_BraTS18.py`,
 * `Sequence_BraTS18_epoch_attention.py`).
 *
 * Folds are dataset SPLITS ("fold1".."fold5" of `datasets/brats.ts` `brats18`), declared as
 * `dataset.folds`: every row and setting runs once per fold (seed 1; the fold itself is what the
 * code's data seed chose), and each table cell is the mean ± std over the five folds, as the
 * paper's "averaged over all cross-validations".
 * In the "120 (120)" column the runner gives no unlabeled images (the split has 120 training
 * scans) and the MASSL-family methods reconstruct the labeled images instead, which is the
 * paper's "all labeled images are also used as unlabeled images"; the CNN uses labeled only.
 *
 * Protocol (official code, [V] unless marked): batch 1 labeled + 1 unlabeled per iteration,
 * patch 32x128x128 (z, y, x) = [128, 128, 32] in our (x, y, z) order; sliding-window evaluation
 * with centred 50 % overlapping windows, mean of sigmoid outputs, threshold 0.5, no
 * post-processing. Iterations: the code trains 252 / 152 / 52 epochs of min(L, U) iterations
 * (5040 / 7600 / 6240); one value per spec is allowed, 6000 is used for every setting [I]. The
 * code keeps the best-validation-Dice checkpoint, validating every 20 epochs (400 / 1000 / 2400
 * iterations); here best-val every 500 iterations [I].
 * @module
 */
import type {
  BenchmarkSpec,
  EvalProtocol,
  MethodEntry,
  ReportedRow,
  TableColumn,
} from "./harness/spec.ts";

/** The MASSL sliding-window protocol (`module/eval_attention_BraTS_slidingwindow.py`). */
export const MASSL_EVAL: EvalProtocol = {
  window: "massl",
  patch: [128, 128, 32],
  strideXY: 64,
  strideZ: 16,
  gaussian: false,
  lcc: false,
  units: "voxel",
  emptyPolicy: "reference-code",
  metrics: ["dice"],
};

/** The paper's single column: Dice as a fraction with 4 decimals. */
export const MASSL_COLUMNS: TableColumn[] = [
  { metric: "dice", header: "Dice", scale: 1, decimals: 4, higherIsBetter: true },
];

/** The nine rows of Tables 1 and 2, in the paper's order and labels. */
export const MASSL_ROWS: MethodEntry[] = [
  { key: "cnn", method: "massl-cnn", label: "CNN", labeledOnly: true },
  {
    key: "pretrain-dec",
    method: "massl-pretrain",
    label: "Pretrain(Dec)",
    overrides: { finetune: "dec" },
  },
  {
    key: "pretrain-cnn",
    method: "massl-pretrain",
    label: "Pretrain(CNN)",
    overrides: { finetune: "cnn" },
  },
  {
    key: "mssl-a0.7",
    method: "mssl",
    label: "MSSL(α=0.7)",
    overrides: { strategy: "joint", alpha: 0.7 },
  },
  {
    key: "mssl-a0.9",
    method: "mssl",
    label: "MSSL(α=0.9)",
    overrides: { strategy: "joint", alpha: 0.9 },
  },
  {
    key: "mssl-alter",
    method: "mssl",
    label: "MSSL(alter)",
    overrides: { strategy: "alternating" },
  },
  {
    key: "massl-a0.7",
    method: "massl",
    label: "MASSL(α=0.7)",
    overrides: { strategy: "joint", alpha: 0.7 },
  },
  {
    key: "massl-a0.9",
    method: "massl",
    label: "MASSL(α=0.9)",
    overrides: { strategy: "joint", alpha: 0.9 },
  },
  {
    key: "massl-alter",
    method: "massl",
    label: "MASSL(alter)",
    overrides: { strategy: "alternating" },
  },
];

/**
 * Paper rows as `[rowKey, dice per setting, "*" marks per setting]`, expanded into
 * {@link ReportedRow}s for the given (labeled, unlabeled) settings.
 */
export function masslReported(
  settings: [number, number][],
  rows: [string, number[], string[]][],
): ReportedRow[] {
  const out: ReportedRow[] = [];
  for (const [key, dice, marks] of rows) {
    settings.forEach(([labeled, unlabeled], i) => {
      const r: ReportedRow = { key, labeled, unlabeled, values: { dice: dice[i]! } };
      if (marks[i]) r.marks = { dice: marks[i] };
      out.push(r);
    });
  }
  return out;
}

/** Table 1 verbatim (arXiv 1907.12303; "*": significantly better than CNN, p < 0.05). */
export const MASSL_TABLE1_REPORTED: ReportedRow[] = masslReported(
  [[20, 100], [50, 70], [120, 120]],
  [
    ["cnn", [0.6939, 0.7054, 0.7342], ["", "", ""]],
    ["pretrain-dec", [0.6948, 0.6886, 0.7162], ["", "", ""]],
    ["pretrain-cnn", [0.7125, 0.7167, 0.7530], ["", "", ""]],
    ["mssl-a0.7", [0.6140, 0.7433, 0.7310], ["", "*", ""]],
    ["mssl-a0.9", [0.6297, 0.7466, 0.7568], ["", "*", ""]],
    ["mssl-alter", [0.7261, 0.7462, 0.7461], ["*", "", ""]],
    ["massl-a0.7", [0.6096, 0.7412, 0.7589], ["", "*", ""]],
    ["massl-a0.9", [0.6168, 0.7159, 0.7660], ["", "", "*"]],
    ["massl-alter", [0.7553, 0.7710, 0.7702], ["*", "*", "*"]],
  ],
);

/** The five Monte-Carlo folds. */
export const MASSL_FOLDS = [1, 2, 3, 4, 5] as const;

/**
 * The schedule and protocol both MASSL tables share: the nine rows, one seed per fold, 6000
 * iterations of batch 1+1 at 128x128x32, MASSL sliding window, best-val every 500 iterations.
 */
export const MASSL_PROTOCOL: Pick<
  BenchmarkSpec,
  "methods" | "seeds" | "iterations" | "batch" | "patch" | "eval" | "selection" | "checkpointEvery"
> = {
  methods: MASSL_ROWS,
  seeds: [1],
  iterations: 6000,
  batch: { labeled: 1, unlabeled: 1 },
  patch: [128, 128, 32],
  eval: MASSL_EVAL,
  selection: { kind: "best-val", every: 500 },
  checkpointEvery: 500,
};

/** Table 1: every row x setting on each of the 5 folds; table cells are means over folds. */
export const masslTable1Brats18: BenchmarkSpec = {
  id: "massl_table1_brats18",
  title: "MASSL Table 1: BraTS 2018 HGG (FLAIR, whole tumour), 5 Monte-Carlo folds",
  dataset: { id: "brats18", folds: MASSL_FOLDS.map((k) => `fold${k}`) },
  labeled: [20, 50, 120],
  ...MASSL_PROTOCOL,
  table: {
    caption: "Table 1: BraTS18 results. Dice similarity coefficient, averaged over all " +
      "cross-validations. *: significantly better than CNN (p<0.05).",
    columns: MASSL_COLUMNS,
    proposed: "massl-alter",
    reported: MASSL_TABLE1_REPORTED,
    reportedSource: "Chen et al., MICCAI 2019 (arXiv 1907.12303) Table 1, mean of 5 folds; " +
      "the significantly-worse dagger marks and the Greek letter were lost in the seed text copy",
  },
};
