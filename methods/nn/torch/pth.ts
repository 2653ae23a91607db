/**
 * `.pth` files (`torch.save`): reading both container formats and writing the zip one.
 *
 * - Zip (torch >= 1.6, `_use_new_zipfile_serialization=True`): `<archive>/data.pkl` (the
 *   object, each storage a persistent id `('storage', torch.FloatStorage, key, location,
 *   numel)`), `<archive>/data/<key>` (the storage's raw bytes, little-endian unless
 *   `<archive>/byteorder` says `big`), `<archive>/version`.
 * - Legacy (torch 0.4-1.5, and later with `_use_new_zipfile_serialization=False`): a sequence
 *   of pickles in one file: the magic number 0x1950a86a20f9469cfc6c, the protocol version
 *   1001, a sys-info dict, the object (persistent ids `('storage', type, root_key, location,
 *   numel, view_metadata)`, or `('module', cls, source_file, source)` for pickled modules), the
 *   sorted list of storage keys, then each storage in that order as an int64 element count
 *   followed by its raw bytes. UA-MT's released checkpoints (torch 0.4.1) are of this kind.
 *
 * Tensors are rebuilt from `torch._utils._rebuild_tensor_v2` / `_rebuild_tensor` /
 * `_rebuild_parameter`; `collections.OrderedDict` is a Map, `set` a Set. Other globals stay inert
 * placeholders (nothing from a file is executed); they only matter if they stand where the
 * state_dict is looked for (`statedict.ts`). Errors are one line, starting with the label.
 *
 * The writer emits what PyTorch 1.13's `torch.load(path, weights_only=True)` accepts: an
 * OrderedDict of `_rebuild_tensor_v2` tensors, one storage per tensor, pickle protocol 2.
 * @module
 */
import { BufferReader, PickleWriter, type PyPlaceholder, unpickle } from "./pickle.ts";
import {
  ELEMENT_SIZE,
  STORAGE_CLASS,
  STORAGE_DTYPES,
  type TorchDType,
  type TorchStorage,
  TorchTensor,
} from "./tensor.ts";
import { looksLikeZip, writeZip, ZipReader } from "./zip.ts";

/** What {@link parsePth} read. */
export interface PthContents {
  /** The saved object: Maps for dicts, arrays for lists/tuples, {@link TorchTensor}s. */
  value: unknown;
  format: "zip" | "legacy";
  /** `module.name` of globals left as placeholders (e.g. a pickled model class). */
  unresolved: string[];
}

/** The legacy magic number 0x1950a86a20f9469cfc6c as a LONG1 operand (10 bytes, LE). */
const MAGIC_LONG1 = Uint8Array.of(
  0x8a,
  0x0a,
  0x6c,
  0xfc,
  0x9c,
  0x46,
  0xf9,
  0x20,
  0x6a,
  0xa8,
  0x50,
  0x19,
  0x2e, // STOP
);

/**
 * Where the legacy format's first pickle (the magic number) ends, or -1. Compared as bytes:
 * pickleparser cannot decode a 10-byte LONG1. Protocol 2 puts it right after `PROTO 2`;
 * protocols 4-5 after a FRAME header.
 */
function legacyMagicEnd(b: Uint8Array): number {
  if (b.length < 2 || b[0] !== 0x80) return -1;
  for (const at of [2, 11]) {
    if (b.length >= at + MAGIC_LONG1.length && MAGIC_LONG1.every((x, i) => b[at + i] === x)) {
      return at + MAGIC_LONG1.length;
    }
  }
  return -1;
}
const LEGACY_PROTOCOL_VERSION = 1001;

// deno-lint-ignore no-explicit-any
type Fn = (...args: any[]) => any;

interface StorageClass {
  (): never;
  storageDtype: TorchDType;
}

function storageClass(dtype: TorchDType): StorageClass {
  const f = function () {
    throw new Error("a storage class cannot be called");
  } as unknown as StorageClass;
  f.storageDtype = dtype;
  return f;
}

function asStr(v: unknown): string | null {
  if (typeof v === "string") return v;
  if (v instanceof Uint8Array) return new TextDecoder().decode(v);
  return null;
}

