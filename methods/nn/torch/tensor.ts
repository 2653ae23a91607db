/**
 * PyTorch tensors as a checkpoint holds them: a typed storage (raw little-endian bytes) and a
 * strided view of it (`storage_offset`, `size`, `stride`), as `torch._utils._rebuild_tensor_v2`
 * receives them. {@link TorchTensor} materialises the view as a contiguous (row-major) typed
 * array on first use, so a legacy checkpoint, whose storages come after its pickle, can create
 * its tensors before their bytes are read.
 * @module
 */

/** Element types of torch storages (`torch.FloatStorage` is float32, ...). */
export type TorchDType =
  | "float32"
  | "float64"
  | "float16"
  | "bfloat16"
  | "int64"
  | "int32"
  | "int16"
  | "int8"
  | "uint8"
  | "bool";

/** `torch.<Name>Storage` class names -> element type. */
export const STORAGE_DTYPES: Readonly<Record<string, TorchDType>> = {
  FloatStorage: "float32",
  DoubleStorage: "float64",
  HalfStorage: "float16",
  BFloat16Storage: "bfloat16",
  LongStorage: "int64",
  IntStorage: "int32",
  ShortStorage: "int16",
  CharStorage: "int8",
  ByteStorage: "uint8",
  BoolStorage: "bool",
};

/** Element type -> `torch.<Name>Storage` class name. */
export const STORAGE_CLASS: Readonly<Record<TorchDType, string>> = Object.fromEntries(
  Object.entries(STORAGE_DTYPES).map(([k, v]) => [v, k]),
) as Record<TorchDType, string>;

/** Bytes per element. */
export const ELEMENT_SIZE: Readonly<Record<TorchDType, number>> = {
  float32: 4,
  float64: 8,
  float16: 2,
  bfloat16: 2,
  int64: 8,
  int32: 4,
  int16: 2,
  int8: 1,
  uint8: 1,
  bool: 1,
};

/** Contiguous values of a tensor (float16 and bfloat16 are widened to float32). */
export type TensorData =
  | Float32Array
  | Float64Array
  | BigInt64Array
  | Int32Array
  | Int16Array
  | Int8Array
  | Uint8Array;

/** One storage of a checkpoint: `numel` elements of `dtype`; `bytes` once read. */
export interface TorchStorage {
  key: string;
  dtype: TorchDType;
  numel: number;
  /** Raw little-endian bytes (null until a legacy checkpoint's storage section is read). */
  bytes: Uint8Array | null;
  /** Element offset into the root storage (legacy storage views; 0 otherwise). */
  viewOffset?: number;
  /** The root storage of a legacy view. */
  root?: TorchStorage;
}

/** Whether `dtype` is a floating-point type. */
export function isFloat(dtype: TorchDType): boolean {
  return dtype === "float32" || dtype === "float64" || dtype === "float16" ||
    dtype === "bfloat16";
}

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m === 0 ? s * Infinity : NaN;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** The storage's elements as a typed array (float16/bfloat16 widened to float32). */
function decodeStorage(st: TorchStorage): TensorData {
  const root = st.root ?? st;
  if (root.bytes === null) throw new Error(`storage ${root.key}: its data was never read`);
  const size = ELEMENT_SIZE[root.dtype];
  const off = (st.viewOffset ?? 0) * size;
  const nbytes = st.numel * size;
  if (off + nbytes > root.bytes.length) {
    throw new Error(
      `storage ${st.key}: ${st.numel} ${st.dtype} elements need ${
        off + nbytes
      } bytes, the record has ${root.bytes.length}`,
    );
  }
  const raw = root.bytes.slice(off, off + nbytes); // aligned copy
  const buf = raw.buffer;
  switch (root.dtype) {
    case "float32":
      return new Float32Array(buf);
    case "float64":
      return new Float64Array(buf);
    case "int64":
      return new BigInt64Array(buf);
    case "int32":
      return new Int32Array(buf);
    case "int16":
      return new Int16Array(buf);
    case "int8":
      return new Int8Array(buf);
    case "uint8":
    case "bool":
      return raw;
    case "float16":
    case "bfloat16": {
      const h = new Uint16Array(buf), out = new Float32Array(h.length);
      if (root.dtype === "float16") {
        for (let i = 0; i < h.length; i++) {
          out[i] = halfToFloat(h[i]!);
        }
      } else {
        const u = new Uint32Array(out.buffer);
        for (let i = 0; i < h.length; i++) u[i] = h[i]! << 16;
      }
      return out;
    }
  }
}

