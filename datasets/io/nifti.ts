/**
 * NIfTI-1 reader (`.nii`, `.nii.gz`) on top of nifti-reader-js, and a small NIfTI-1 writer.
 *
 * Reading: the header is parsed by nifti-reader-js (`readHeader`); decompression, the checks and
 * the voxel decoding are ours so every failure is ONE line naming the file: missing file, corrupt
 * or truncated gzip, bad magic / header size, unsupported datatype, bad dims, and a data size that
 * does not match the header.
 *
 * Axis order: NIfTI stores voxels x-fastest (`offset = i + nx*(j + ny*k)`). We return the array in
 * our C order over (x, y, z[, t]) (x slowest), i.e. `data[(i*ny + j)*nz + k]` is file voxel
 * (i, j, k): the same indexing nibabel's `get_fdata()[i, j, k]` gives. No reorientation is done
 * (the affine is ignored, as the reference code ignores it).
 *
 * Scaling: when `scl_slope` is non-zero and not (1, 0), values become `slope * v + inter`
 * (float32, or float64 for float64 files), as the NIfTI-1 standard says; `scl_slope == 0`
 * means "no scaling".
 * @module
 */
import * as nifti from "nifti-reader-js";
import {
  cToFortran,
  decodeElements,
  ELEMENT,
  type ElementType,
  elementTypeOf,
  encodeElements,
  fileError,
  fortranToC,
  gunzipOrThrow,
  gzip,
  isGzip,
  type NumericArray,
  prod,
  readBytes,
} from "./util.ts";

/** NIfTI-1 datatype codes this reader accepts, and their element types. */
export const NIFTI_DATATYPES: Record<number, ElementType> = {
  2: "uint8",
  4: "int16",
  8: "int32",
  16: "float32",
  64: "float64",
  256: "int8",
  512: "uint16",
  768: "uint32",
};

const DATATYPE_NAMES: Record<number, string> = {
  0: "none",
  1: "binary",
  32: "complex64",
  128: "rgb24",
  1024: "int64",
  1280: "uint64",
  1536: "float128",
  1792: "complex128",
  2048: "complex256",
  2304: "rgba32",
};

/** A volume read from a NIfTI-1 file. */
export interface NiftiVolume {
  /** Voxels in C order over `shape` (x slowest); scaled when the header asks for it. */
  data: NumericArray;
  /** Dimensions dim[1..dim[0]] (x, y, z[, t ...]). */
  shape: number[];
  /** Voxel sizes pixdim[1..3] (|values|; 1 where missing or zero). */
  spacing: [number, number, number];
  /** Stored element type (before scaling). */
  datatype: ElementType;
  /** scl_slope and scl_inter as stored. */
  sclSlope: number;
  sclInter: number;
  /** Whether slope/intercept were applied. */
  scaled: boolean;
}

/** Read a NIfTI-1 `.nii` or `.nii.gz` file (gzip detected by its magic bytes). */
export async function readNifti(path: string): Promise<NiftiVolume> {
  return parseNifti(path, await readBytes(path));
}