function asInts(v: unknown, what: string): number[] {
  if (!Array.isArray(v)) throw new Error(`${what} is not a tuple`);
  return v.map((x) => {
    const n = typeof x === "bigint" ? Number(x) : x;
    if (typeof n !== "number" || !Number.isSafeInteger(n)) throw new Error(`${what}: bad ${x}`);
    return n;
  });
}

function isStorage(v: unknown): v is TorchStorage {
  return typeof v === "object" && v !== null && "dtype" in v && "numel" in v && "bytes" in v;
}

function rebuildTensor(storage: unknown, offset: unknown, size: unknown, stride: unknown) {
  if (!isStorage(storage)) throw new Error("_rebuild_tensor: first argument is not a storage");
  return TorchTensor.view(storage, Number(offset), asInts(size, "size"), asInts(stride, "stride"));
}

function orderedDict(items?: unknown): Map<unknown, unknown> {
  const m = new Map<unknown, unknown>();
  if (Array.isArray(items)) { for (const kv of items) if (Array.isArray(kv)) m.set(kv[0], kv[1]); }
  return m;
}

/** The globals a checkpoint may call, mapped to our own functions (no code from the file). */
function torchGlobal(module: string, name: string): Fn | undefined {
  if (module === "collections" && name === "OrderedDict") {
    return function OrderedDict(items?: unknown) {
      return orderedDict(items);
    };
  }
  if (module === "torch._utils") {
    if (name === "_rebuild_tensor_v2" || name === "_rebuild_tensor") return rebuildTensor;
    if (name === "_rebuild_parameter" || name === "_rebuild_parameter_with_state") {
      return (data: unknown) => data;
    }
  }
  if (module === "torch.nn.parameter" && name === "Parameter") {
    return function Parameter(data: unknown) {
      return data;
    };
  }
  if (
    (module === "torch._tensor" || module === "torch.tensor") && name === "_rebuild_from_type_v2"
  ) {
    return (func: Fn, _type: unknown, args: unknown[]) => func(...args);
  }
  if (module === "torch" && name === "Size") return (dims: unknown) => asInts(dims, "torch.Size");
  if ((module === "__builtin__" || module === "builtins") && name === "set") {
    return function set(items?: unknown) {
      return new Set(Array.isArray(items) ? items : []);
    };
  }
  if ((module === "torch" || module === "torch.cuda") && STORAGE_DTYPES[name] !== undefined) {
    return storageClass(STORAGE_DTYPES[name]!);
  }
  return undefined;
}

function storageDtype(cls: unknown, label: string): TorchDType {
  const d = (cls as Partial<StorageClass> | null)?.storageDtype;
  if (d === undefined) {
    const p = cls as Partial<PyPlaceholder> | null;
    const what = p?.__name__ !== undefined ? `${p.__module__}.${p.__name__}` : String(cls);
    throw new Error(`${label}: unsupported storage type ${what}`);
  }
  return d;
}

/** Read a checkpoint held in memory (zip or legacy, see the module doc). */
export function parsePth(bytes: Uint8Array, label = "checkpoint"): PthContents {
  if (looksLikeZip(bytes)) return parseZip(bytes, label);
  const magicEnd = legacyMagicEnd(bytes);
  if (magicEnd > 0) return parseLegacy(bytes, magicEnd, label);
  if (bytes.length >= 262 && new TextDecoder().decode(bytes.subarray(257, 262)) === "ustar") {
    throw new Error(
      `${label}: a tar-format checkpoint (torch < 0.1.10) is not supported; re-save it with a newer torch`,
    );
  }
  throw new Error(
    `${label}: not a PyTorch checkpoint (neither a zip archive nor the legacy magic number; ${bytes.length} bytes)`,
  );
}

/** Read the checkpoint file at `path`. */
export async function loadPth(path: string): Promise<PthContents> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    throw new Error(`${path}: cannot read (${e instanceof Error ? e.message : e})`);
  }
  return parsePth(bytes, path);
}

