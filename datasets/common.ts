/**
 * Helpers shared by the dataset modules: file-system probing, volume cropping and statistics,
 * and the per-case integrity check.
 * @module
 */
import type { Case, CheckSink, ImageVolume, IntegrityReport, LabelVolume } from "./types.ts";
import { type NumericArray, oneLine } from "./io/util.ts";
import { type NiftiVolume, readNifti } from "./io/nifti.ts";

/** True when `path` is an existing directory. */
export function isDir(path: string): boolean {
  try {
    return Deno.statSync(path).isDirectory;
  } catch {
    return false;
  }
}

/** True when `path` is an existing file. */
export function isFile(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/** Names of the sub-directories of `path` (empty when it is not a directory), sorted. */
export function listDirs(path: string): string[] {
  if (!isDir(path)) return [];
  const out: string[] = [];
  for (const e of Deno.readDirSync(path)) {
    if (e.isDirectory || (e.isSymlink && isDir(`${path}/${e.name}`))) out.push(e.name);
  }
  return out.sort(codePointCompare);
}

/** Names of the files in `path`, sorted. */
export function listFiles(path: string): string[] {
  if (!isDir(path)) return [];
  const out: string[] = [];
  for (const e of Deno.readDirSync(path)) {
    if (e.isFile || (e.isSymlink && isFile(`${path}/${e.name}`))) out.push(e.name);
  }
  return out.sort(codePointCompare);
}

/** Python-style string ordering (by code point). */
export function codePointCompare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Numeric order when every name is a non-negative integer, else code-point order. */
export function naturalSort(names: string[]): string[] {
  const numeric = names.every((n) => /^\d+$/.test(n));
  return [...names].sort(numeric ? (a, b) => Number(a) - Number(b) : codePointCompare);
}

/** The first of `candidates` that is an existing file, or null. */
export function firstFile(candidates: string[]): string | null {
  for (const c of candidates) if (isFile(c)) return c;
  return null;
}

/** Float32 copy (or the same array when it already is Float32). */
export function toFloat32(a: NumericArray): Float32Array {
  return a instanceof Float32Array ? a : Float32Array.from(a);
}

/** Inclusive bounding box [min, max] per axis of the voxels where `pred(v)` holds; null if none. */
export function bbox3(
  data: ArrayLike<number>,
  shape: readonly [number, number, number],
  pred: (v: number) => boolean,
): [[number, number], [number, number], [number, number]] | null {
  const [nx, ny, nz] = shape;
  let x0 = nx, x1 = -1, y0 = ny, y1 = -1, z0 = nz, z1 = -1;
  let i = 0;
  for (let x = 0; x < nx; x++) {
    for (let y = 0; y < ny; y++) {
      for (let z = 0; z < nz; z++, i++) {
        if (!pred(data[i]!)) continue;
        if (x < x0) x0 = x;
        if (x > x1) x1 = x;
        if (y < y0) y0 = y;
        if (y > y1) y1 = y;
        if (z < z0) z0 = z;
        if (z > z1) z1 = z;
      }
    }
  }
  if (x1 < 0) return null;
  return [[x0, x1], [y0, y1], [z0, z1]];
}

/** Crop a single-channel C-order (x,y,z) volume to half-open ranges [lo, hi) per axis. */
export function crop3<T extends Float32Array | Uint8Array>(
  data: T,
  shape: readonly [number, number, number],
  r: readonly [[number, number], [number, number], [number, number]],
): { data: T; shape: [number, number, number] } {
  const [, ny, nz] = shape;
  const [[x0, x1], [y0, y1], [z0, z1]] = r;
  const sx = x1 - x0, sy = y1 - y0, sz = z1 - z0;
  const ctor = data.constructor as new (n: number) => T;
  const out = new ctor(sx * sy * sz);
  let o = 0;
  for (let x = x0; x < x1; x++) {
    for (let y = y0; y < y1; y++) {
      const base = (x * ny + y) * nz;
      out.set(data.subarray(base + z0, base + z1) as never, o);
      o += sz;
    }
  }
  return { data: out, shape: [sx, sy, sz] };
}

/** Mean and population std (float64 accumulation) over the voxels where `mask` holds (all if null). */
export function meanStd(
  data: ArrayLike<number>,
  mask: ((v: number, i: number) => boolean) | null = null,
): { mean: number; std: number; count: number } {
  let n = 0, s = 0;
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!;
    if (mask && !mask(v, i)) continue;
    n++;
    s += v;
  }
  const mean = n > 0 ? s / n : 0;
  let ss = 0;
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!;
    if (mask && !mask(v, i)) continue;
    ss += (v - mean) * (v - mean);
  }
  return { mean, std: n > 0 ? Math.sqrt(ss / n) : 0, count: n };
}

/** Build a single-channel image volume. */
export function image1(
  data: Float32Array,
  shape: [number, number, number],
  spacing: [number, number, number],
): ImageVolume {
  return { data, shape, channels: 1, spacing };
}

