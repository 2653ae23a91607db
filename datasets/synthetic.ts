/**
 * A deterministic synthetic segmentation dataset: no download, cheap, and hard enough that
 * unlabeled data helps. Each case (generated from `new Rng(deriveSeed(seed, "synthetic", index))`):
 * - foreground (label 1): the union of 1..3 randomly rotated ellipsoids;
 * - distractors (label 0): 1..2 small bright spheres outside the foreground, 0.9 x its contrast,
 *   so intensity alone does not separate the classes (shape and size do);
 * - partial-volume blur (separable [1,2,1]/4 applied twice), a smooth multiplicative bias field
 *   (exp of a random low-order polynomial, amplitude `bias`), additive Gaussian noise (`noise`),
 *   then a z-score over the volume.
 * Options: `n` cases (24), `size` (32) or `sx`/`sy`/`sz`, `nTrain` (16), `nVal` (0; test = rest),
 * `seed` (0), `noise` (0.35), `bias` (0.3), `appearance` (0: per-case variation of distractor
 * brightness, background, noise and blur, see {@link drawAppearance}). A 32^3 case takes about a
 * millisecond.
 * @module
 */
import { deriveSeed, Rng } from "../methods/nn/rng.ts";
import {
  type CaseRead,
  type CaseRules,
  checkCases,
  image1,
  label3,
  verifiedCase,
} from "./common.ts";
import { makeSplit } from "./splits.ts";
import type {
  Case,
  CheckSink,
  Dataset,
  DatasetDefinition,
  IntegrityReport,
  Split,
} from "./types.ts";

/**
 * The checks of every synthetic case (load and `deno task data`). Foreground is not required:
 * at 4^3 or 5^3 a case can lack one (the smallest ellipsoid falls between voxel centres).
 */
export const SYNTHETIC_RULES: CaseRules = { allowedLabels: [0, 1], requireForeground: false };

/** Generator settings. */
export interface SyntheticOptions {
  shape: [number, number, number];
  seed: number;
  noise: number;
  bias: number;
  /**
   * Per-case appearance variation in [0, 1] (0: every case looks alike, the generator's original
   * behaviour). Above 0 each case draws its own distractor brightness, background level, noise
   * level and blur (see {@link drawAppearance}), so a few labeled cases cannot cover the range
   * and the unlabeled ones carry information a method can use.
   */
  appearance?: number;
}

/** One case's appearance (the generator's fixed values when variation is 0). */
export interface Appearance {
  /** Distractor intensity, relative to the foreground's 1. */
  distractor: number;
  /** Background intensity before blur (the foreground is 1). */
  background: number;
  /** Multiplies the noise standard deviation. */
  noiseScale: number;
  /** Passes of the [1,2,1]/4 blur (partial-volume width). */
  blurPasses: number;
}

/**
 * Draw a case's appearance with variation `a`: distractors 0.9 +- 0.5a (above 1 they are brighter
 * than the foreground), background +- 0.3a, noise x (1 +- 0.7a), 1 to 3 blur passes. Draws nothing
 * at a = 0, so cases of the original generator are unchanged.
 */
export function drawAppearance(rng: Rng, a: number): Appearance {
  if (!(a > 0)) return { distractor: 0.9, background: 0, noiseScale: 1, blurPasses: 2 };
  const sym = () => 2 * rng.uniform() - 1;
  return {
    distractor: 0.9 + 0.5 * a * sym(),
    background: 0.3 * a * sym(),
    noiseScale: 1 + 0.7 * a * sym(),
    blurPasses: 1 + rng.int(3),
  };
}

function randomRotation(rng: Rng): number[] {
  // Uniform random rotation from a normalised Gaussian quaternion.
  let a = rng.normal(), b = rng.normal(), c = rng.normal(), d = rng.normal();
  const n = Math.hypot(a, b, c, d) || 1;
  a /= n, b /= n, c /= n, d /= n;
  return [
    a * a + b * b - c * c - d * d,
    2 * (b * c - a * d),
    2 * (b * d + a * c),
    2 * (b * c + a * d),
    a * a - b * b + c * c - d * d,
    2 * (c * d - a * b),
    2 * (b * d - a * c),
    2 * (c * d + a * b),
    a * a - b * b - c * c + d * d,
  ];
}

