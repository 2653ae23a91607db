/**
 * Shared helpers for the file readers: one-line errors that name the file, file reading,
 * gzip decoding, and the axis-order conversion between file order and our C order.
 *
 * Axis order. Our volumes are flat arrays in C order over (x, y, z[, c]): the LAST axis varies
 * fastest, `index = ((x * ny + y) * nz + z) * nc + c`. NIfTI and NRRD store voxels with the
 * FIRST axis fastest ("Fortran order", `index = x + nx * (y + ny * z)`). The readers keep the
 * file's axis meaning (axis 0 is the file's first/fastest axis, as nibabel and pynrrd index
 * them) and only reorder memory, so `ours[x][y][z] === file voxel (x, y, z)`.
 * @module
 */
import { gunzipSync, gzipSync } from "node:zlib";

/** Typed arrays the readers return. */
export type NumericArray =
  | Uint8Array
  | Int8Array
  | Uint16Array
  | Int16Array
  | Uint32Array
  | Int32Array
  | Float32Array
  | Float64Array;

/** Collapse a message to one line (errors are printed one per line). */
export function oneLine(s: string): string {
  return s.replace(/\s*[\r\n]+\s*/g, " ").trim();
}

/** An Error whose message is `<file>: <what>` on one line. */
export function fileError(path: string, what: string): Error {
  return new Error(oneLine(`${path}: ${what}`));
}

/** Read a whole file; throws one line naming the file when it is missing or unreadable. */
export async function readBytes(path: string): Promise<Uint8Array> {
  try {
    return await Deno.readFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw fileError(path, "file not found");
    if (e instanceof Deno.errors.IsADirectory) throw fileError(path, "is a directory, not a file");
    throw fileError(path, `cannot read file (${e instanceof Error ? e.message : String(e)})`);
  }
}

/** True when the bytes start with the gzip magic 1f 8b. */
export function isGzip(b: Uint8Array): boolean {
  return b.length >= 2 && b[0] === 0x1f && b[1] === 0x8b;
}

/**
 * Gunzip; throws one line naming the file when the stream is truncated or corrupt. zlib checks
 * the gzip trailer (CRC-32 and length of the decoded data), so a changed byte anywhere in the
 * compressed stream is caught here, not passed on as wrong voxels.
 */
export function gunzipOrThrow(path: string, b: Uint8Array): Uint8Array {
  try {
    const out = gunzipSync(b);
    return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    throw fileError(path, `truncated or corrupt gzip data (${why})`);
  }
}