/** Build a label volume. */
export function label3(
  data: Uint8Array,
  shape: [number, number, number],
  spacing: [number, number, number],
): LabelVolume {
  return { data, shape, spacing };
}

/**
 * What every case of a dataset must satisfy after preprocessing: the same rules for the data
 * check (`deno task data`) and for every case a run loads (Dataset.load).
 */
export interface CaseRules {
  /** Label values a case may hold. */
  allowedLabels: readonly number[];
  /** Every case must hold at least one voxel of label 1 (false where empty labels are normal). */
  requireForeground: boolean;
  /** Plausible [min, max] of the preprocessed image values, where the dataset defines one. */
  intensity?: readonly [number, number];
  /** Where {@link CaseRules.intensity} comes from (printed with a violation). */
  intensitySource?: string;
}

/** The files a case was read from (the same file twice for an h5 holding both). */
export interface CaseFiles {
  image: string;
  label: string;
}

/** A case as read, before the checks, with the files it came from. */
export interface CaseRead {
  case: Case;
  files: CaseFiles;
}

/** One problem of a case: the file it concerns and what is wrong (ending in "(expected ...)"). */
export interface CaseProblem {
  file: string;
  what: string;
}

function voxelAt(i: number, shape: readonly number[], channels: number): string {
  const v = Math.floor(i / channels);
  const [, ny, nz] = shape as [number, number, number];
  const z = v % nz, y = Math.floor(v / nz) % ny, x = Math.floor(v / (nz * ny));
  return `(${x}, ${y}, ${z}${channels > 1 ? `, channel ${i % channels}` : ""})`;
}

/**
 * The integrity problems of one case: shapes (3-D, image = label, values = shape), finite image
 * values, an image that is not constant, image values within the dataset's plausible range, label
 * values allowed, foreground present. One pass over the image and one over the label.
 */