function blur121(v: Float32Array, shape: [number, number, number]): void {
  const [nx, ny, nz] = shape;
  const strides = [ny * nz, nz, 1];
  const tmp = new Float32Array(v.length);
  for (let ax = 0; ax < 3; ax++) {
    const st = strides[ax]!, len = shape[ax]!;
    let i = 0;
    for (let x = 0; x < nx; x++) {
      for (let y = 0; y < ny; y++) {
        for (let z = 0; z < nz; z++, i++) {
          const p = ax === 0 ? x : ax === 1 ? y : z;
          const l = p > 0 ? v[i - st]! : v[i]!;
          const r = p < len - 1 ? v[i + st]! : v[i]!;
          tmp[i] = 0.25 * l + 0.5 * v[i]! + 0.25 * r;
        }
      }
    }
    v.set(tmp);
  }
}

/** Generate case `index` (deterministic in `opts` and `index`). */
export function generateCase(index: number, opts: SyntheticOptions): Case {
  const rng = new Rng(deriveSeed(opts.seed, "synthetic", index));
  const shape = opts.shape;
  const [nx, ny, nz] = shape;
  const n = nx * ny * nz;
  const m = Math.min(nx, ny, nz);
  const label = new Uint8Array(n);
  const img = new Float32Array(n);
  const nObj = 1 + rng.int(3);
  const objs: { c: number[]; r: number[]; R: number[] }[] = [];
  for (let k = 0; k < nObj; k++) {
    objs.push({
      c: shape.map((s) => s * (0.3 + 0.4 * rng.uniform())),
      r: [0, 1, 2].map(() => m * (0.1 + 0.14 * rng.uniform())),
      R: randomRotation(rng),
    });
  }
  const nDis = 1 + rng.int(2);
  const dis: { c: number[]; r: number }[] = [];
  for (let k = 0; k < nDis; k++) {
    dis.push({
      c: shape.map((s) => s * (0.12 + 0.76 * rng.uniform())),
      r: m * (0.05 + 0.04 * rng.uniform()),
    });
  }
  const bc = Array.from({ length: 9 }, () => rng.normal() * opts.bias / 3);
  const look = drawAppearance(rng, opts.appearance ?? 0);
  if (look.background !== 0) img.fill(look.background);
  let i = 0;
  for (let x = 0; x < nx; x++) {
    for (let y = 0; y < ny; y++) {
      for (let z = 0; z < nz; z++, i++) {
        let inside = false;
        for (const o of objs) {
          const dx = x - o.c[0]!, dy = y - o.c[1]!, dz = z - o.c[2]!;
          const R = o.R;
          const u = (R[0]! * dx + R[3]! * dy + R[6]! * dz) / o.r[0]!;
          const v = (R[1]! * dx + R[4]! * dy + R[7]! * dz) / o.r[1]!;
          const w = (R[2]! * dx + R[5]! * dy + R[8]! * dz) / o.r[2]!;
          if (u * u + v * v + w * w <= 1) {
            inside = true;
            break;
          }
        }
        if (inside) {
          label[i] = 1;
          img[i] = 1;
          continue;
        }
        for (const d of dis) {
          const dx = x - d.c[0]!, dy = y - d.c[1]!, dz = z - d.c[2]!;
          if (dx * dx + dy * dy + dz * dz <= d.r * d.r) {
            img[i] = look.distractor;
            break;
          }
        }
      }
    }
  }
  for (let p = 0; p < look.blurPasses; p++) blur121(img, shape);
  i = 0;
  for (let x = 0; x < nx; x++) {
    const a = 2 * x / Math.max(nx - 1, 1) - 1;
    for (let y = 0; y < ny; y++) {
      const b = 2 * y / Math.max(ny - 1, 1) - 1;
      for (let z = 0; z < nz; z++, i++) {
        const c = 2 * z / Math.max(nz - 1, 1) - 1;
        const f = bc[0]! * a + bc[1]! * b + bc[2]! * c + bc[3]! * a * b + bc[4]! * b * c +
          bc[5]! * a * c + bc[6]! * a * a + bc[7]! * b * b + bc[8]! * c * c;
        img[i] = img[i]! * Math.exp(f) + opts.noise * look.noiseScale * rng.normal();
      }
    }
  }
  let s = 0;
  for (let j = 0; j < n; j++) s += img[j]!;
  const mean = s / n;
  let ss = 0;
  for (let j = 0; j < n; j++) ss += (img[j]! - mean) ** 2;
  const inv = 1 / (Math.sqrt(ss / n) || 1);
  for (let j = 0; j < n; j++) img[j] = (img[j]! - mean) * inv;
  const id = `syn${String(index).padStart(3, "0")}`;
  return {
    id,
    image: image1(img, [...shape], [1, 1, 1]),
    label: label3(label, [...shape], [1, 1, 1]),
  };
}

