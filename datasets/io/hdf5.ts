/**
 * HDF5 datasets through h5wasm's Node build (`h5wasm/node`), which reads real file paths
 * (its Emscripten FS is NODERAWFS, so no copying into a virtual FS is needed).
 *
 * Before handing a file to libhdf5 we check it ourselves (exists, HDF5 signature, superblock
 * end-of-file address within the file size), so missing, foreign and truncated files give ONE
 * line naming the file; libhdf5's own diagnostics for deeper corruption may still be printed on
 * stderr by h5wasm, but the thrown Error is one line.
 *
 * Arrays come back exactly as stored: C order over the dataset's shape (h5py's order). The UA-MT
 * `mri_norm2.h5` files therefore give `(x, y, z)` directly.
 * @module
 */
import h5wasm from "h5wasm/node";
import { type ElementType, elementTypeOf, fileError, type NumericArray, prod } from "./util.ts";

/** One dataset read from an HDF5 file. */
export interface Hdf5Array {
  data: NumericArray;
  shape: number[];
  /** Element type. */
  dtype: ElementType;
}

const SIGNATURE = [0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a];

function readUint(dv: DataView, off: number, size: number): number {
  if (size === 8) {
    const lo = dv.getUint32(off, true);
    const hi = dv.getUint32(off + 4, true);
    if (hi === 0xffffffff && lo === 0xffffffff) return -1;
    return hi * 4294967296 + lo;
  }
  if (size === 4) return dv.getUint32(off, true);
  if (size === 2) return dv.getUint16(off, true);
  return dv.getUint8(off);
}

/** Validate the signature and superblock of an HDF5 file; throws one line naming the file. */
export async function checkHdf5File(path: string): Promise<void> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw fileError(path, "file not found");
    throw fileError(path, `cannot open file (${e instanceof Error ? e.message : String(e)})`);
  }
  try {
    const size = (await file.stat()).size;
    if (!(await file.stat()).isFile) throw fileError(path, "not a regular file");
    // The superblock may sit at 0, 512, 1024, 2048, ... (user block).
    for (let base = 0; base + 8 <= size; base = base === 0 ? 512 : base * 2) {
      const head = new Uint8Array(Math.min(64, size - base));
      await file.seek(base, Deno.SeekMode.Start);
      let got = 0;
      while (got < head.length) {
        const r = await file.read(head.subarray(got));
        if (r === null) break;
        got += r;
      }
      if (!SIGNATURE.every((v, i) => head[i] === v)) continue;
      const dv = new DataView(head.buffer);
      const version = head[8]!;
      let eofOff: number;
      let so: number;
      if (version === 0 || version === 1) {
        so = head[13]!;
        eofOff = (version === 0 ? 24 : 28) + 2 * so;
      } else if (version === 2 || version === 3) {
        so = head[9]!;
        eofOff = 12 + 2 * so;
      } else {
        throw fileError(path, `unsupported HDF5 superblock version ${version}`);
      }
      if (![2, 4, 8].includes(so) || eofOff + so > got) {
        throw fileError(path, "corrupt HDF5 superblock (bad size of offsets or truncated)");
      }
      const baseAddr = readUint(dv, eofOff - 2 * so, so);
      const eof = readUint(dv, eofOff, so);
      const absEof = (baseAddr > 0 ? baseAddr : base === 0 ? 0 : base) + eof;
      if (eof >= 0 && absEof > size) {
        throw fileError(
          path,
          `truncated HDF5 file: ${size} bytes, superblock says ${absEof}`,
        );
      }
      return;
    }
    throw fileError(path, "bad HDF5 signature (not an HDF5 file)");
  } finally {
    file.close();
  }
}

function dtypeOf(meta: { type: number; size: number; signed: boolean }): ElementType | null {
  if (meta.type === 1) return meta.size === 4 ? "float32" : meta.size === 8 ? "float64" : null;
  if (meta.type === 0) {
    const m: Record<number, ElementType> = meta.signed
      ? { 1: "int8", 2: "int16", 4: "int32" }
      : { 1: "uint8", 2: "uint16", 4: "uint32" };
    return m[meta.size] ?? null;
  }
  return null;
}

let ready: Promise<unknown> | null = null;

/** Read the named datasets of an HDF5 file (all of them must exist). */
export async function readHdf5(path: string, names: string[]): Promise<Record<string, Hdf5Array>> {
  await checkHdf5File(path);
  ready ??= h5wasm.ready;
  await ready;
  const f = new h5wasm.File(path, "r");
  if (typeof f.file_id !== "bigint" || f.file_id < 0n) {
    throw fileError(path, "libhdf5 could not open the file (corrupt HDF5 structure)");
  }
  try {
    const out: Record<string, Hdf5Array> = {};
    for (const name of names) {
      let ds: unknown;
      try {
        ds = f.get(name);
      } catch (e) {
        throw fileError(path, `cannot read '${name}' (${e instanceof Error ? e.message : e})`);
      }
      if (!(ds instanceof h5wasm.Dataset)) {
        let keys = "";
        try {
          keys = f.keys().join(", ");
        } catch { /* keys unreadable */ }
        throw fileError(path, `no dataset '${name}' (has: ${keys || "nothing readable"})`);
      }
      const meta = ds.metadata;
      const dtype = dtypeOf(meta);
      if (dtype === null) {
        throw fileError(
          path,
          `dataset '${name}' has an unsupported datatype (class ${meta.type}, ${meta.size} bytes)`,
        );
      }
      const shape = ds.shape ?? [];
      let value: unknown;
      try {
        value = ds.value;
      } catch (e) {
        throw fileError(
          path,
          `cannot read data of '${name}' (corrupt chunk or filter: ${
            e instanceof Error ? e.message : String(e)
          })`,
        );
      }
      if (!ArrayBuffer.isView(value) || value instanceof DataView) {
        throw fileError(path, `dataset '${name}' did not read as a numeric array`);
      }
      const data = value as NumericArray;
      if (data.length !== prod(shape)) {
        throw fileError(
          path,
          `dataset '${name}' has ${data.length} values, its shape ${shape.join("x")} says ${
            prod(shape)
          }`,
        );
      }
      out[name] = { data, shape, dtype };
    }
    return out;
  } finally {
    f.close();
  }
}

/** Write datasets (C order over their shapes) to a new HDF5 file with h5wasm's writer. */
export async function writeHdf5(
  path: string,
  datasets: Record<string, { data: NumericArray; shape: number[] }>,
  options: { gzip?: number } = {},
): Promise<void> {
  ready ??= h5wasm.ready;
  await ready;
  const f = new h5wasm.File(path, "w");
  try {
    for (const [name, { data, shape }] of Object.entries(datasets)) {
      elementTypeOf(data);
      if (options.gzip !== undefined) {
        f.create_dataset({
          name,
          data,
          shape,
          chunks: shape,
          compression: "gzip",
          compression_opts: options.gzip,
        });
      } else {
        f.create_dataset({ name, data, shape });
      }
    }
  } finally {
    f.close();
  }
}
