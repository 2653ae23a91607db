/**
 * BraTS, FLAIR only, binary whole tumour (label > 0), in two protocols:
 *
 * `brats19` (SSL4MIS / UG-MCL): split = committed SSL4MIS lists (250 train / 25 val / 60 test;
 * labeled = first L of train). Per case, from the raw NIfTI as SSL4MIS `brats_proprecessing.py`:
 * crop to the bounding box of FLAIR != 0 with the max index EXCLUSIVE (SSL4MIS's off-by-one, kept);
 * clip to [min, v] with v the first intensity whose cumulative histogram reaches 0.999
 * (skimage `cumulative_distribution`: one bin per integer for integer data, 256 bins otherwise),
 * over all voxels; z-score with mean/std of voxels > 0 applied to all voxels.
 * Also reads SSL4MIS's preprocessed `<root>/data/<id>.h5` (`image`, `label`) as stored.
 *
 * `brats18` (MASSL, BraTS 2018 HGG): 5 Monte-Carlo folds 120 train / 40 val / 50 test
 * (`datasets/splits/brats18.json`, a documented reconstruction over the sorted HGG list). Per case,
 * as MASSL `BraTS18_preprocess.py`: mask = FLAIR >= 30, centre-crop x,y to 200 (extra voxel at the
 * end when odd), z-score over the mask, background 0.
 *
 * Axis order: NIfTI index order (x, y, z) = nibabel's; SSL4MIS/MASSL used SimpleITK's (z, y, x),
 * so their rot90 in axes (0,1) mixed z and y, ours rotates in x-y (documented deviation).
 * Raw layout: `<root>/{HGG,LGG}/<id>/<id>_{flair,seg}.nii[.gz]`.
 * @module
 */
import {
  assertStoredLabels,
  bbox3,
  type CaseRead,
  type CaseRules,
  checkCases,
  crop3,
  firstFile,
  image1,
  isDir,
  isFile,
  label3,
  listDirs,
  meanStd,
  readImageLabelPair,
  toFloat32,
  verifiedCase,
} from "./common.ts";
import { readHdf5 } from "./io/hdf5.ts";
import { readSplitFile, type SplitFile, splitsFromFile, validateSplitFile } from "./splits.ts";
import b19Json from "./splits/brats19.json" with { type: "json" };
import b18Json from "./splits/brats18.json" with { type: "json" };
import type {
  Case,
  CheckSink,
  Dataset,
  DatasetDefinition,
  IntegrityReport,
  Split,
} from "./types.ts";
import type { NumericArray } from "./io/util.ts";

const B19: SplitFile = validateSplitFile("datasets/splits/brats19.json", b19Json);
const B18: SplitFile = validateSplitFile("datasets/splits/brats18.json", b18Json);

/** BraTS segmentation values as stored: 0, 1 (NCR/NET), 2 (ED), 4 (ET); 3 is unused. */
export const BRATS_STORED_LABELS: readonly number[] = [0, 1, 2, 4];

/** What every BraTS case must satisfy after binarising (load and `deno task data`). */
export const BRATS_RULES: CaseRules = { allowedLabels: [0, 1], requireForeground: true };

/**
 * skimage-style upper clip: v = first histogram bin centre whose CDF >= `q`
 * (integer data: one bin per integer value; float data: 256 equal bins over [min, max]).
 * Returns the clipped copy and v.
 */
