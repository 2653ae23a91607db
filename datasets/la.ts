/**
 * LA: 2018 Atrial Segmentation Challenge (LGE-MRI, left-atrium cavity), as UA-MT/DTC/MC-Net use it.
 *
 * Two on-disk layouts are read, per case:
 * - UA-MT preprocessed: `<root>/<CASE_ID>/mri_norm2.h5` (datasets `image` float32, `label` uint8,
 *   C order (x, y, z)), loaded as stored. `<root>` may also be UA-MT's `data/` folder that holds
 *   `2018LA_Seg_Training Set/` (the name with the space).
 * - Raw challenge: `<root>/<CASE_ID>/lgemri.nrrd` + `laendo.nrrd`, preprocessed here as UA-MT's
 *   `la_heart_processing.py` does: label = (laendo == 255); z-score over the whole uncropped volume
 *   (population std); crop x and y (never z) to the label bounding box widened by random margins
 *   10..19 plus half the shortfall to 112; the margins come from `new Rng(deriveSeed(seed, "la-crop",
 *   id))` (default seed 1337), so crops are reproducible here but cannot equal the shipped h5 crops
 *   (UA-MT set no seed).
 *
 * Split: the committed UA-MT lists (`datasets/splits/la.json`, 80 train / 20 test); labeled = first
 * L of train. Spacing is the challenge's 0.625 mm isotropic for h5 cases (the h5 stores none) and the
 * NRRD `space directions` for raw cases.
 * @module
 */
import { deriveSeed, Rng } from "../methods/nn/rng.ts";
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
  readListFile,
  verifiedCase,
} from "./common.ts";
import { readHdf5 } from "./io/hdf5.ts";
import { readNrrd } from "./io/nrrd.ts";
import { readSplitFile, type SplitFile, splitsFromFile, validateSplitFile } from "./splits.ts";
import splitJson from "./splits/la.json" with { type: "json" };
import type {
  Case,
  CheckSink,
  Dataset,
  DatasetDefinition,
  IntegrityReport,
  Split,
} from "./types.ts";

const LA_SPLIT: SplitFile = validateSplitFile("datasets/splits/la.json", splitJson);

/**
 * What every LA case must satisfy (load and `deno task data`). Intensities: UA-MT z-scores each
 * whole volume, and the 100 shipped `mri_norm2.h5` images span [-1.02, 17.1] (measured here,
 * all cases); [-20, 200] leaves wide room while catching decoded garbage (e.g. 1e30).
 */
export const LA_RULES: CaseRules = {
  allowedLabels: [0, 1],
  requireForeground: true,
  intensity: [-20, 200],
  intensitySource: "z-scored LA volumes span about [-1, 17]",
};

/** UA-MT's output_size for the x/y enlargement rule. */
const OUT_XY = 112;

/**
 * UA-MT LA preprocessing of a raw case (arrays in our C order over (x, y, z)).
 * Draw order follows the script: minx, maxx, miny, maxy margins (10..19), then the unused z
 * margins (5..9), so the stream matches a faithful port.
 */
export function uaMtPreprocess(
  image: ArrayLike<number>,
  laendo: ArrayLike<number>,
  shape: [number, number, number],
  rng: Rng,
): { image: Float32Array; label: Uint8Array; shape: [number, number, number] } {
  const n = shape[0] * shape[1] * shape[2];
  const label = new Uint8Array(n);
  for (let i = 0; i < n; i++) label[i] = laendo[i] === 255 ? 1 : 0;
  const { mean, std } = meanStd(image);
  const norm = new Float32Array(n);
  const inv = std > 0 ? 1 / std : 1;
  for (let i = 0; i < n; i++) norm[i] = (image[i]! - mean) * inv;
  const [w, h] = shape;
  const box = bbox3(label, shape, (v) => v !== 0);
  if (box === null) throw new Error("laendo has no voxel equal to 255");
  let [[minx, maxx], [miny, maxy]] = box;
  const px = Math.floor(Math.max(OUT_XY - (maxx - minx), 0) / 2);
  const py = Math.floor(Math.max(OUT_XY - (maxy - miny), 0) / 2);
  const margin = () => 10 + rng.int(10);
  minx = Math.max(minx - margin() - px, 0);
  maxx = Math.min(maxx + margin() + px, w);
  miny = Math.max(miny - margin() - py, 0);
  maxy = Math.min(maxy + margin() + py, h);
  rng.int(5); // minz margin: drawn, never used (UA-MT does not crop z)
  rng.int(5); // maxz margin
  const r: [[number, number], [number, number], [number, number]] = [[minx, maxx], [miny, maxy], [
    0,
    shape[2],
  ]];
  const ci = crop3(norm, shape, r);
  const cl = crop3(label, shape, r);
  return { image: ci.data, label: cl.data, shape: ci.shape };
}

function caseDir(root: string): string {
  const inner = `${root}/2018LA_Seg_Training Set`;
  return isDir(inner) ? inner : root;
}

class LaDataset implements Dataset {
  readonly id = "la";
  readonly title = "2018 Atrial Segmentation Challenge (LA)";
  readonly modalities = ["LGE-MRI"];
  readonly nClasses = 2;
  readonly #root: string;
  readonly #dir: string;
  readonly #seed: number;
  readonly #splitFile: string | null;

  constructor(root: string, seed: number, splitFile: string | null) {
    this.#root = root;
    this.#dir = caseDir(root);
    this.#seed = seed;
    this.#splitFile = splitFile;
  }