function parseZip(bytes: Uint8Array, label: string): PthContents {
  const zip = new ZipReader(bytes, label);
  const names = zip.names();
  const pklName = names.find((n) => /^[^/]+\/data\.pkl$/.test(n));
  if (pklName === undefined) {
    throw new Error(
      `${label}: zip archive without <archive>/data.pkl: not a torch.save checkpoint`,
    );
  }
  const prefix = pklName.slice(0, pklName.indexOf("/"));
  if (zip.has(`${prefix}/constants.pkl`)) {
    throw new Error(
      `${label}: a TorchScript archive (torch.jit.save): load it in PyTorch and torch.save(model.state_dict())`,
    );
  }
  let bigEndian = false;
  if (zip.has(`${prefix}/byteorder`)) {
    bigEndian = new TextDecoder().decode(zip.read(`${prefix}/byteorder`)).trim() === "big";
  }
  const storages = new Map<string, TorchStorage>();
  const persistentLoad = (pid: unknown): TorchStorage => {
    if (!Array.isArray(pid) || asStr(pid[0]) !== "storage" || pid.length < 5) {
      const kind = Array.isArray(pid) ? asStr(pid[0]) : null;
      throw new Error(`unsupported persistent id ${JSON.stringify(kind ?? pid)}`);
    }
    const key = asStr(pid[2]) ?? String(pid[2]);
    const dtype = storageDtype(pid[1], label);
    let st = storages.get(key);
    if (st === undefined) {
      const rec = `${prefix}/data/${key}`;
      if (!zip.has(rec)) throw new Error(`${label}: storage record ${rec} is missing`);
      let data = zip.read(rec);
      if (bigEndian) data = swapBytes(data, ELEMENT_SIZE[dtype]);
      st = { key, dtype, numel: Math.floor(data.length / ELEMENT_SIZE[dtype]), bytes: data };
      storages.set(key, st);
    }
    return st;
  };
  const { value, unresolved } = unpickle(new BufferReader(zip.read(pklName)), {
    label: `${label}: ${pklName}`,
    resolveGlobal: torchGlobal,
    persistentLoad,
  });
  return { value, format: "zip", unresolved };
}

function swapBytes(b: Uint8Array, size: number): Uint8Array {
  if (size === 1) return b;
  const out = new Uint8Array(b.length);
  for (let i = 0; i + size <= b.length; i += size) {
    for (let j = 0; j < size; j++) out[i + j] = b[i + size - 1 - j]!;
  }
  return out;
}