class SyntheticDataset implements Dataset {
  readonly id = "synthetic";
  readonly title = "Synthetic ellipsoids (generated)";
  readonly modalities = ["synthetic"];
  readonly nClasses = 2;
  constructor(
    readonly n: number,
    readonly nTrain: number,
    readonly nVal: number,
    readonly opts: SyntheticOptions,
  ) {}

  #ids(): string[] {
    return Array.from({ length: this.n }, (_, i) => `syn${String(i).padStart(3, "0")}`);
  }

  splits(): Promise<Split[]> {
    const ids = this.#ids();
    const src = `generated: synthetic(n=${this.n}, shape=${
      this.opts.shape.join("x")
    }, seed=${this.opts.seed}, noise=${this.opts.noise}, bias=${this.opts.bias}${
      this.opts.appearance ? `, appearance=${this.opts.appearance}` : ""
    })`;
    return Promise.resolve([
      makeSplit(
        "default",
        ids.slice(0, this.nTrain),
        ids.slice(this.nTrain, this.nTrain + this.nVal),
        ids.slice(this.nTrain + this.nVal),
        src,
      ),
    ]);
  }

  caseIds(): Promise<string[]> {
    return Promise.resolve(this.#ids());
  }

  async load(caseId: string): Promise<Case> {
    return verifiedCase(await this.#read(caseId), SYNTHETIC_RULES);
  }

  /** Generate one case, unchecked ("files" name the generator, for messages). */
  #read(caseId: string): Promise<CaseRead> {
    const m = /^syn(\d+)$/.exec(caseId);
    const k = m ? Number(m[1]) : -1;
    if (!(k >= 0 && k < this.n)) {
      return Promise.reject(
        new Error(
          `synthetic: no case '${caseId}' (syn000..syn${String(this.n - 1).padStart(3, "0")})`,
        ),
      );
    }
    const where = `synthetic case ${caseId}`;
    return Promise.resolve({
      case: generateCase(k, this.opts),
      files: { image: where, label: where },
    });
  }

  check(onCase?: CheckSink): Promise<IntegrityReport> {
    const ids = this.#ids();
    return checkCases(ids, ids, (id) => this.#read(id), SYNTHETIC_RULES, () => "", onCase);
  }
}

/** The synthetic dataset definition (the root is ignored). */
export const synthetic: DatasetDefinition = {
  id: "synthetic",
  title: "Synthetic ellipsoids (generated)",
  obtain:
    "Generated on the fly; no download. Options: n, size | sx,sy,sz, nTrain, nVal, seed, noise, bias, appearance.",
  open(_root: string, options: Record<string, number | string | boolean> = {}): Dataset {
    const num = (k: string, d: number): number => {
      const v = options[k];
      if (v === undefined) return d;
      const x = typeof v === "number" ? v : Number(v);
      if (!Number.isFinite(x)) {
        throw new Error(`synthetic: option ${k}=${String(v)} is not a number`);
      }
      return x;
    };
    const size = num("size", 32);
    const shape: [number, number, number] = [num("sx", size), num("sy", size), num("sz", size)];
    if (shape.some((s) => !Number.isInteger(s) || s < 4)) {
      throw new Error(`synthetic: sizes must be integers >= 4, got ${shape.join("x")}`);
    }
    const n = num("n", 24), nTrain = num("nTrain", Math.min(16, n)), nVal = num("nVal", 0);
    if (!(Number.isInteger(n) && n >= 1 && nTrain >= 0 && nVal >= 0 && nTrain + nVal <= n)) {
      throw new Error(
        `synthetic: need n >= 1 and nTrain + nVal <= n (n=${n}, nTrain=${nTrain}, nVal=${nVal})`,
      );
    }
    return new SyntheticDataset(n, nTrain, nVal, {
      shape,
      seed: num("seed", 0),
      noise: num("noise", 0.35),
      bias: num("bias", 0.3),
      appearance: num("appearance", 0),
    });
  },
};