/** Parse NIfTI-1 bytes; `path` is only used in error messages. */
export function parseNifti(path: string, fileBytes: Uint8Array): NiftiVolume {
  let bytes = fileBytes;
  if (isGzip(bytes)) bytes = gunzipOrThrow(path, bytes);
  else if (path.endsWith(".gz")) throw fileError(path, "named .gz but is not gzip data");
  if (bytes.length < 348) {
    throw fileError(path, `too short for a NIfTI-1 header (${bytes.length} bytes < 348)`);
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const le = dv.getInt32(0, true) === 348;
  if (!le && dv.getInt32(0, false) !== 348) {
    throw fileError(path, "bad NIfTI-1 header: sizeof_hdr is not 348");
  }
  const magic = String.fromCharCode(bytes[344]!, bytes[345]!, bytes[346]!);
  if (bytes[347] !== 0 || (magic !== "n+1" && magic !== "ni1")) {
    throw fileError(path, `bad NIfTI-1 magic ${JSON.stringify(magic)} (expected "n+1")`);
  }
  if (magic === "ni1") {
    throw fileError(path, "is a .hdr/.img pair header (magic ni1); only single-file .nii is read");
  }
  const ab = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  let h: nifti.NIFTI1;
  try {
    const parsed = nifti.readHeader(ab as ArrayBuffer);
    if (!(parsed instanceof nifti.NIFTI1)) throw new Error("not a NIfTI-1 header");
    h = parsed;
  } catch (e) {
    throw fileError(path, `bad NIfTI-1 header (${e instanceof Error ? e.message : String(e)})`);
  }
  const ndim = h.dims[0] ?? 0;
  if (!Number.isInteger(ndim) || ndim < 1 || ndim > 7) {
    throw fileError(path, `bad dims: dim[0] = ${ndim} (expected 1..7)`);
  }
  const shape = h.dims.slice(1, 1 + ndim);
  if (shape.some((d) => !Number.isInteger(d) || d < 1)) {
    throw fileError(path, `bad dims: [${shape.join(", ")}] (each must be >= 1)`);
  }
  // Trailing singleton dims beyond 3 are dropped (e.g. 4-D with t = 1).
  while (shape.length > 3 && shape[shape.length - 1] === 1) shape.pop();
  const type = NIFTI_DATATYPES[h.datatypeCode];
  if (type === undefined) {
    const name = DATATYPE_NAMES[h.datatypeCode] ?? "unknown";
    throw fileError(
      path,
      `unsupported NIfTI datatype ${h.datatypeCode} (${name}); supported: uint8, int8, int16, uint16, int32, uint32, float32, float64`,
    );
  }
  const elemBytes = ELEMENT[type].bytes;
  if (h.numBitsPerVoxel !== elemBytes * 8) {
    throw fileError(
      path,
      `bitpix ${h.numBitsPerVoxel} does not match datatype ${type} (${elemBytes * 8} bits)`,
    );
  }
  const offset = Math.floor(h.vox_offset);
  if (!(offset >= 348)) throw fileError(path, `bad vox_offset ${h.vox_offset} (must be >= 348)`);
  const n = prod(shape);
  const need = n * elemBytes;
  const have = bytes.length - offset;
  if (have !== need) {
    throw fileError(
      path,
      `data size ${have} bytes after vox_offset ${offset} does not match the header (${
        shape.join("x")
      } ${type} = ${need} bytes)${have < need ? ": file truncated" : ""}`,
    );
  }
  const fileOrder = decodeElements(bytes, offset, n, type, le);
  let data: NumericArray = fortranToC(fileOrder, shape);
  const slope = h.scl_slope;
  const inter = h.scl_inter;
  const scaled = Number.isFinite(slope) && slope !== 0 &&
    !(slope === 1 && (inter === 0 || !Number.isFinite(inter)));
  if (scaled) {
    const b = Number.isFinite(inter) ? inter : 0;
    const out = type === "float64" ? new Float64Array(n) : new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = slope * data[i]! + b;
    data = out;
  }
  const sp = (i: number): number => {
    const v = Math.abs(h.pixDims[i] ?? 0);
    return Number.isFinite(v) && v > 0 ? v : 1;
  };
  return {
    data,
    shape,
    spacing: [sp(1), sp(2), sp(3)],
    datatype: type,
    sclSlope: slope,
    sclInter: inter,
    scaled,
  };
}

/** What {@link writeNifti} writes. */
export interface NiftiWriteInput {
  /** Voxels in our C order over `shape` (x slowest). Its type picks the NIfTI datatype. */
  data: Uint8Array | Int16Array | Int32Array | Float32Array | Float64Array;
  /** (x, y, z[, t]). */
  shape: number[];
  /** Voxel sizes; [1,1,1] when omitted. */
  spacing?: [number, number, number];
  /** scl_slope / scl_inter to store (default 1 / 0; the data is written as given). */
  sclSlope?: number;
  sclInter?: number;
  /** Byte order (default little-endian). */
  littleEndian?: boolean;
  /** Header description (<= 79 ASCII chars). */
  description?: string;
}

const WRITE_CODES: Partial<Record<ElementType, number>> = {
  uint8: 2,
  int16: 4,
  int32: 8,
  float32: 16,
  float64: 64,
};

/** Encode a single-file NIfTI-1 (`n+1`, vox_offset 352); gzip when `gz` is true. */
export function encodeNifti(v: NiftiWriteInput, gz = false): Uint8Array {
  const type = elementTypeOf(v.data);
  const code = WRITE_CODES[type];
  if (code === undefined) throw new Error(`writeNifti: unsupported array type ${type}`);
  if (v.shape.length < 1 || v.shape.length > 7) {
    throw new Error(`writeNifti: rank ${v.shape.length} not in 1..7`);
  }
  if (prod(v.shape) !== v.data.length) {
    throw new Error(
      `writeNifti: shape ${v.shape.join("x")} does not match ${v.data.length} values`,
    );
  }
  const le = v.littleEndian ?? true;
  const payload = encodeElements(cToFortran(v.data, v.shape), le);
  const out = new Uint8Array(352 + payload.length);
  const dv = new DataView(out.buffer);
  const sp = v.spacing ?? [1, 1, 1];
  dv.setInt32(0, 348, le);
  dv.setInt16(40, v.shape.length, le);
  for (let i = 0; i < 7; i++) dv.setInt16(42 + 2 * i, v.shape[i] ?? 1, le);
  dv.setInt16(70, code, le);
  dv.setInt16(72, v.data.BYTES_PER_ELEMENT * 8, le);
  dv.setFloat32(76, 1, le); // pixdim[0] = qfac
  for (let i = 0; i < 3; i++) dv.setFloat32(80 + 4 * i, sp[i]!, le);
  for (let i = 3; i < 7; i++) dv.setFloat32(80 + 4 * i, 1, le);
  dv.setFloat32(108, 352, le); // vox_offset
  dv.setFloat32(112, v.sclSlope ?? 1, le);
  dv.setFloat32(116, v.sclInter ?? 0, le);
  out[123] = 2; // xyzt_units: mm
  const desc = (v.description ?? "semiseg-bench").slice(0, 79);
  for (let i = 0; i < desc.length; i++) out[148 + i] = desc.charCodeAt(i) & 0x7f;
  dv.setInt16(252, 0, le); // qform_code
  dv.setInt16(254, 1, le); // sform_code: scanner
  dv.setFloat32(280, sp[0], le); // srow_x
  dv.setFloat32(296 + 4, sp[1], le); // srow_y
  dv.setFloat32(312 + 8, sp[2], le); // srow_z
  out.set([0x6e, 0x2b, 0x31, 0x00], 344); // "n+1\0"
  out.set(payload, 352); // bytes 348..351: no extension
  return gz ? gzip(out) : out;
}

/** Write a NIfTI-1 file; gzip-compressed when `path` ends in `.gz` (or `gz` says so). */
export async function writeNifti(path: string, v: NiftiWriteInput, gz?: boolean): Promise<void> {
  await Deno.writeFile(path, encodeNifti(v, gz ?? path.endsWith(".gz")));
}
