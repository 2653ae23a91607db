/**
 * HDF5 datasets through h5wasm's Node build (`h5wasm/node`), which reads real file paths
 * (its Emscripten FS is NODERAWFS, so no copying into a virtual FS is needed).
 *
 * Before handing a file to libhdf5 we check it ourselves (exists, HDF5 signature, superblock
 * end-of-file address within the file size), so missing, foreign and truncated files give ONE
 * line naming the file.
 *
 * Deeper corruption (a damaged object header, a deflate chunk that no longer inflates: zlib's
 * Adler-32 catches nearly every changed byte of a compressed chunk) makes libhdf5 fail inside
 * `H5Dread`. h5wasm's `Dataset.value` ignores that status and returns whatever the buffer holds
 * (zeros or garbage), while libhdf5 prints a multi-line `HDF5-DIAG` trace on stderr. So the data
 * is read here through h5wasm's low-level `get_dataset_data`, whose status is checked, and the
 * trace is captured while libhdf5 runs (libhdf5 writes it to fd 2 through `node:fs` `writeSync`,
 * which is redirected for the duration of the synchronous call) and summarised in the one-line
 * error: first and last frame, e.g. `H5Dread(): can't synchronously read data; H5Z_pipeline():
 * filter returned failure during read`. h5wasm's alternative, its throwing error handler, unwinds
 * the wasm stack without restoring it and crashes the module after ~1800 errors.
 *
 * Arrays come back exactly as stored: C order over the dataset's shape (h5py's order). The UA-MT
 * `mri_norm2.h5` files therefore give `(x, y, z)` directly.
 * @module
 */
import h5wasm from "h5wasm/node";
import fs from "node:fs";
import {
  ELEMENT,
  type ElementType,
  elementTypeOf,
  fileError,
  type NumericArray,
  oneLine,
  prod,
} from "./util.ts";

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

/** The parts of h5wasm's Emscripten module the reader calls (its `ready` resolves to it). */
interface H5Module {
  get_dataset_data(
    fileId: bigint,
    path: string,
    count: null,
    offset: null,
    strides: null,
    ptr: bigint,
  ): number;
  _malloc(n: number): number;
  _free(ptr: number): void;
  HEAPU8: Uint8Array;
}

let ready: Promise<unknown> | null = null;

/**
 * Run `fn` (synchronous libhdf5 work) with writes to fd 2 through `node:fs` captured instead of
 * printed; returns its result or error and the captured text. When `node:fs` cannot be patched,
 * nothing is captured (the trace is printed) and the caller still sees libhdf5's status.
 */
function captureHdf5Diagnostics<T>(
  fn: () => T,
): { value?: T; error?: unknown; diag: string } {
  const nodeFs = fs as unknown as { writeSync: (...a: unknown[]) => number };
  const original = nodeFs.writeSync;
  const chunks: string[] = [];
  const dec = new TextDecoder();
  const capture = (...a: unknown[]): number => {
    const [fd, buf, off, len] = a;
    if (fd !== 2) return original.apply(fs, a);
    if (typeof buf === "string") {
      chunks.push(buf);
      return buf.length;
    }
    if (ArrayBuffer.isView(buf)) {
      const b = new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
      const o = typeof off === "number" ? off : 0;
      const n = typeof len === "number" ? len : b.length - o;
      chunks.push(dec.decode(b.subarray(o, o + n)));
      return n;
    }
    return original.apply(fs, a);
  };
  let patched = false;
  try {
    nodeFs.writeSync = capture;
    patched = nodeFs.writeSync === capture;
  } catch {
    patched = false;
  }
  try {
    return { value: fn(), diag: chunks.join("") };
  } catch (e) {
    return { error: e, diag: chunks.join("") };
  } finally {
    if (patched) nodeFs.writeSync = original;
  }
}

/**
 * One-line summary of an `HDF5-DIAG` trace: the first (API) and the last (innermost) frame as
 * `function(): description`; "" when the text holds no frame.
 */
function summarizeHdf5Diagnostics(diag: string): string {
  const frames = [...diag.matchAll(/#\d+: .*? in ([A-Za-z0-9_]+\(\)): ([^\n]*)/g)].map((m) =>
    `${m[1]}: ${m[2]!.trim()}`
  );
  if (frames.length === 0) return diag.includes("HDF5-DIAG") ? "libhdf5 reported an error" : "";
  const first = frames[0]!, last = frames[frames.length - 1]!;
  return frames.length === 1 ? first : `${first}; ${last}`;
}

function readDataset(
  m: H5Module,
  fileId: bigint,
  path: string,
  name: string,
  h5path: string,
  dtype: ElementType,
  count: number,
): NumericArray {
  const { bytes, ctor } = ELEMENT[dtype];
  const nbytes = count * bytes;
  const ptr = m._malloc(Math.max(nbytes, 1));
  if (ptr === 0) {
    throw fileError(path, `cannot read '${name}': out of memory for ${nbytes} bytes`);
  }
  try {
    const status = m.get_dataset_data(fileId, h5path, null, null, null, BigInt(ptr));
    if (status < 0) {
      throw fileError(
        path,
        `cannot read the data of '${name}' (H5Dread failed: a corrupt chunk or a filter that does not decode)`,
      );
    }
    const out = new ctor(count);
    new Uint8Array(out.buffer).set(m.HEAPU8.subarray(ptr, ptr + nbytes));
    return out;
  } finally {
    m._free(ptr);
  }
}

/**
 * Read the named datasets of an HDF5 file (all of them must exist). Every failure is one line
 * naming the file: missing, foreign, truncated, corrupt structure or a data chunk that does not
 * decode (with libhdf5's trace summarised, not printed).
 */
export async function readHdf5(path: string, names: string[]): Promise<Record<string, Hdf5Array>> {
  await checkHdf5File(path);
  ready ??= h5wasm.ready;
  const m = (await ready) as H5Module;
  const r = captureHdf5Diagnostics(() => readOpen(m, path, names));
  const why = summarizeHdf5Diagnostics(r.diag);
  if (r.error !== undefined) {
    const msg = r.error instanceof Error ? r.error.message : String(r.error);
    const named = msg.startsWith(`${path}: `) ? msg : `${path}: ${msg}`;
    throw new Error(oneLine(`${named}${why ? ` [libhdf5: ${why}]` : ""}`));
  }
  if (why !== "") {
    // libhdf5 reported an error that h5wasm did not pass on: the values cannot be trusted.
    throw fileError(path, `libhdf5 error while reading ${names.join(", ")} (${why})`);
  }
  return r.value!;
}

function readOpen(m: H5Module, path: string, names: string[]): Record<string, Hdf5Array> {
  let f: InstanceType<typeof h5wasm.File>;
  try {
    f = new h5wasm.File(path, "r");
  } catch (e) {
    throw fileError(
      path,
      `libhdf5 could not open the file (${e instanceof Error ? e.message : e})`,
    );
  }
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
      let meta;
      try {
        meta = ds.metadata;
      } catch (e) {
        throw fileError(
          path,
          `cannot read the metadata of '${name}' (${e instanceof Error ? e.message : e})`,
        );
      }
      const dtype = dtypeOf(meta);
      if (dtype === null) {
        throw fileError(
          path,
          `dataset '${name}' has an unsupported datatype (class ${meta.type}, ${meta.size} bytes)`,
        );
      }
      const shape = ds.shape ?? [];
      const data = readDataset(m, f.file_id, path, name, ds.path, dtype, prod(shape));
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