function parseLegacy(bytes: Uint8Array, magicEnd: number, label: string): PthContents {
  const r = new BufferReader(bytes);
  r.skip(magicEnd);
  const proto = unpickle(r, { label: `${label}: protocol version` }).value;
  if (proto !== LEGACY_PROTOCOL_VERSION) {
    throw new Error(`${label}: legacy protocol version ${proto} (expected 1001)`);
  }
  const sys = unpickle(r, { label: `${label}: sys info` }).value;
  if (sys instanceof Map && sys.get("little_endian") === false) {
    throw new Error(`${label}: a big-endian legacy checkpoint is not supported`);
  }
  const storages = new Map<string, TorchStorage>();
  const persistentLoad = (pid: unknown): unknown => {
    const kind = Array.isArray(pid) ? asStr(pid[0]) : null;
    if (kind === "module") return pid instanceof Array ? pid[1] : undefined; // the class
    if (kind !== "storage" || !Array.isArray(pid) || pid.length < 5) {
      throw new Error(`unsupported persistent id ${JSON.stringify(kind ?? pid)}`);
    }
    const dtype = storageDtype(pid[1], label);
    const rootKey = asStr(pid[2]) ?? String(pid[2]);
    let root = storages.get(rootKey);
    if (root === undefined) {
      root = { key: rootKey, dtype, numel: Number(pid[4]), bytes: null };
      storages.set(rootKey, root);
    }
    const view = pid[5];
    if (!Array.isArray(view)) return root;
    const viewKey = asStr(view[0]) ?? String(view[0]);
    let st = storages.get(viewKey);
    if (st === undefined) {
      st = {
        key: viewKey,
        dtype,
        numel: Number(view[2]),
        bytes: null,
        root,
        viewOffset: Number(view[1]),
      };
      storages.set(viewKey, st);
    }
    return st;
  };
  const main = unpickle(r, { label, resolveGlobal: torchGlobal, persistentLoad });
  const keys = unpickle(r, { label: `${label}: storage keys` }).value;
  if (!Array.isArray(keys)) throw new Error(`${label}: the storage key list is not a list`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let p = r.position;
  for (const k of keys) {
    const key = asStr(k) ?? String(k);
    const st = storages.get(key);
    if (st === undefined) throw new Error(`${label}: storage ${key} is listed but never used`);
    if (p + 8 > bytes.length) {
      throw new Error(
        `${label}: truncated: storage ${key}'s header at byte ${p} lies past the end (${bytes.length} bytes)`,
      );
    }
    const numel = Number(dv.getBigInt64(p, true));
    const n = numel * ELEMENT_SIZE[st.dtype];
    if (numel < 0 || p + 8 + n > bytes.length) {
      throw new Error(
        `${label}: truncated: storage ${key} needs ${n} bytes at byte ${
          p + 8
        }, the file has ${bytes.length}`,
      );
    }
    st.numel = numel;
    st.bytes = bytes.subarray(p + 8, p + 8 + n);
    p += 8 + n;
  }
  return { value: main.value, format: "legacy", unresolved: main.unresolved };
}

/** Options of {@link encodePth}. */
export interface EncodeOptions {
  /** The archive's folder name (torch uses the file's stem; any name loads). */
  archive?: string;
}

const ORDERED_DICT = { module: "collections", name: "OrderedDict" };
const REBUILD_V2 = { module: "torch._utils", name: "_rebuild_tensor_v2" };

function contiguousStrides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  for (let i = shape.length - 1, m = 1; i >= 0; i--) {
    s[i] = m;
    m *= shape[i]!;
  }
  return s;
}

function emptyOrderedDict(w: PickleWriter): void {
  w.memoGlobal(ORDERED_DICT).tupleN(0).reduce();
}

/**
 * A zip-format `.pth` of `tensors` (a state_dict, in the given order): `torch.load(f,
 * weights_only=True)` returns an OrderedDict of CPU tensors. Float16/bfloat16 are not written.
 */
export function encodePth(
  tensors: Iterable<readonly [string, TorchTensor]>,
  opts: EncodeOptions = {},
): Uint8Array {
  const archive = opts.archive ?? "archive";
  if (!/^[A-Za-z0-9_.-]+$/.test(archive)) throw new Error(`encodePth: bad archive name ${archive}`);
  const w = new PickleWriter();
  emptyOrderedDict(w);
  w.mark();
  const records: { name: string; data: Uint8Array }[] = [];
  for (const [key, t] of tensors) {
    const id = String(records.length);
    w.str(key);
    w.memoGlobal(REBUILD_V2);
    w.mark(); // the arguments of _rebuild_tensor_v2
    w.mark().memoStr("storage").memoGlobal({ module: "torch", name: STORAGE_CLASS[t.dtype] });
    w.str(id).memoStr("cpu").int(t.numel).tuple().persistentId();
    w.int(0).intTuple(t.shape).intTuple(contiguousStrides(t.shape)).bool(false);
    emptyOrderedDict(w); // backward_hooks
    w.tuple().reduce();
    records.push({ name: `${archive}/data/${id}`, data: t.toBytes() });
  }
  w.setItems();
  const enc = new TextEncoder();
  return writeZip([
    { name: `${archive}/data.pkl`, data: w.finish() },
    { name: `${archive}/byteorder`, data: enc.encode("little") },
    ...records,
    { name: `${archive}/version`, data: enc.encode("3\n") },
  ]);
}

/** Write {@link encodePth}'s archive to `path` (through a temporary file, then a rename). */
export async function savePth(
  path: string,
  tensors: Iterable<readonly [string, TorchTensor]>,
  opts: EncodeOptions = {},
): Promise<void> {
  const bytes = encodePth(tensors, opts);
  const tmp = `${path}.tmp-${Deno.pid}`;
  await Deno.writeFile(tmp, bytes);
  await Deno.rename(tmp, path);
}
