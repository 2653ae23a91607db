/**
 * WMH 2017 (MICCAI White Matter Hyperintensities challenge), FLAIR, MASSL protocol:
 * 5 site-balanced Monte-Carlo folds of 30 train / 10 val / 20 test (`datasets/splits/wmh.json`,
 * a documented reconstruction; MASSL's WMH code is not public).
 *
 * Labels are kept as stored: 0 background, 1 WMH, 2 "other pathology". `ignoreLabel = 2`: the
 * evaluator masks those voxels out (as the challenge's evaluation.py does) and losses skip them.
 *
 * Per case (the challenge winner's normalisation, hongweilibran/wmh_ibbmTum): read `pre/FLAIR`
 * (option `flair: "orig"` for `orig/FLAIR`); brain mask = FLAIR >= 70 (option `maskThreshold`)
 * with 2-D per-slice (x-y) hole filling; z-score with the mask's mean/std applied to all voxels.
 * No crop or resampling (native matrix, NIfTI index order (x, y, z)).
 * Layout: `<root>/<Site>/<subject>/{wmh.nii.gz, pre/FLAIR.nii.gz}` with Site in GE3T (also
 * `Amsterdam/GE3T`), Singapore, Utrecht; case id = `<Site>/<subject>`.
 * @module
 */
import {
  type CaseRead,
  type CaseRules,
  checkCases,
  firstFile,
  image1,
  isDir,
  label3,
  listDirs,
  meanStd,
  naturalSort,
  readImageLabelPair,
  verifiedCase,
} from "./common.ts";
import {
  readSplitFile,
  type SplitFile,
  splitsFromFile,
  validateSplitFile,
  WMH_SITES,
} from "./splits.ts";
import wmhJson from "./splits/wmh.json" with { type: "json" };
import type {
  Case,
  CheckSink,
  Dataset,
  DatasetDefinition,
  IntegrityReport,
  Split,
} from "./types.ts";

const WMH: SplitFile = validateSplitFile("datasets/splits/wmh.json", wmhJson);

/** What every WMH case must satisfy (load and `deno task data`): labels as stored 0/1/2. */
export const WMH_RULES: CaseRules = { allowedLabels: [0, 1, 2], requireForeground: true };

/** Fill holes of a binary mask slice by slice in the x-y plane (4-connected background flood). */
export function fillHoles2d(mask: Uint8Array, shape: [number, number, number]): Uint8Array {
  const [nx, ny, nz] = shape;
  const out = mask.slice();
  const outside = new Uint8Array(nx * ny);
  const stack: number[] = [];
  for (let z = 0; z < nz; z++) {
    outside.fill(0);
    const at = (x: number, y: number) => (x * ny + y) * nz + z;
    const push = (x: number, y: number) => {
      const p = x * ny + y;
      if (outside[p] || mask[at(x, y)]) return;
      outside[p] = 1;
      stack.push(p);
    };
    for (let x = 0; x < nx; x++) push(x, 0), push(x, ny - 1);
    for (let y = 0; y < ny; y++) push(0, y), push(nx - 1, y);
    while (stack.length > 0) {
      const p = stack.pop()!;
      const x = Math.floor(p / ny), y = p % ny;
      if (x > 0) push(x - 1, y);
      if (x < nx - 1) push(x + 1, y);
      if (y > 0) push(x, y - 1);
      if (y < ny - 1) push(x, y + 1);
    }
    for (let x = 0; x < nx; x++) {
      for (let y = 0; y < ny; y++) if (!outside[x * ny + y]) out[at(x, y)] = 1;
    }
  }
  return out;
}

class WmhDataset implements Dataset {
  readonly id = "wmh";
  readonly title = "WMH 2017 (FLAIR; MASSL site-balanced folds)";
  readonly modalities = ["FLAIR"];
  readonly nClasses = 2;
  readonly ignoreLabel = 2;
  #sites: Map<string, string> | null = null;

  constructor(
    readonly root: string,
    readonly flair: "pre" | "orig",
    readonly threshold: number,
    readonly splitFile: string | null,
  ) {}

  /** Site name -> directory. */
  #siteDirs(): Map<string, string> {
    if (this.#sites) return this.#sites;
    const m = new Map<string, string>();
    for (const s of WMH_SITES) {
      for (const d of [`${this.root}/${s}`, `${this.root}/Amsterdam/${s}`]) {
        if (isDir(d)) {
          m.set(s, d);
          break;
        }
      }
    }
    this.#sites = m;
    return m;
  }

