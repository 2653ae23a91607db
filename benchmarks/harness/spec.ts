/**
 * Benchmarks as typed data (benchopt's model: a benchmark = objective + datasets + solvers,
 * declared, not scripted). One file per paper table under `benchmarks/` exports a
 * {@link BenchmarkSpec}; the runner expands it into runs and the table builder prints it in
 * the paper's own format beside the paper's reported numbers.
 * @module
 */
import type { HyperValue } from "../../methods/types.ts";
import type { EmptyPolicy } from "./metrics.ts";

/** Per-case metrics the evaluator can compute. */
export type MetricName =
  | "dice"
  | "jaccard"
  | "hd95"
  | "asd"
  | "assd"
  | "h95"
  | "avd"
  | "lesionRecall"
  | "lesionF1";

/** How an empty prediction or reference is scored (recorded with every result). */
export type EmptyMaskPolicy = EmptyPolicy;

/** The evaluation protocol of a paper. */
export interface EvalProtocol {
  /** Sliding-window semantics: UA-MT's strided windows or MASSL's centred 50 % overlap. */
  window: "ua-mt" | "massl";
  /** Window size [x, y, z]. */
  patch: [number, number, number];
  /** UA-MT strides (ignored by "massl"). */
  strideXY: number;
  strideZ: number;
  /** Gaussian importance weighting of window contributions (nnU-Net style). */
  gaussian: boolean;
  /** Keep only the largest 26-connected component before scoring (DTC protocol). */
  lcc: boolean;
  /** Distances in voxels (as the papers computed them) or millimetres (voxel spacing). */
  units: "voxel" | "mm";
  emptyPolicy: EmptyMaskPolicy;
  /** Metrics to compute. */
  metrics: MetricName[];
}

/** Which checkpoint is scored. `best-val` needs a validation split; never the test set. */
export type SelectionRule = { kind: "last" } | { kind: "best-val"; every: number };

/** A method row of a benchmark: a registered method with hyper-parameter overrides. */
export interface MethodEntry {
  /** Row key, unique in the benchmark (defaults to `method`). */
  key?: string;
  /** Registered method id. */
  method: string;
  /** Row label as the paper prints it (defaults to the method's title). */
  label?: string;
  /** Hyper-parameter overrides for this row. */
  overrides?: Record<string, HyperValue>;
  /** Train on labeled cases only (the "supervised baseline" rows use no unlabeled data). */
  labeledOnly?: boolean;
  /** A method from `--method-file` (outside the registry): marked in tables. */
  external?: boolean;
  /**
   * A registered method that is not a row of the benchmark's paper table, added from the
   * command line (`--methods supervised,my-method`): marked "(added)" in tables.
   */
  added?: boolean;
  /** Labeled settings this row runs at (default: all of the benchmark's). */
  labeled?: number[];
  /**
   * Training patch [x, y, z] for this row (default: the benchmark's), e.g. a 5-level encoder
   * that needs a larger patch than the V-Net rows to keep a bottleneck of more than 1 voxel.
   */
  patch?: [number, number, number];
}

/** A column of the paper's table. */
export interface TableColumn {
  metric: MetricName;
  /** Header as the paper prints it, e.g. "Dice[%] ↑". */
  header: string;
  /** Multiply the stored value by this before printing (100 for percentages). */
  scale: number;
  decimals: number;
  /** Whether higher is better (for the gap's sign and highlighting). */
  higherIsBetter: boolean;
}

/** A number the paper reported, keyed by row key and labeled setting. */
export interface ReportedRow {
  /** Row key of our matching row, or a paper-only label (e.g. "TCSE [37]"). */
  key: string;
  labeled: number;
  /** Unlabeled count as the paper prints it. */
  unlabeled?: number;
  values: Partial<Record<MetricName, number>>;
  /** p-value marks the paper printed (e.g. "**"), by metric. */
  marks?: Partial<Record<MetricName, string>>;
}

/** The table layout and the paper's numbers. */
export interface TableSpec {
  /** Caption, e.g. "UG-MCL Table 3: LA, 16 labeled". */
  caption: string;
  columns: TableColumn[];
  /** Row key of the proposed method (paired t-tests are against it). */
  proposed?: string;
  reported: ReportedRow[];
  /** Source of the reported numbers (paper, table, version). */
  reportedSource: string;
}

/** A benchmark: one paper table, declared. */
export interface BenchmarkSpec {
  id: string;
  title: string;
  /**
   * Registered dataset id and open() options; `split` names the split to use, or `folds`
   * several (Monte-Carlo cross-validation: every row x setting x seed runs on each fold, and
   * table cells aggregate over folds and seeds, as MASSL's "mean of 5 folds").
   */
  dataset: { id: string; options?: Record<string, HyperValue>; split?: string; folds?: string[] };
  /** Labeled-case counts to run. */
  labeled: number[];
  methods: MethodEntry[];
  /** Base seeds (one run per seed; per-purpose seeds are derived from the run identity). */
  seeds: number[];
  iterations: number;
  /** Batch composition (labeled + unlabeled per step). */
  batch: { labeled: number; unlabeled: number };
  /** Training patch [x, y, z]. */
  patch: [number, number, number];
  /** Hyper-parameter overrides applied to every method that has them (e.g. nFilters). */
  common?: Record<string, HyperValue>;
  eval: EvalProtocol;
  selection: SelectionRule;
  /** Save a resumable checkpoint every N iterations. */
  checkpointEvery: number;
  table: TableSpec;
}

/** The standard Dice/Jaccard/ASD/95HD columns of UG-MCL, DTC and UA-MT tables (that order). */
export const LA_COLUMNS: TableColumn[] = [
  { metric: "dice", header: "Dice[%] ↑", scale: 100, decimals: 2, higherIsBetter: true },
  { metric: "jaccard", header: "Jaccard[%] ↑", scale: 100, decimals: 2, higherIsBetter: true },
  { metric: "asd", header: "ASD[voxel] ↓", scale: 1, decimals: 2, higherIsBetter: false },
  { metric: "hd95", header: "95HD[voxel] ↓", scale: 1, decimals: 2, higherIsBetter: false },
];

/** The UA-MT/DTC LA evaluation protocol (stride 18/4, voxel units, empty prediction = 0). */
export const LA_EVAL: EvalProtocol = {
  window: "ua-mt",
  patch: [112, 112, 80],
  strideXY: 18,
  strideZ: 4,
  gaussian: false,
  lcc: true,
  units: "voxel",
  emptyPolicy: "reference-code",
  metrics: ["dice", "jaccard", "hd95", "asd"],
};

/**
 * The shared UA-MT/DTC LA protocol (UA-MT `train_LA_meanteacher_certainty_unlabel.py`, DTC
 * `train_la_dtc.py` and `test_LA.py`): the UA-MT split, 3 seeds, 6000
 * iterations of batch 2+2 at 112x112x80, the DTC test protocol, last-iteration selection.
 * LA benchmark files spread it and add their labeled settings, rows and table.
 */
export const LA_PROTOCOL: Pick<
  BenchmarkSpec,
  "dataset" | "seeds" | "iterations" | "batch" | "patch" | "eval" | "selection" | "checkpointEvery"
> = {
  dataset: { id: "la", split: "ua-mt" },
  seeds: [1337, 1338, 1339],
  iterations: 6000,
  batch: { labeled: 2, unlabeled: 2 },
  patch: [112, 112, 80],
  eval: LA_EVAL,
  selection: { kind: "last" },
  checkpointEvery: 250,
};
