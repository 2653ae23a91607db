/**
 * LiTS 2017 (Liver Tumor Segmentation, contrast CT): `volume-N.nii` + `segmentation-N.nii`
 * (0 background, 1 liver, 2 tumour), N = 0..130.
 *
 * No semi-supervised reference publishes a LiTS split or preprocessing, so everything is an
 * option with a committed, documented default:
 * - split: `datasets/splits/lits.json` (100 train / 31 test, seeded permutation); `splitFile` to
 *   use another split file of the same schema.
 * - `target`: "liver+tumour" (default; labels 0/1/2, 3 classes), "liver" (label >= 1, as the
 *   official liver score), "tumour" (label == 2, as SegWithDistMap).
 * - intensity: clip to the HU window [`windowLow`, `windowHigh`] (default [-160, 240], the only
 *   SSL-adjacent value, SegWithDistMap), then `norm` "zscore" (default; mean/std of the windowed
 *   volume) or "minmax" (to [0, 1]).
 * - `crop`: "none" (default) or "liver" (bounding box of label >= 1 widened by `margin`, default 10).
 * No resampling and no reorientation: NIfTI index order (x, y, z), spacing from pixdim.
 * Layout: `<root>/volume-N.nii[.gz]` and `segmentation-N.nii[.gz]`, or inside
 * `Training Batch 1/` and `Training Batch 2/`.
 * @module
 */
import {
  bbox3,
  type CaseRead,
  type CaseRules,
  checkCases,
  crop3,
  firstFile,
  image1,
  isDir,
  label3,
  listFiles,
  meanStd,
  readImageLabelPair,
  verifiedCase,
} from "./common.ts";
import { readSplitFile, type SplitFile, splitsFromFile, validateSplitFile } from "./splits.ts";
import litsJson from "./splits/lits.json" with { type: "json" };
import type {
  Case,
  CheckSink,
  Dataset,
  DatasetDefinition,
  IntegrityReport,
  Split,
} from "./types.ts";

const LITS: SplitFile = validateSplitFile("datasets/splits/lits.json", litsJson);

type Target = "liver+tumour" | "liver" | "tumour";

class LitsDataset implements Dataset {
  readonly id = "lits";
  readonly title = "LiTS 2017 (CT liver and tumour)";
  readonly modalities = ["CT"];
  readonly nClasses: number;
  /** The checks of every case (load and `deno task data`). */
  readonly rules: CaseRules;
  #index: Map<string, string> | null = null;

  constructor(
    readonly root: string,
    readonly target: Target,
    readonly window: [number, number],
    readonly norm: "zscore" | "minmax",
    readonly crop: "none" | "liver",
    readonly margin: number,
    readonly splitFile: string | null,
  ) {
    this.nClasses = target === "liver+tumour" ? 3 : 2;
    this.rules = {
      allowedLabels: target === "liver+tumour" ? [0, 1, 2] : [0, 1],
      // Every LiTS volume shows the liver; some show no tumour.
      requireForeground: target !== "tumour",
      ...(norm === "minmax"
        ? { intensity: [0, 1] as const, intensitySource: "min-max over the HU window" }
        : {}),
    };
  }

  #scan(): Map<string, string> {
    if (this.#index) return this.#index;
    const m = new Map<string, string>();
    for (const d of [this.root, `${this.root}/Training Batch 1`, `${this.root}/Training Batch 2`]) {
      for (const f of listFiles(d)) {
        const r = /^volume-(\d+)\.nii(\.gz)?$/.exec(f);
        if (r) m.set(r[1]!, d);
      }
    }
    this.#index = m;
    return m;
  }

  async splits(): Promise<Split[]> {
    if (this.splitFile !== null) {
      return splitsFromFile(await readSplitFile(this.splitFile), this.splitFile);
    }
    return splitsFromFile(LITS, "datasets/splits/lits.json");
  }