  #groups(): Record<string, string[]> {
    const g: Record<string, string[]> = {};
    for (const [s, d] of this.#siteDirs()) {
      g[s] = naturalSort(
        listDirs(d).filter((n) => firstFile([`${d}/${n}/wmh.nii.gz`, `${d}/${n}/wmh.nii`])),
      )
        .map((n) => `${s}/${n}`);
    }
    return g;
  }

  async splits(): Promise<Split[]> {
    if (this.splitFile !== null) {
      const f = await readSplitFile(this.splitFile);
      return splitsFromFile(f, this.splitFile, f.idFormat ? this.#groups() : undefined);
    }
    return splitsFromFile(WMH, "datasets/splits/wmh.json", this.#groups());
  }

  caseIds(): Promise<string[]> {
    return Promise.resolve(Object.values(this.#groups()).flat());
  }

  #paths(caseId: string): { flair: string; label: string } {
    const slash = caseId.indexOf("/");
    const site = caseId.slice(0, slash), subj = caseId.slice(slash + 1);
    const d = `${this.#siteDirs().get(site) ?? `${this.root}/${site}`}/${subj}`;
    const pick = (base: string) => firstFile([`${base}.nii.gz`, `${base}.nii`]) ?? `${base}.nii.gz`;
    return { flair: pick(`${d}/${this.flair}/FLAIR`), label: pick(`${d}/wmh`) };
  }

  async load(caseId: string): Promise<Case> {
    return verifiedCase(await this.#read(caseId), WMH_RULES);
  }

  /** Read and preprocess one case, unchecked, with the files it came from. */
  async #read(caseId: string): Promise<CaseRead> {
    const p = this.#paths(caseId);
    const { image: img, label: lab, shape: sh } = await readImageLabelPair(
      p.flair,
      p.label,
      "FLAIR",
    );
    const n = img.data.length;
    const m0 = new Uint8Array(n);
    for (let i = 0; i < n; i++) m0[i] = img.data[i]! >= this.threshold ? 1 : 0;
    const mask = fillHoles2d(m0, sh);
    const { mean, std } = meanStd(img.data, (_v, i) => mask[i] === 1);
    const inv = std > 0 ? 1 / std : 1;
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = (img.data[i]! - mean) * inv;
    const label = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      const v = Math.round(lab.data[i]!);
      // Kept as stored (255 when it does not fit a byte): the check names unexpected values.
      label[i] = v >= 0 && v < 255 ? v : 255;
    }
    return {
      case: {
        id: caseId,
        image: image1(out, sh, img.spacing),
        label: label3(label, sh, img.spacing),
      },
      files: { image: p.flair, label: p.label },
    };
  }

  async check(onCase?: CheckSink): Promise<IntegrityReport> {
    const out: string[] = [];
    const g = this.#groups();
    for (const s of WMH_SITES) {
      const n = g[s]?.length ?? 0;
      if (n !== 20) out.push(`${this.root}/${s}: ${n} subjects found, the MASSL folds expect 20`);
    }
    let splitIds: string[] = [];
    try {
      const [s] = await this.splits();
      if (s) splitIds = [...s.train, ...s.val, ...s.test];
    } catch (e) {
      out.push(e instanceof Error ? e.message : String(e));
    }
    out.push(
      ...await checkCases(
        splitIds,
        await this.caseIds(),
        (id) => this.#read(id),
        WMH_RULES,
        (id) => `${this.root}/${id}/wmh.nii.gz + ${this.flair}/FLAIR.nii.gz`,
        onCase,
      ),
    );
    return out;
  }
}

/** The WMH 2017 dataset definition. */
export const wmh: DatasetDefinition = {
  id: "wmh",
  title: "WMH 2017 (FLAIR; MASSL site-balanced folds)",
  obtain: [
    "WMH Segmentation Challenge 2017 training data (60 subjects, 3 sites): https://wmh.isi.uu.nl (registration required; also on DataverseNL).",
    "Expected layout:",
    "  <root>/{GE3T,Singapore,Utrecht}/<subject>/wmh.nii.gz            (0 bg, 1 WMH, 2 other pathology)",
    "  <root>/{GE3T,Singapore,Utrecht}/<subject>/pre/FLAIR.nii.gz       (also orig/FLAIR.nii.gz)",
    "  (GE3T may sit under Amsterdam/GE3T)",
    "Split: committed datasets/splits/wmh.json, 5 site-balanced folds 30/10/20 (reconstruction).",
  ].join("\n"),
  open(root: string, options: Record<string, number | string | boolean> = {}): Dataset {
    if (!isDir(root)) throw new Error(`${root}: WMH data root not found`);
    const flair = options.flair === "orig" ? "orig" : "pre";
    const thr = typeof options.maskThreshold === "number" ? options.maskThreshold : 70;
    const splitFile = typeof options.splitFile === "string" ? options.splitFile : null;
    return new WmhDataset(root, flair, thr, splitFile);
  },
};
