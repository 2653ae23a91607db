/**
 * Volumes and the Dataset contract. Volumes are flat typed arrays in C order over
 * (x, y, z[, c]), the axis order of the UA-MT h5 files, which maps to tfjs NDHWC as
 * D,H,W = x,y,z with channels last.
 * @module
 */

/** A 3-D image, possibly multi-channel (channels last). */
export interface ImageVolume {
  /** Voxel values, C order over [x, y, z, channel]. */
  data: Float32Array;
  /** [x, y, z]. */
  shape: [number, number, number];
  /** Channels (1 for single-modality). */
  channels: number;
  /** Voxel size in mm along x, y, z ([1,1,1] when unknown). */
  spacing: [number, number, number];
}

/** A 3-D label map of class indices, C order over [x, y, z]. */
export interface LabelVolume {
  data: Uint8Array;
  shape: [number, number, number];
  spacing: [number, number, number];
}

/** One case: an image and its label on the same grid. */
export interface Case {
  id: string;
  image: ImageVolume;
  label: LabelVolume;
}

/** A named split: which case ids train (labeled first) and which test. */
export interface Split {
  /** Split name, e.g. "ua-mt" or "fold1". */
  name: string;
  /** Training case ids; the first L are the labeled ones for L labeled. */
  train: string[];
  /** Validation ids (empty when the protocol has none). */
  val: string[];
  /** Test ids. */
  test: string[];
  /** Where the split comes from (file, paper, code). */
  source: string;
  /** SHA-256 of the split's canonical JSON, recorded with every run. */
  hash: string;
}

/** One line per problem found by an integrity check (empty = healthy). */
export type IntegrityReport = string[];

/** Hears each case a data check read: its id and the bytes decoded (0 when it did not read). */
export type CheckSink = (caseId: string, bytes: number) => void;

/** A dataset module: where its cases live and how to read them as the reference code does. */
export interface Dataset {
  /** Registry id, e.g. "la", "brats19", "synthetic". */
  id: string;
  /** Human title, e.g. "2018 Atrial Segmentation Challenge (LA)". */
  title: string;
  /** Modality names of the image channels, e.g. ["LGE-MRI"]. */
  modalities: string[];
  /** Classes including background. */
  nClasses: number;
  /**
   * A label value that is neither background nor a class and must be ignored by losses and
   * metrics (WMH: 2 = "other pathology"). Absent when every label value is a class index.
   */
  ignoreLabel?: number;
  /** Splits by name (the first is the default). */
  splits(): Promise<Split[]>;
  /** All case ids available. */
  caseIds(): Promise<string[]>;
  /**
   * Read one case, preprocessed as the reference code does, and verify it with the checks of
   * {@link Dataset.check} (datasets/common.ts `verifiedCase`). A case that does not read or
   * fails a check throws ONE line naming the file: `<file>: <what is wrong> (expected ...)`.
   */
  load(caseId: string): Promise<Case>;
  /**
   * Check the data root: read every case on disk (its data, one case at a time) and run the
   * same checks as {@link Dataset.load} (shapes, finite and non-constant image, plausible
   * intensities where defined, label values, foreground), plus missing split cases and
   * dataset-level facts. `onCase` hears each case read (the cost line of `deno task data`).
   */
  check(onCase?: CheckSink): Promise<IntegrityReport>;
}

/** A registered dataset: how to open it at a root, and where users get the data. */
export interface DatasetDefinition {
  /** Registry id, e.g. "la". */
  id: string;
  title: string;
  /** Where to obtain the data and the expected on-disk layout (printed when the root is missing). */
  obtain: string;
  /** Open the dataset at `root` (ignored by generated datasets). Throws one line if unusable. */
  open(root: string, options?: Record<string, number | string | boolean>): Dataset;
}