export function cdfClip(
  data: ArrayLike<number>,
  q: number,
  integer: boolean,
): { data: Float32Array; v: number } {
  const n = data.length;
  let lo = Infinity, hi = -Infinity;
  for (let i = 0; i < n; i++) {
    const x = data[i]!;
    if (x < lo) lo = x;
    if (x > hi) hi = x;
  }
  let v = hi;
  if (n > 0 && hi > lo) {
    const bins = integer ? hi - lo + 1 : 256;
    const counts = new Float64Array(bins);
    const scale = integer ? 1 : bins / (hi - lo);
    for (let i = 0; i < n; i++) {
      const b = integer ? data[i]! - lo : Math.min(Math.floor((data[i]! - lo) * scale), bins - 1);
      counts[b]!++;
    }
    let c = 0;
    for (let b = 0; b < bins; b++) {
      c += counts[b]!;
      if (c / n >= q) {
        v = integer ? lo + b : lo + (b + 0.5) / scale;
        break;
      }
    }
  }
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.min(data[i]!, v);
  return { data: out, v };
}

/** SSL4MIS BraTS preprocessing of FLAIR + seg in (x, y, z) C order. */
export function ssl4misPreprocess(
  flair: NumericArray,
  seg: NumericArray,
  shape: [number, number, number],
  integer: boolean,
): { image: Float32Array; label: Uint8Array; shape: [number, number, number] } {
  const box = bbox3(flair, shape, (v) => v !== 0);
  if (box === null) throw new Error("FLAIR is all zero");
  // SSL4MIS slices [min:max] with max = last nonzero index: the last row/col/slice is dropped.
  const r = box.map(([a, b]) => [a, Math.max(b, a + 1)]) as [
    [number, number],
    [number, number],
    [number, number],
  ];
  const img = crop3(toFloat32(flair), shape, r);
  const lab8 = new Uint8Array(seg.length);
  for (let i = 0; i < seg.length; i++) lab8[i] = seg[i]! > 0 ? 1 : 0;
  const lab = crop3(lab8, shape, r);
  const clipped = cdfClip(img.data, 0.999, integer).data;
  const { mean, std } = meanStd(clipped, (v) => v > 0);
  const inv = std > 0 ? 1 / std : 1;
  for (let i = 0; i < clipped.length; i++) clipped[i] = (clipped[i]! - mean) * inv;
  return { image: clipped, label: lab.data, shape: img.shape };
}

/** MASSL BraTS18 preprocessing of FLAIR + seg in (x, y, z) C order. */
export function masslPreprocess(
  flair: NumericArray,
  seg: NumericArray,
  shape: [number, number, number],
  size = 200,
): { image: Float32Array; label: Uint8Array; shape: [number, number, number] } {
  const [nx, ny, nz] = shape;
  const sx = Math.max(0, Math.floor((nx - size) / 2));
  const sy = Math.max(0, Math.floor((ny - size) / 2));
  const r: [[number, number], [number, number], [number, number]] = [
    [sx, sx + Math.min(size, nx)],
    [sy, sy + Math.min(size, ny)],
    [0, nz],
  ];
  const img = crop3(toFloat32(flair), shape, r);
  const lab8 = new Uint8Array(seg.length);
  for (let i = 0; i < seg.length; i++) lab8[i] = seg[i]! > 0 ? 1 : 0;
  const lab = crop3(lab8, shape, r);
  const d = img.data;
  for (let i = 0; i < d.length; i++) if (!(d[i]! >= 30)) d[i] = 0;
  const { mean, std } = meanStd(d, (v) => v >= 30);
  const inv = std > 0 ? 1 / std : 1;
  for (let i = 0; i < d.length; i++) d[i] = d[i]! >= 30 ? (d[i]! - mean) * inv : 0;
  return { image: d, label: lab.data, shape: img.shape };
}

interface Found {
  flair: string;
  seg: string | null;
}

function findRaw(dir: string, id: string): Found | null {
  const exts = [".nii.gz", ".nii"];
  const flair = firstFile(exts.map((e) => `${dir}/${id}_flair${e}`));
  if (flair === null) return null;
  return { flair, seg: firstFile(exts.map((e) => `${dir}/${id}_seg${e}`)) };
}

class BratsDataset implements Dataset {
  readonly modalities = ["FLAIR"];
  readonly nClasses = 2;
  #index: Map<string, { dir: string; h5: string | null }> | null = null;