  async splits(): Promise<Split[]> {
    if (this.#splitFile !== null) {
      return splitsFromFile(await readSplitFile(this.#splitFile), this.#splitFile);
    }
    return splitsFromFile(LA_SPLIT, "datasets/splits/la.json");
  }

  caseIds(): Promise<string[]> {
    return Promise.resolve(
      listDirs(this.#dir).filter((d) =>
        isFile(`${this.#dir}/${d}/mri_norm2.h5`) || isFile(`${this.#dir}/${d}/lgemri.nrrd`)
      ),
    );
  }

  async load(caseId: string): Promise<Case> {
    return verifiedCase(await this.#read(caseId), LA_RULES);
  }

  /** Read one case as stored or preprocessed, unchecked, with the files it came from. */
  async #read(caseId: string): Promise<CaseRead> {
    const d = `${this.#dir}/${caseId}`;
    const h5 = `${d}/mri_norm2.h5`;
    if (isFile(h5) || !isFile(`${d}/lgemri.nrrd`)) {
      const r = await readHdf5(h5, ["image", "label"]);
      const im = r.image!, lb = r.label!;
      if (im.shape.length !== 3 || !(im.data instanceof Float32Array)) {
        throw new Error(
          `${h5}: 'image' must be a 3-D float32 array, got ${im.dtype} ${im.shape.join("x")}`,
        );
      }
      if (!(lb.data instanceof Uint8Array) || lb.shape.length !== 3) {
        throw new Error(
          `${h5}: 'label' must be a 3-D uint8 array, got ${lb.dtype} ${lb.shape.join("x")}`,
        );
      }
      const shape = im.shape as [number, number, number];
      const lshape = lb.shape as [number, number, number];
      const sp: [number, number, number] = [0.625, 0.625, 0.625];
      return {
        case: {
          id: caseId,
          image: image1(im.data, shape, sp),
          label: label3(lb.data, lshape, sp),
        },
        files: { image: h5, label: h5 },
      };
    }
    const imgPath = `${d}/lgemri.nrrd`;
    const labPath = firstFile([`${d}/laendo.nrrd`]) ?? `${d}/laendo.nrrd`;
    const img = await readNrrd(imgPath);
    const lab = await readNrrd(labPath);
    if (img.shape.length !== 3) {
      throw new Error(`${imgPath}: expected 3 dims, got ${img.shape.length}`);
    }
    if (img.shape.join() !== lab.shape.join()) {
      throw new Error(
        `${labPath}: sizes ${lab.shape.join("x")} differ from lgemri.nrrd ${img.shape.join("x")}`,
      );
    }
    assertStoredLabels(labPath, lab.data, [0, 255]);
    const rng = new Rng(deriveSeed(this.#seed, "la-crop", caseId));
    let p;
    try {
      p = uaMtPreprocess(img.data, lab.data, img.shape as [number, number, number], rng);
    } catch (e) {
      throw new Error(`${labPath}: ${e instanceof Error ? e.message : String(e)}`);
    }
    return {
      case: {
        id: caseId,
        image: image1(p.image, p.shape, img.spacing),
        label: label3(p.label, p.shape, img.spacing),
      },
      files: { image: imgPath, label: labPath },
    };
  }

  async check(onCase?: CheckSink): Promise<IntegrityReport> {
    const out: string[] = [];
    const [split] = await this.splits();
    const ids = await this.caseIds();
    const splitIds = split ? [...split.train, ...split.val, ...split.test] : [];
    out.push(
      ...await checkCases(
        splitIds,
        ids,
        (id) => this.#read(id),
        LA_RULES,
        (id) => `${this.#dir}/${id}/mri_norm2.h5 or lgemri.nrrd + laendo.nrrd`,
        onCase,
      ),
    );
    // List files shipped next to the data must agree with the committed split.
    if (split) {
      for (
        const [name, want] of [["train.list", split.train], ["test.list", split.test]] as const
      ) {
        for (
          const p of [`${this.#dir}/${name}`, `${this.#dir}/../${name}`, `${this.#root}/${name}`]
        ) {
          const got = readListFile(p);
          if (got === null) continue;
          if (got.join("\n") !== want.join("\n")) {
            out.push(`${p}: differs from the committed UA-MT ${name} (datasets/splits/la.json)`);
          }
          break;
        }
      }
    }
    return out;
  }
}

/** The LA dataset definition. */
export const la: DatasetDefinition = {
  id: "la",
  title: "2018 Atrial Segmentation Challenge (LA)",
  obtain: [
    "LA (2018 Atrial Segmentation Challenge, 100 training LGE-MRI cases).",
    "Easiest: the UA-MT preprocessed copy shipped in https://github.com/yulequan/UA-MT (data/2018LA_Seg_Training Set, ~233 MB, git LFS-free).",
    "Expected layout (either per case):",
    "  <root>/<CASE_ID>/mri_norm2.h5            (UA-MT: datasets image float32 (x,y,z), label uint8 {0,1})",
    "  <root>/<CASE_ID>/lgemri.nrrd + laendo.nrrd (raw challenge data; preprocessed here as UA-MT does)",
    "  <root> may also be UA-MT's data/ folder holding '2018LA_Seg_Training Set/'.",
    "Raw data: http://atriaseg2018.cardiacatlas.org (registration required).",
    "Split: committed datasets/splits/la.json (UA-MT train.list 80 / test.list 20).",
  ].join("\n"),
  open(root: string, options: Record<string, number | string | boolean> = {}): Dataset {
    if (!isDir(root)) throw new Error(`${root}: LA data root not found`);
    const seed = typeof options.seed === "number" ? options.seed : 1337;
    const splitFile = typeof options.splitFile === "string" ? options.splitFile : null;
    return new LaDataset(root, seed, splitFile);
  },
};
