/**
 * Helpers shared by the dataset modules: file-system probing, volume cropping and statistics,
 * and the per-case integrity check.
 * @module
 */
import type { Case, ImageVolume, IntegrityReport, LabelVolume } from "./types.ts";
import type { NumericArray } from "./io/util.ts";
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

/** Integrity problems of one loaded case (shape agreement, finite image, label values). */
export function checkCase(c: Case, allowedLabels: readonly number[]): IntegrityReport {
  const out: string[] = [];
  const [ix, iy, iz] = c.image.shape;
  const [lx, ly, lz] = c.label.shape;
  if (ix !== lx || iy !== ly || iz !== lz) {
    out.push(
      `${c.id}: image shape ${c.image.shape.join("x")} != label shape ${c.label.shape.join("x")}`,
    );
  }
  if (c.image.data.length !== ix * iy * iz * c.image.channels) {
    out.push(
      `${c.id}: image has ${c.image.data.length} values for shape ${c.image.shape.join("x")}`,
    );
  }
  if (c.label.data.length !== lx * ly * lz) {
    out.push(
      `${c.id}: label has ${c.label.data.length} values for shape ${c.label.shape.join("x")}`,
    );
  }
  let nonFinite = 0;
  for (let i = 0; i < c.image.data.length; i++) if (!Number.isFinite(c.image.data[i]!)) nonFinite++;
  if (nonFinite > 0) out.push(`${c.id}: image has ${nonFinite} non-finite values`);
  const seen = new Set<number>();
  for (let i = 0; i < c.label.data.length; i++) seen.add(c.label.data[i]!);
  const bad = [...seen].filter((v) => !allowedLabels.includes(v)).sort((a, b) => a - b);
  if (bad.length > 0) {
    out.push(
      `${c.id}: unexpected label values ${bad.join(", ")} (allowed ${allowedLabels.join(", ")})`,
    );
  }
  if (!seen.has(1) && allowedLabels.includes(1)) {
    out.push(`${c.id}: label has no foreground voxels`);
  }
  return out;
}

/**
 * Load every id (missing or unreadable cases give one line each) and check it;
 * ids that are in a split but absent on disk are reported as missing.
 */
export async function checkCases(
  splitIds: string[],
  diskIds: string[],
  load: (id: string) => Promise<Case>,
  allowedLabels: readonly number[],
  where: (id: string) => string,
): Promise<IntegrityReport> {
  const out: string[] = [];
  const onDisk = new Set(diskIds);
  for (const id of splitIds) {
    if (!onDisk.has(id)) out.push(`${id}: missing (expected ${where(id)})`);
  }
  for (const id of diskIds) {
    try {
      out.push(...checkCase(await load(id), allowedLabels));
    } catch (e) {
      out.push(`${id}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  return out;
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