/** Gzip (level 6 unless given). */
export function gzip(b: Uint8Array, level = 6): Uint8Array {
  const out = gzipSync(b, { level });
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

/** Product of the entries. */
export function prod(a: readonly number[]): number {
  let p = 1;
  for (const v of a) p *= v;
  return p;
}

/**
 * Reorder a first-axis-fastest array (NIfTI/NRRD memory order) of logical shape `shape`
 * into C order over the same axes (last axis fastest). Allocates a new array of the same type.
 */
export function fortranToC<T extends NumericArray>(src: T, shape: readonly number[]): T {
  const n = prod(shape);
  const ctor = src.constructor as new (n: number) => T;
  const out = new ctor(n);
  if (shape.length <= 1 || n === 0) {
    for (let i = 0; i < n; i++) out[i] = src[i]!;
    return out;
  }
  if (shape.length === 3) {
    const [nx, ny, nz] = shape as [number, number, number];
    // out[(x*ny + y)*nz + z] = src[x + nx*(y + ny*z)]
    let o = 0;
    for (let x = 0; x < nx; x++) {
      for (let y = 0; y < ny; y++) {
        let s = x + nx * y;
        const step = nx * ny;
        for (let z = 0; z < nz; z++, s += step) out[o++] = src[s]!;
      }
    }
    return out;
  }
  return walkFortran(src, shape, out, true);
}

/** Inverse of {@link fortranToC}: C order over `shape` to first-axis-fastest order. */
export function cToFortran<T extends NumericArray>(src: T, shape: readonly number[]): T {
  const ctor = src.constructor as new (n: number) => T;
  return walkFortran(src, shape, new ctor(prod(shape)), false);
}

/**
 * Walk C order over `shape` with an odometer tracking the first-axis-fastest offset; gather
 * (`out[c] = src[f]`, Fortran to C) or scatter (`out[f] = src[c]`, C to Fortran).
 */
function walkFortran<T extends NumericArray>(
  src: T,
  shape: readonly number[],
  out: T,
  gather: boolean,
): T {
  const n = out.length, r = shape.length;
  const fstride: number[] = [];
  let acc = 1;
  for (let a = 0; a < r; a++) {
    fstride.push(acc);
    acc *= shape[a]!;
  }
  const idx = new Array<number>(r).fill(0);
  let s = 0;
  for (let o = 0; o < n; o++) {
    if (gather) out[o] = src[s]!;
    else out[s] = src[o]!;
    for (let a = r - 1; a >= 0; a--) {
      idx[a]!++;
      s += fstride[a]!;
      if (idx[a]! < shape[a]!) break;
      s -= fstride[a]! * shape[a]!;
      idx[a] = 0;
    }
  }
  return out;
}

/** Element type names the readers and writers use. */
export type ElementType =
  | "uint8"
  | "int8"
  | "uint16"
  | "int16"
  | "uint32"
  | "int32"
  | "float32"
  | "float64";

/** Bytes per element and the typed-array constructor for an element type. */
export const ELEMENT: Record<
  ElementType,
  { bytes: number; ctor: new (n: number) => NumericArray }
> = {
  uint8: { bytes: 1, ctor: Uint8Array },
  int8: { bytes: 1, ctor: Int8Array },
  uint16: { bytes: 2, ctor: Uint16Array },
  int16: { bytes: 2, ctor: Int16Array },
  uint32: { bytes: 4, ctor: Uint32Array },
  int32: { bytes: 4, ctor: Int32Array },
  float32: { bytes: 4, ctor: Float32Array },
  float64: { bytes: 8, ctor: Float64Array },
};

/** The element type of a typed array. */
export function elementTypeOf(a: NumericArray): ElementType {
  if (a instanceof Uint8Array) return "uint8";
  if (a instanceof Int8Array) return "int8";
  if (a instanceof Uint16Array) return "uint16";
  if (a instanceof Int16Array) return "int16";
  if (a instanceof Uint32Array) return "uint32";
  if (a instanceof Int32Array) return "int32";
  if (a instanceof Float32Array) return "float32";
  return "float64";
}

const HOST_LITTLE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Decode `count` elements of `type` from `bytes` at `offset` with the given endianness. */
export function decodeElements(
  bytes: Uint8Array,
  offset: number,
  count: number,
  type: ElementType,
  littleEndian: boolean,
): NumericArray {
  const { bytes: size, ctor } = ELEMENT[type];
  const out = ctor === Uint8Array ? new Uint8Array(count) : new ctor(count);
  const raw = new Uint8Array(out.buffer, 0, count * size);
  raw.set(bytes.subarray(offset, offset + count * size));
  if (size > 1 && littleEndian !== HOST_LITTLE) {
    for (let i = 0; i < raw.length; i += size) {
      for (let a = i, b = i + size - 1; a < b; a++, b--) {
        const t = raw[a]!;
        raw[a] = raw[b]!;
        raw[b] = t;
      }
    }
  }
  return out;
}

/** Encode a typed array's elements as bytes with the given endianness. */
export function encodeElements(a: NumericArray, littleEndian: boolean): Uint8Array {
  const size = a.BYTES_PER_ELEMENT;
  const raw = new Uint8Array(a.byteLength);
  raw.set(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  if (size > 1 && littleEndian !== HOST_LITTLE) {
    for (let i = 0; i < raw.length; i += size) {
      for (let x = i, y = i + size - 1; x < y; x++, y--) {
        const t = raw[x]!;
        raw[x] = raw[y]!;
        raw[y] = t;
      }
    }
  }
  return raw;
}