  caseIds(): Promise<string[]> {
    return Promise.resolve([...this.#scan().keys()].sort((a, b) => Number(a) - Number(b)));
  }

  #paths(id: string): { vol: string; seg: string } {
    const d = this.#scan().get(id) ?? this.root;
    const pick = (b: string) => firstFile([`${b}.nii`, `${b}.nii.gz`]) ?? `${b}.nii`;
    return { vol: pick(`${d}/volume-${id}`), seg: pick(`${d}/segmentation-${id}`) };
  }

  async load(caseId: string): Promise<Case> {
    return verifiedCase(await this.#read(caseId), this.rules);
  }

  /** Read and preprocess one case, unchecked, with the files it came from. */
  async #read(caseId: string): Promise<CaseRead> {
    const p = this.#paths(caseId);
    const pair = await readImageLabelPair(p.vol, p.seg, "volume");
    const { image: vol, label: seg } = pair;
    let sh = pair.shape;
    const n = vol.data.length;
    const [lo, hi] = this.window;
    let img = new Float32Array(n);
    for (let i = 0; i < n; i++) img[i] = Math.min(hi, Math.max(lo, vol.data[i]!));
    let lab = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      const v = Math.round(seg.data[i]!);
      // A value outside 0/1/2 is kept (255 when it does not fit a byte) so the check names it.
      const raw = v === 0 || v === 1 || v === 2 ? v : v > 2 && v < 255 ? v : 255;
      lab[i] = raw > 2
        ? raw
        : this.target === "liver+tumour"
        ? raw
        : this.target === "liver"
        ? (raw >= 1 ? 1 : 0)
        : (raw === 2 ? 1 : 0);
    }
    if (this.crop === "liver") {
      const box = bbox3(seg.data, sh, (v) => v >= 1);
      if (box !== null) {
        const r = box.map((
          [a, b],
          k,
        ) => [Math.max(a - this.margin, 0), Math.min(b + 1 + this.margin, sh[k]!)]) as [
          [number, number],
          [number, number],
          [number, number],
        ];
        const ci = crop3(img, sh, r);
        lab = crop3(lab, sh, r).data;
        img = ci.data;
        sh = ci.shape;
      }
    }
    if (this.norm === "zscore") {
      const { mean, std } = meanStd(img);
      const inv = std > 0 ? 1 / std : 1;
      for (let i = 0; i < img.length; i++) img[i] = (img[i]! - mean) * inv;
    } else {
      for (let i = 0; i < img.length; i++) img[i] = (img[i]! - lo) / (hi - lo);
    }
    return {
      case: {
        id: caseId,
        image: image1(img, sh, vol.spacing),
        label: label3(lab, sh, vol.spacing),
      },
      files: { image: p.vol, label: p.seg },
    };
  }

  async check(onCase?: CheckSink): Promise<IntegrityReport> {
    const [s] = await this.splits();
    const splitIds = s ? [...s.train, ...s.val, ...s.test] : [];
    return checkCases(
      splitIds,
      await this.caseIds(),
      (id) => this.#read(id),
      this.rules,
      (id) => `${this.root}/volume-${id}.nii + segmentation-${id}.nii`,
      onCase,
    );
  }
}

/** The LiTS 2017 dataset definition. */
export const lits: DatasetDefinition = {
  id: "lits",
  title: "LiTS 2017 (CT liver and tumour)",
  obtain: [
    "LiTS 2017 training data (131 CT volumes): https://competitions.codalab.org/competitions/17094 (registration required);",
    "the same volumes are Medical Segmentation Decathlon Task03_Liver (rename to volume-N/segmentation-N).",
    "Expected layout:",
    "  <root>/volume-N.nii and <root>/segmentation-N.nii   (N = 0..130; .nii.gz accepted)",
    "  or the same files inside <root>/Training Batch 1/ and <root>/Training Batch 2/",
    "Split: committed datasets/splits/lits.json (100 train / 31 test, project default; override with splitFile).",
  ].join("\n"),
  open(root: string, options: Record<string, number | string | boolean> = {}): Dataset {
    if (!isDir(root)) throw new Error(`${root}: LiTS data root not found`);
    const t = options.target;
    const target: Target = t === "liver" || t === "tumour" ? t : "liver+tumour";
    const lo = typeof options.windowLow === "number" ? options.windowLow : -160;
    const hi = typeof options.windowHigh === "number" ? options.windowHigh : 240;
    if (!(hi > lo)) throw new Error(`lits: windowHigh ${hi} must exceed windowLow ${lo}`);
    const norm = options.norm === "minmax" ? "minmax" : "zscore";
    const crop = options.crop === "liver" ? "liver" : "none";
    const margin = typeof options.margin === "number" ? options.margin : 10;
    const splitFile = typeof options.splitFile === "string" ? options.splitFile : null;
    return new LitsDataset(root, target, [lo, hi], norm, crop, margin, splitFile);
  },
};