interface StridedView {
  storage: TorchStorage;
  offset: number;
  stride: readonly number[];
}

/** A tensor of a checkpoint (see the module doc). */
export class TorchTensor {
  readonly dtype: TorchDType;
  readonly shape: readonly number[];
  #data: TensorData | null;
  #view: StridedView | null;

  private constructor(
    dtype: TorchDType,
    shape: readonly number[],
    data: TensorData | null,
    view: StridedView | null,
  ) {
    this.dtype = dtype;
    this.shape = [...shape];
    this.#data = data;
    this.#view = view;
  }

  /** A tensor over `data` (contiguous, row-major). */
  static of(dtype: TorchDType, shape: readonly number[], data: TensorData): TorchTensor {
    const n = shape.reduce((a, b) => a * b, 1);
    if (data.length !== n) {
      throw new Error(`TorchTensor: ${data.length} values for shape [${shape.join(", ")}]`);
    }
    return new TorchTensor(dtype, shape, data, null);
  }

  /** A strided view of `storage` (materialised on first {@link TorchTensor.data}). */
  static view(
    storage: TorchStorage,
    offset: number,
    shape: readonly number[],
    stride: readonly number[],
  ): TorchTensor {
    if (stride.length !== shape.length) {
      throw new Error(`tensor of shape [${shape.join(", ")}] has ${stride.length} strides`);
    }
    return new TorchTensor(storage.dtype, shape, null, { storage, offset, stride });
  }

  /** Number of elements. */
  get numel(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }

  /** The values, contiguous row-major. */
  get data(): TensorData {
    if (this.#data !== null) return this.#data;
    const { storage, offset, stride } = this.#view!;
    const src = decodeStorage(storage);
    const shape = this.shape, n = this.numel;
    let last = offset;
    for (let i = 0; i < shape.length; i++) if (shape[i]! > 0) last += (shape[i]! - 1) * stride[i]!;
    if (n > 0 && (offset < 0 || last >= src.length)) {
      throw new Error(
        `tensor [${shape.join(", ")}] at offset ${offset} with strides [${
          stride.join(", ")
        }] exceeds its storage of ${src.length} elements`,
      );
    }
    let contiguous = true;
    for (let i = shape.length - 1, s = 1; i >= 0; i--) {
      if (shape[i] !== 1 && stride[i] !== s) contiguous = false;
      s *= shape[i]!;
    }
    let out: TensorData;
    if (contiguous) out = src.slice(offset, offset + n) as TensorData;
    else {
      out = new (src.constructor as new (n: number) => TensorData)(n);
      const idx = new Array<number>(shape.length).fill(0);
      const o = out as unknown as { [i: number]: number | bigint };
      const s = src as unknown as { [i: number]: number | bigint };
      for (let k = 0, p = offset; k < n; k++) {
        o[k] = s[p]!;
        for (let d = shape.length - 1; d >= 0; d--) {
          p += stride[d]!;
          if (++idx[d]! < shape[d]!) break;
          p -= stride[d]! * shape[d]!;
          idx[d] = 0;
        }
      }
    }
    this.#data = out;
    this.#view = null;
    return out;
  }

  /** The values as float32 (floating-point tensors only). */
  toFloat32(): Float32Array {
    if (!isFloat(this.dtype)) throw new Error(`a ${this.dtype} tensor is not floating-point`);
    const d = this.data;
    return d instanceof Float32Array ? d : Float32Array.from(d as Float64Array);
  }

  /** The values as little-endian bytes of `dtype` (float32, float64 and the integer types). */
  toBytes(): Uint8Array {
    if (this.dtype === "float16" || this.dtype === "bfloat16") {
      throw new Error(`writing ${this.dtype} tensors is not supported`);
    }
    const d = this.data;
    return new Uint8Array(d.buffer.slice(d.byteOffset, d.byteOffset + d.byteLength));
  }

  /** `BUILD` on a tensor (Python attributes set on it): nothing to keep. */
  __setstate__(_state: unknown): void {}
}