  constructor(
    readonly id: "brats19" | "brats18",
    readonly title: string,
    readonly root: string,
    readonly splitFile: string | null,
  ) {}

  #scan(): Map<string, { dir: string; h5: string | null }> {
    if (this.#index) return this.#index;
    const idx = new Map<string, { dir: string; h5: string | null }>();
    const groups = this.id === "brats18" ? ["HGG"] : ["HGG", "LGG", "."];
    for (const g of groups) {
      const gd = g === "." ? this.root : `${this.root}/${g}`;
      for (const id of listDirs(gd)) {
        if (findRaw(`${gd}/${id}`, id)) idx.set(id, { dir: `${gd}/${id}`, h5: null });
      }
    }
    if (this.id === "brats19" && isDir(`${this.root}/data`)) {
      for (const e of Deno.readDirSync(`${this.root}/data`)) {
        if (e.name.endsWith(".h5")) {
          const id = e.name.slice(0, -3);
          idx.set(id, { dir: `${this.root}/data`, h5: `${this.root}/data/${e.name}` });
        }
      }
    }
    this.#index = idx;
    return idx;
  }

  async splits(): Promise<Split[]> {
    if (this.splitFile !== null) {
      const f = await readSplitFile(this.splitFile);
      return splitsFromFile(f, this.splitFile, f.idFormat ? this.#groups() : undefined);
    }
    if (this.id === "brats19") return splitsFromFile(B19, "datasets/splits/brats19.json");
    return splitsFromFile(B18, "datasets/splits/brats18.json", this.#groups());
  }

  #groups(): Record<string, string[]> {
    return { HGG: [...this.#scan().keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)) };
  }

  caseIds(): Promise<string[]> {
    return Promise.resolve([...this.#scan().keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));
  }

  async load(caseId: string): Promise<Case> {
    return verifiedCase(await this.#read(caseId), BRATS_RULES);
  }

  /** Read and preprocess one case, unchecked, with the files it came from. */
  async #read(caseId: string): Promise<CaseRead> {
    const e = this.#scan().get(caseId);
    if (!e) {
      throw new Error(
        `${this.root}: case ${caseId} not found (expected HGG|LGG/${caseId}/${caseId}_flair.nii.gz)`,
      );
    }
    if (e.h5 !== null) {
      const r = await readHdf5(e.h5, ["image", "label"]);
      const im = r.image!, lb = r.label!;
      if (im.shape.length !== 3) {
        throw new Error(`${e.h5}: 'image' must be 3-D, got ${im.shape.join("x")}`);
      }
      const sh = im.shape as [number, number, number];
      assertStoredLabels(e.h5, lb.data, BRATS_STORED_LABELS);
      const lab = new Uint8Array(lb.data.length);
      for (let i = 0; i < lab.length; i++) lab[i] = lb.data[i]! > 0 ? 1 : 0;
      return {
        case: {
          id: caseId,
          image: image1(toFloat32(im.data), sh, [1, 1, 1]),
          label: label3(lab, lb.shape as [number, number, number], [1, 1, 1]),
        },
        files: { image: e.h5, label: e.h5 },
      };
    }
    const f = findRaw(e.dir, caseId)!;
    if (f.seg === null) throw new Error(`${e.dir}: ${caseId}_seg.nii[.gz] missing`);
    const { image: img, label: seg, shape: sh } = await readImageLabelPair(f.flair, f.seg, "FLAIR");
    assertStoredLabels(f.seg, seg.data, BRATS_STORED_LABELS);
    const integer = !img.scaled && !img.datatype.startsWith("float");
    const p = this.id === "brats19"
      ? ssl4misPreprocess(img.data, seg.data, sh, integer)
      : masslPreprocess(img.data, seg.data, sh);
    return {
      case: {
        id: caseId,
        image: image1(p.image, p.shape, img.spacing),
        label: label3(p.label, p.shape, img.spacing),
      },
      files: { image: f.flair, label: f.seg },
    };
  }

  async check(onCase?: CheckSink): Promise<IntegrityReport> {
    const out: string[] = [];
    let splitIds: string[] = [];
    try {
      const [s] = await this.splits();
      if (s) splitIds = [...s.train, ...s.val, ...s.test];
    } catch (e) {
      out.push(e instanceof Error ? e.message : String(e));
    }
    if (this.id === "brats18") {
      const n = this.#scan().size;
      if (n !== 210) {
        out.push(`${this.root}/HGG: ${n} HGG cases found, MASSL's protocol expects 210`);
      }
    }
    out.push(
      ...await checkCases(
        splitIds,
        await this.caseIds(),
        (id) => this.#read(id),
        BRATS_RULES,
        (id) => `${this.root}/HGG|LGG/${id}/${id}_flair.nii.gz + _seg.nii.gz`,
        onCase,
      ),
    );
    return out;
  }
}

function openBrats(id: "brats19" | "brats18", title: string) {
  return (root: string, options: Record<string, number | string | boolean> = {}): Dataset => {
    if (!isDir(root)) throw new Error(`${root}: ${id} data root not found`);
    let r = root;
    for (const inner of ["MICCAI_BraTS_2019_Data_Training", "MICCAI_BraTS_2018_Data_Training"]) {
      if (isDir(`${root}/${inner}`)) r = `${root}/${inner}`;
    }
    const splitFile = typeof options.splitFile === "string" ? options.splitFile : null;
    if (splitFile !== null && !isFile(splitFile)) {
      throw new Error(`${splitFile}: split file not found`);
    }
    return new BratsDataset(id, title, r, splitFile);
  };
}

/** BraTS 2019 as SSL4MIS / UG-MCL use it. */
export const brats19: DatasetDefinition = {
  id: "brats19",
  title: "BraTS 2019 (FLAIR, whole tumour; SSL4MIS/UG-MCL split)",
  obtain: [
    "BraTS 2019 training data (335 subjects): https://www.med.upenn.edu/cbica/brats2019/data.html (registration required).",
    "Expected layout (root may also be the folder that holds MICCAI_BraTS_2019_Data_Training/):",
    "  <root>/HGG/<ID>/<ID>_flair.nii.gz and <ID>_seg.nii.gz   (also LGG/; .nii accepted)",
    "  or SSL4MIS's preprocessed h5 (BaiduDisk link in HiLab-git/SSL4MIS data/BraTS2019/README.md):",
    "  <root>/data/<ID>.h5 with datasets image, label",
    "Split: committed datasets/splits/brats19.json (SSL4MIS train.txt 250 / val.txt 25 / test.txt 60).",
  ].join("\n"),
  open: openBrats("brats19", "BraTS 2019 (FLAIR, whole tumour; SSL4MIS/UG-MCL split)"),
};

/** BraTS 2018 HGG as MASSL uses it. */
export const brats18: DatasetDefinition = {
  id: "brats18",
  title: "BraTS 2018 HGG (FLAIR, whole tumour; MASSL Monte-Carlo folds)",
  obtain: [
    "BraTS 2018 training data (210 HGG + 75 LGG): https://www.med.upenn.edu/sbia/brats2018/data.html (registration required).",
    "Expected layout (root may also be the folder that holds MICCAI_BraTS_2018_Data_Training/):",
    "  <root>/HGG/Brats18_<inst>_<n>_1/Brats18_<inst>_<n>_1_flair.nii.gz and ..._seg.nii.gz",
    "Split: committed datasets/splits/brats18.json, 5 folds of 120/40/50 over the sorted 210 HGG cases",
    "(a reconstruction of MASSL's data seeds 1..5; see the file's note).",
  ].join("\n"),
  open: openBrats("brats18", "BraTS 2018 HGG (FLAIR, whole tumour; MASSL Monte-Carlo folds)"),
};