export function caseProblems(c: Case, rules: CaseRules, files: CaseFiles): CaseProblem[] {
  const out: CaseProblem[] = [];
  const im = c.image, lb = c.label;
  const ishape = im.shape.join("x"), lshape = lb.shape.join("x");
  const goodDims = (s: readonly number[]) =>
    s.length === 3 && s.every((d) => Number.isInteger(d) && d >= 1);
  if (!goodDims(im.shape)) {
    out.push({ file: files.image, what: `image shape ${ishape} (expected 3 axes of >= 1 voxel)` });
  }
  if (!goodDims(lb.shape)) {
    out.push({ file: files.label, what: `label shape ${lshape} (expected 3 axes of >= 1 voxel)` });
  }
  if (goodDims(im.shape) && goodDims(lb.shape) && ishape !== lshape) {
    out.push({
      file: files.label,
      what: `label shape ${lshape} differs from image shape ${ishape} (expected the same shape)`,
    });
  }
  const nImage = prod3(im.shape) * im.channels;
  if (im.data.length !== nImage) {
    out.push({
      file: files.image,
      what:
        `image has ${im.data.length} values for shape ${ishape} x ${im.channels} channel(s) (expected ${nImage})`,
    });
  }
  if (lb.data.length !== prod3(lb.shape)) {
    out.push({
      file: files.label,
      what: `label has ${lb.data.length} values for shape ${lshape} (expected ${prod3(lb.shape)})`,
    });
  }
  const d = im.data;
  let nonFinite = 0, firstBad = -1, lo = Infinity, hi = -Infinity;
  for (let i = 0; i < d.length; i++) {
    const v = d[i]!;
    if (v - v !== 0) {
      // NaN or +-Infinity
      if (nonFinite++ === 0) firstBad = i;
      continue;
    }
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  if (nonFinite > 0) {
    out.push({
      file: files.image,
      what: `image has ${nonFinite} non-finite values (NaN or infinite; the first at voxel ${
        voxelAt(firstBad, im.shape, im.channels)
      }) (expected finite values)`,
    });
  }
  if (d.length > 1 && nonFinite < d.length && lo === hi) {
    out.push({
      file: files.image,
      what: `image is constant (every finite voxel is ${lo}) (expected varying intensities)`,
    });
  }
  const range = rules.intensity;
  if (range && nonFinite < d.length && (lo < range[0] || hi > range[1])) {
    out.push({
      file: files.image,
      what: `image values span [${fmt(lo)}, ${fmt(hi)}] (expected within [${range[0]}, ${
        range[1]
      }]${rules.intensitySource ? `, ${rules.intensitySource}` : ""})`,
    });
  }
  const counts = new Float64Array(256);
  const l = lb.data;
  for (let i = 0; i < l.length; i++) counts[l[i]!]!++;
  const bad: number[] = [];
  for (let v = 0; v < 256; v++) if (counts[v]! > 0 && !rules.allowedLabels.includes(v)) bad.push(v);
  if (bad.length > 0) {
    out.push({
      file: files.label,
      what: `unexpected label values ${bad.join(", ")} (allowed ${rules.allowedLabels.join(", ")})`,
    });
  }
  if (rules.requireForeground && l.length > 0 && counts[1] === 0) {
    out.push({
      file: files.label,
      what: "label has no foreground voxels (expected at least one voxel of label 1)",
    });
  }
  return out;
}

function prod3(s: readonly number[]): number {
  return s.reduce((a, b) => a * b, 1);
}

/** A value with 6 significant digits (1.23457e+30, -1.01733). */
function fmt(v: number): string {
  return String(Number(v.toPrecision(6)));
}

/** Integrity problems of one case, one line each: `<file>: <what> (expected ...)`. */
export function checkCase(c: Case, rules: CaseRules, files: CaseFiles): IntegrityReport {
  return caseProblems(c, rules, files).map((p) => `${p.file}: ${p.what}`);
}

/**
 * The case of `read` when it passes {@link caseProblems}; otherwise throws ONE line naming the
 * file(s): `<file>: <what> (expected ...)[; <what> ...][; <other file>: ...]`. Every dataset's
 * `load` ends here, so a run refuses a bad case as `deno task data` reports it.
 */
export function verifiedCase(read: CaseRead, rules: CaseRules): Case {
  const problems = caseProblems(read.case, rules, read.files);
  if (problems.length === 0) return read.case;
  const byFile = new Map<string, string[]>();
  for (const p of problems) byFile.set(p.file, [...(byFile.get(p.file) ?? []), p.what]);
  throw new Error(
    oneLine([...byFile].map(([f, whats]) => `${f}: ${whats.join("; ")}`).join("; ")),
  );
}

/** Bytes of a case's volumes as decoded in memory (image + label). */
export function caseBytes(c: Case): number {
  return c.image.data.byteLength + c.label.data.byteLength;
}

/**
 * Read every id one at a time (memory: one case) and check it with {@link checkCase}: the
 * data check of `deno task data`. A case that does not read gives its reader's one line (the
 * case id prefixed when the line does not name it); ids that are in a split but absent on disk
 * are reported as missing. `onCase` hears each case read (for the cost line).
 */
export async function checkCases(
  splitIds: string[],
  diskIds: string[],
  read: (id: string) => Promise<CaseRead>,
  rules: CaseRules,
  where: (id: string) => string,
  onCase?: CheckSink,
): Promise<IntegrityReport> {
  const out: string[] = [];
  const onDisk = new Set(diskIds);
  for (const id of splitIds) {
    if (!onDisk.has(id)) out.push(`${id}: missing (expected ${where(id)})`);
  }
  for (const id of diskIds) {
    let r: CaseRead;
    try {
      r = await read(id);
    } catch (e) {
      onCase?.(id, 0);
      const msg = oneLine(e instanceof Error ? e.message : String(e));
      out.push(msg.includes(id) ? msg : `${id}: ${msg}`);
      continue;
    }
    onCase?.(id, caseBytes(r.case));
    out.push(...checkCase(r.case, rules, r.files));
  }
  return out;
}

/**
 * Label values of a file as stored, before a mapping that would hide unexpected ones (BraTS
 * `seg > 0`, LA `laendo == 255`); throws one line naming the file when a value is not allowed.
 */
export function assertStoredLabels(
  path: string,
  data: ArrayLike<number>,
  allowed: readonly number[],
): void {
  const seen = new Set<number>();
  let last = NaN;
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!;
    if (v === last) continue;
    last = v;
    if (!seen.has(v)) {
      seen.add(v);
      if (seen.size > 64) break;
    }
  }
  const bad = [...seen].filter((v) => !allowed.includes(v)).sort((a, b) => a - b);
  if (bad.length > 0) {
    throw new Error(
      oneLine(
        `${path}: unexpected label values ${bad.slice(0, 8).join(", ")}${
          bad.length > 8 ? ", ..." : ""
        } (allowed ${allowed.join(", ")})`,
      ),
    );
  }
}

/** Read a list file (one id per line, `\r` stripped, first comma-separated field). */
export function readListFile(path: string): string[] | null {
  try {
    return Deno.readTextFileSync(path).split("\n").map((l) =>
      l.replace(/\r$/, "").split(",")[0]!.trim()
    )
      .filter((l) => l !== "");
  } catch {
    return null;
  }
}

/**
 * Read a 3D image and its label map (NIfTI) and check that the image is 3D and both have the
 * same shape; errors are one line naming the file. `imageName` says what the image is in the
 * message (e.g. "FLAIR", "volume").
 */
export async function readImageLabelPair(
  imagePath: string,
  labelPath: string,
  imageName: string,
): Promise<{ image: NiftiVolume; label: NiftiVolume; shape: [number, number, number] }> {
  const image = await readNifti(imagePath);
  const label = await readNifti(labelPath);
  if (image.shape.length !== 3) {
    throw new Error(`${imagePath}: expected 3 dims, got ${image.shape.join("x")}`);
  }
  if (image.shape.join() !== label.shape.join()) {
    throw new Error(
      `${labelPath}: shape ${label.shape.join("x")} differs from ${imageName} ${
        image.shape.join("x")
      }`,
    );
  }
  return { image, label, shape: image.shape as [number, number, number] };
}
