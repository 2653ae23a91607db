/**
 * Minimal FFI binding to the oneDNN 2.x C API (Debian `libdnnl2`, `libdnnl.so.2`) through
 * `Deno.dlopen`. No C shim and no headers at run time: every oneDNN 2.x struct is passed by
 * pointer, so descriptors are over-allocated byte buffers whose sizes are pinned in `abi.ts`.
 *
 * Data is handed to oneDNN zero-copy: a `Float32Array` of the tfjs cpu backend is passed as an
 * FFI `buffer` and attached to a cached memory object with `dnnl_memory_set_data_handle`.
 * Primitives are cached per geometry by the callers ({@link PrimitiveCache}).
 * @module
 */
import { ABI, ABI_MAJOR } from "./abi.ts";

/** Library opened when neither `SEMISEG_DNNL_PATH` nor its alias `SEMISEG_DNNL_LIB` is set. */
export const DEFAULT_DNNL_LIB = "libdnnl.so.2";

const SYMBOLS = {
  dnnl_version: { parameters: [], result: "pointer" },
  dnnl_engine_create: { parameters: ["buffer", "i32", "usize"], result: "i32" },
  dnnl_stream_create: { parameters: ["buffer", "pointer", "u32"], result: "i32" },
  dnnl_stream_wait: { parameters: ["pointer"], result: "i32" },
  dnnl_memory_desc_init_by_tag: {
    parameters: ["buffer", "i32", "buffer", "i32", "i32"],
    result: "i32",
  },
  dnnl_memory_desc_init_by_strides: {
    parameters: ["buffer", "i32", "buffer", "i32", "buffer"],
    result: "i32",
  },
  dnnl_convolution_forward_desc_init: {
    parameters: [
      "buffer",
      "i32",
      "i32",
      "buffer",
      "buffer",
      "buffer",
      "buffer",
      "buffer",
      "buffer",
      "buffer",
    ],
    result: "i32",
  },
  dnnl_convolution_backward_data_desc_init: {
    parameters: ["buffer", "i32", "buffer", "buffer", "buffer", "buffer", "buffer", "buffer"],
    result: "i32",
  },
  dnnl_convolution_backward_weights_desc_init: {
    parameters: [
      "buffer",
      "i32",
      "buffer",
      "buffer",
      "pointer",
      "buffer",
      "buffer",
      "buffer",
      "buffer",
    ],
    result: "i32",
  },
  dnnl_binary_desc_init: {
    parameters: ["buffer", "i32", "buffer", "buffer", "buffer"],
    result: "i32",
  },
  dnnl_reduction_desc_init: {
    parameters: ["buffer", "i32", "buffer", "buffer", "f32", "f32"],
    result: "i32",
  },
  dnnl_eltwise_forward_desc_init: {
    parameters: ["buffer", "i32", "i32", "buffer", "f32", "f32"],
    result: "i32",
  },
  dnnl_matmul_desc_init: {
    parameters: ["buffer", "buffer", "buffer", "pointer", "buffer"],
    result: "i32",
  },
  dnnl_primitive_desc_create: {
    parameters: ["buffer", "buffer", "pointer", "pointer", "pointer"],
    result: "i32",
  },
  dnnl_reorder_primitive_desc_create: {
    parameters: ["buffer", "buffer", "pointer", "buffer", "pointer", "pointer"],
    result: "i32",
  },
  dnnl_primitive_desc_destroy: { parameters: ["pointer"], result: "i32" },
  dnnl_primitive_desc_query_md: { parameters: ["pointer", "i32", "i32"], result: "pointer" },
  dnnl_primitive_desc_query: { parameters: ["pointer", "i32", "i32", "buffer"], result: "i32" },
  dnnl_memory_desc_get_size: { parameters: ["buffer"], result: "usize" },
  dnnl_memory_desc_equal: { parameters: ["buffer", "buffer"], result: "i32" },
  dnnl_primitive_create: { parameters: ["buffer", "pointer"], result: "i32" },
  dnnl_primitive_destroy: { parameters: ["pointer"], result: "i32" },
  dnnl_primitive_execute: { parameters: ["pointer", "pointer", "i32", "buffer"], result: "i32" },
  dnnl_memory_create: { parameters: ["buffer", "buffer", "pointer", "pointer"], result: "i32" },
  dnnl_memory_set_data_handle: { parameters: ["pointer", "buffer"], result: "i32" },
  dnnl_memory_destroy: { parameters: ["pointer"], result: "i32" },
  dnnl_deconvolution_forward_desc_init: {
    parameters: [
      "buffer",
      "i32",
      "i32",
      "buffer",
      "buffer",
      "buffer",
      "buffer",
      "buffer",
      "buffer",
      "buffer",
    ],
    result: "i32",
  },
  dnnl_primitive_attr_create: { parameters: ["buffer"], result: "i32" },
  dnnl_primitive_attr_destroy: { parameters: ["pointer"], result: "i32" },
  dnnl_primitive_attr_set_post_ops: { parameters: ["pointer", "pointer"], result: "i32" },
  dnnl_post_ops_create: { parameters: ["buffer"], result: "i32" },
  dnnl_post_ops_destroy: { parameters: ["pointer"], result: "i32" },
  dnnl_post_ops_append_eltwise: {
    parameters: ["pointer", "f32", "i32", "f32", "f32"],
    result: "i32",
  },
  dnnl_post_ops_append_binary: { parameters: ["pointer", "i32", "buffer"], result: "i32" },
  dnnl_post_ops_append_sum: { parameters: ["pointer", "f32"], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;

type Lib = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

/** Error from a oneDNN call (non-zero `dnnl_status_t`). */
export class DnnlError extends Error {
  /** The oneDNN status code. */
  readonly status: number;
  /** Wrap status `status` of call `what`. */
  constructor(what: string, status: number) {
    super(`oneDNN ${what} failed with status ${status}`);
    this.status = status;
  }
}

function check(what: string, status: number): void {
  if (status !== ABI.dnnl_success) throw new DnnlError(what, status);
}

function readPtr(out: BigUint64Array): Deno.PointerObject {
  const p = Deno.UnsafePointer.create(out[0]!);
  if (p === null) throw new Error("oneDNN returned a null handle");
  return p;
}

/** A memory descriptor (opaque `dnnl_memory_desc_t` bytes). */
export type MemDesc = Uint8Array<ArrayBuffer>;

/** A dims array as oneDNN wants it (`int64_t[DNNL_MAX_NDIMS]`). */
export function dimsOf(values: readonly number[]): BigInt64Array<ArrayBuffer> {
  if (values.length > ABI.DNNL_MAX_NDIMS) throw new Error(`too many dims: ${values.length}`);
  const d = new BigInt64Array(ABI.DNNL_MAX_NDIMS);
  values.forEach((v, i) => d[i] = BigInt(v));
  return d;
}

/**
 * One post-op of a primitive (oneDNN attributes), applied in order to its result: `relu`
 * (eltwise ReLU; `alpha` the LeakyReLU slope, default 0), `add` / `mul` / `sub` (binary op with
 * a tensor of descriptor `md`, broadcast where its dims are 1, passed at execution as
 * `DNNL_ARG_ATTR_MULTIPLE_POST_OP(index) | DNNL_ARG_SRC_1`), `sum` (`dst = result + scale *
 * previous dst`).
 */
export type PostOp =
  | { kind: "relu"; alpha?: number }
  | { kind: "add" | "mul" | "sub"; md: MemDesc }
  | { kind: "sum"; scale?: number };

const POST_BINARY = {
  add: ABI.dnnl_binary_add,
  mul: ABI.dnnl_binary_mul,
  sub: ABI.dnnl_binary_sub,
} as const;

/** Execution argument id of the second input of binary post-op number `index`. */
export function postOpSrc1Arg(index: number): number {
  return ABI.DNNL_ARG_ATTR_MULTIPLE_POST_OP_BASE * (index + 1) | ABI.DNNL_ARG_SRC_1;
}

/** An opened oneDNN library with one CPU engine and one stream. */
export class Dnnl {
  /** The raw symbols. */
  readonly sym: Lib;
  /** Library version as `major.minor.patch`. */
  readonly version: string;
  /** CPU engine handle. */
  readonly engine: Deno.PointerObject;
  /** Stream handle. */
  readonly stream: Deno.PointerObject;
  readonly #lib: Deno.DynamicLibrary<typeof SYMBOLS>;

  private constructor(lib: Deno.DynamicLibrary<typeof SYMBOLS>, version: string) {
    this.#lib = lib;
    this.sym = lib.symbols;
    this.version = version;
    const out = new BigUint64Array(1);
    check("engine_create", this.sym.dnnl_engine_create(out, ABI.dnnl_cpu, 0n));
    this.engine = readPtr(out);
    check(
      "stream_create",
      this.sym.dnnl_stream_create(out, this.engine, ABI.dnnl_stream_default_flags),
    );
    this.stream = readPtr(out);
  }

  /**
   * Open `path` (a soname or file), check that it is oneDNN major version {@link ABI_MAJOR} and
   * create the engine. Throws a one-line Error when anything is missing or mismatched.
   */
  static open(path: string = DEFAULT_DNNL_LIB): Dnnl {
    // oneDNN's OpenMP threads spin-wait between kernels by default; on a shared or
    // oversubscribed machine (parallel tests, other jobs) that made steps 5-20x slower.
    // Passive waiting must be set before libgomp loads; an explicit user setting wins.
    if (Deno.env.get("OMP_WAIT_POLICY") === undefined) Deno.env.set("OMP_WAIT_POLICY", "PASSIVE");
    // One oneDNN thread unless the user says otherwise: summation order (and so the exact
    // numbers of a run) depends on the thread count, and results must not depend on how a grid
    // is spread over processes (--jobs, --shard, SLURM arrays). Parallelism comes from running
    // one worker process per core (--jobs auto).
    if (Deno.env.get("OMP_NUM_THREADS") === undefined) Deno.env.set("OMP_NUM_THREADS", "1");
    const lib = Deno.dlopen(path, SYMBOLS);
    try {
      const vp = lib.symbols.dnnl_version();
      if (vp === null) throw new Error("dnnl_version() returned null");
      const view = new Deno.UnsafePointerView(vp);
      const major = view.getInt32(0), minor = view.getInt32(4), patch = view.getInt32(8);
      const version = `${major}.${minor}.${patch}`;
      if (major !== ABI_MAJOR) {
        throw new Error(
          `${path} is oneDNN ${version}; these kernels need major version ${ABI_MAJOR}`,
        );
      }
      return new Dnnl(lib, version);
    } catch (e) {
      lib.close();
      throw e;
    }
  }

  /** Throw a {@link DnnlError} unless `status` is success. */
  check(what: string, status: number): void {
    check(what, status);
  }

  /** Plain memory descriptor for `dims` with format tag `tag` (f32). */
  mdTag(dims: readonly number[], tag: number): MemDesc {
    const md = new Uint8Array(ABI.sizeof_dnnl_memory_desc_t);
    check(
      "memory_desc_init_by_tag",
      this.sym.dnnl_memory_desc_init_by_tag(md, dims.length, dimsOf(dims), ABI.dnnl_f32, tag),
    );
    return md;
  }

  /** Memory descriptor for `dims` with explicit element `strides` (f32). */
  mdStrides(dims: readonly number[], strides: readonly number[]): MemDesc {
    const md = new Uint8Array(ABI.sizeof_dnnl_memory_desc_t);
    check(
      "memory_desc_init_by_strides",
      this.sym.dnnl_memory_desc_init_by_strides(
        md,
        dims.length,
        dimsOf(dims),
        ABI.dnnl_f32,
        dimsOf(strides),
      ),
    );
    return md;
  }

  /** Dense row-major (C order) memory descriptor for `dims`. */
  mdDense(dims: readonly number[]): MemDesc {
    const strides = new Array<number>(dims.length);
    let s = 1;
    for (let i = dims.length - 1; i >= 0; i--) {
      strides[i] = s;
      s *= dims[i]!;
    }
    return this.mdStrides(dims, strides);
  }

  /**
   * Create a primitive from an initialised op descriptor (`op`), optionally with a forward hint
   * (a primitive descriptor pointer, needed by backward convolutions). `args` names the
   * execution arguments (DNNL_ARG_*) in the order {@link Primitive.exec} receives buffers,
   * with the memory descriptor of each.
   */
  primitive(
    op: Uint8Array<ArrayBuffer>,
    args: ReadonlyArray<readonly [number, MemDesc]>,
    hint: Deno.PointerObject | null = null,
  ): Primitive {
    const out = new BigUint64Array(1);
    check(
      "primitive_desc_create",
      this.sym.dnnl_primitive_desc_create(out, op, null, this.engine, hint),
    );
    const pd = readPtr(out);
    const p = this.#finish(pd, args);
    // oneDNN 2.x backward descriptors may keep a raw pointer to their forward hint: keep the
    // hint alive as long as the primitive.
    if (hint) p.owns(hint);
    return p;
  }

  /**
   * Like {@link primitive}, for an op whose memory descriptors may be `format_tag_any`: oneDNN
   * chooses the layouts (e.g. blocked nCdhw8c for its direct jit kernels). `args` pairs each
   * execution argument with the `dnnl_query_*_md` that returns its chosen descriptor (or with
   * a known descriptor, e.g. a binary post-op's input). `postOps` become the primitive's
   * attributes (see {@link PostOp}). Returns the primitive (buffers in the chosen layouts),
   * those descriptors and the implementation name (e.g. "jit:avx2", "gemm:jit", "ref:any").
   */
  primitiveChosen(
    op: Uint8Array<ArrayBuffer>,
    args: ReadonlyArray<readonly [number, number | MemDesc]>,
    hint: Deno.PointerObject | null = null,
    postOps: readonly PostOp[] = [],
  ): { prim: Primitive; mds: MemDesc[]; impl: string } {
    const out = new BigUint64Array(1);
    const attr = postOps.length > 0 ? this.#attr(postOps) : null;
    try {
      check(
        "primitive_desc_create",
        this.sym.dnnl_primitive_desc_create(out, op, attr, this.engine, hint),
      );
    } finally {
      if (attr) this.sym.dnnl_primitive_attr_destroy(attr);
    }
    const pd = readPtr(out);
    let mds: MemDesc[], impl: string;
    try {
      mds = args.map(([, what]) => {
        // A known descriptor (e.g. a post-op's second input) is taken as it is.
        if (typeof what !== "number") return what;
        const ptr = this.sym.dnnl_primitive_desc_query_md(pd, what, 0);
        if (ptr === null) throw new DnnlError(`primitive_desc_query_md(${what})`, 3);
        const md = new Uint8Array(ABI.sizeof_dnnl_memory_desc_t);
        new Deno.UnsafePointerView(ptr).copyInto(md);
        return md;
      });
      check(
        "primitive_desc_query(impl_info_str)",
        this.sym.dnnl_primitive_desc_query(pd, ABI.dnnl_query_impl_info_str, 0, out),
      );
      const strPtr = Deno.UnsafePointer.create(out[0]!);
      impl = strPtr ? Deno.UnsafePointerView.getCString(strPtr) : "?";
    } catch (e) {
      this.sym.dnnl_primitive_desc_destroy(pd);
      throw e;
    }
    const p = this.#finish(pd, args.map(([a], i) => [a, mds[i]!] as const));
    if (hint) p.owns(hint);
    return { prim: p, mds, impl };
  }

  /** Primitive attributes carrying `postOps` (the caller destroys them). */
  #attr(postOps: readonly PostOp[]): Deno.PointerObject {
    const out = new BigUint64Array(1);
    check("post_ops_create", this.sym.dnnl_post_ops_create(out));
    const po = readPtr(out);
    try {
      for (const p of postOps) {
        if (p.kind === "relu") {
          check(
            "post_ops_append_eltwise",
            this.sym.dnnl_post_ops_append_eltwise(po, 1, ABI.dnnl_eltwise_relu, p.alpha ?? 0, 0),
          );
        } else if (p.kind === "sum") {
          check("post_ops_append_sum", this.sym.dnnl_post_ops_append_sum(po, p.scale ?? 1));
        } else {
          check(
            "post_ops_append_binary",
            this.sym.dnnl_post_ops_append_binary(po, POST_BINARY[p.kind], p.md),
          );
        }
      }
      check("primitive_attr_create", this.sym.dnnl_primitive_attr_create(out));
      const attr = readPtr(out);
      const st = this.sym.dnnl_primitive_attr_set_post_ops(attr, po);
      if (st !== ABI.dnnl_success) {
        this.sym.dnnl_primitive_attr_destroy(attr);
        check("primitive_attr_set_post_ops", st);
      }
      return attr;
    } finally {
      // The attributes keep their own copy of the post-ops.
      this.sym.dnnl_post_ops_destroy(po);
    }
  }

  /** Bytes a buffer of memory descriptor `md` needs (blocked layouts may pad). */
  mdBytes(md: MemDesc): number {
    return Number(this.sym.dnnl_memory_desc_get_size(md));
  }

  /** Whether two memory descriptors describe the same layout. */
  mdEqual(a: MemDesc, b: MemDesc): boolean {
    return this.sym.dnnl_memory_desc_equal(a, b) !== 0;
  }

  /** A primitive descriptor only (to serve as a forward hint); free with {@link destroyDesc}. */
  primitiveDesc(op: Uint8Array<ArrayBuffer>): Deno.PointerObject {
    const out = new BigUint64Array(1);
    check(
      "primitive_desc_create",
      this.sym.dnnl_primitive_desc_create(out, op, null, this.engine, null),
    );
    return readPtr(out);
  }

  /** Free a primitive descriptor from {@link primitiveDesc}. */
  destroyDesc(pd: Deno.PointerObject): void {
    this.sym.dnnl_primitive_desc_destroy(pd);
  }

  /**
   * A reorder (copy between layouts) from `src` to `dst`; exec buffers: [src, dst]. With a
   * `sum` post-op it accumulates: `dst = src + scale * dst`.
   */
  reorder(src: MemDesc, dst: MemDesc, postOps: readonly PostOp[] = []): Primitive {
    const out = new BigUint64Array(1);
    const attr = postOps.length > 0 ? this.#attr(postOps) : null;
    try {
      check(
        "reorder_primitive_desc_create",
        this.sym.dnnl_reorder_primitive_desc_create(out, src, this.engine, dst, this.engine, attr),
      );
    } finally {
      if (attr) this.sym.dnnl_primitive_attr_destroy(attr);
    }
    return this.#finish(readPtr(out), [[ABI.DNNL_ARG_SRC, src], [ABI.DNNL_ARG_DST, dst]]);
  }

  #finish(pd: Deno.PointerObject, args: ReadonlyArray<readonly [number, MemDesc]>): Primitive {
    const out = new BigUint64Array(1);
    try {
      check("primitive_create", this.sym.dnnl_primitive_create(out, pd));
    } finally {
      this.sym.dnnl_primitive_desc_destroy(pd);
    }
    const prim = readPtr(out);
    const mems: Deno.PointerObject[] = [];
    for (const [, md] of args) {
      check("memory_create", this.sym.dnnl_memory_create(out, md, this.engine, null));
      mems.push(readPtr(out));
    }
    return new Primitive(this, prim, args.map(([a]) => a), mems);
  }

  /** Close the library (primitives made from it must not be used afterwards). */
  close(): void {
    this.#lib.close();
  }
}

/** A ready-to-run oneDNN primitive with one cached memory object per argument. */
export class Primitive {
  readonly #d: Dnnl;
  readonly #prim: Deno.PointerObject;
  readonly #mems: Deno.PointerObject[];
  readonly #args: Uint8Array<ArrayBuffer>;
  readonly #owned: Deno.PointerObject[] = [];

  /** Wrap handles made by {@link Dnnl.primitive}. */
  constructor(d: Dnnl, prim: Deno.PointerObject, argIds: number[], mems: Deno.PointerObject[]) {
    this.#d = d;
    this.#prim = prim;
    this.#mems = mems;
    const n = argIds.length;
    this.#args = new Uint8Array(n * ABI.sizeof_dnnl_exec_arg_t);
    const dv = new DataView(this.#args.buffer);
    for (let i = 0; i < n; i++) {
      const at = i * ABI.sizeof_dnnl_exec_arg_t;
      dv.setInt32(at, argIds[i]!, true);
      dv.setBigUint64(at + ABI.offsetof_exec_arg_memory, Deno.UnsafePointer.value(mems[i]!), true);
    }
  }

  /** Take ownership of primitive descriptor `pd` (freed by {@link destroy}). */
  owns(pd: Deno.PointerObject): void {
    this.#owned.push(pd);
  }

  /** Run synchronously on `buffers` (one per argument, in creation order). */
  exec(buffers: ReadonlyArray<Float32Array<ArrayBufferLike>>): void {
    const s = this.#d.sym;
    if (buffers.length !== this.#mems.length) throw new Error("wrong number of buffers");
    // Touching `.buffer` moves a small on-heap typed array off the V8 heap, so the pointer
    // handed to oneDNN stays valid until execute.
    for (const b of buffers) void b.buffer;
    for (let i = 0; i < buffers.length; i++) {
      check(
        "memory_set_data_handle",
        s.dnnl_memory_set_data_handle(this.#mems[i]!, buffers[i]! as Float32Array<ArrayBuffer>),
      );
    }
    check(
      "primitive_execute",
      s.dnnl_primitive_execute(this.#prim, this.#d.stream, this.#mems.length, this.#args),
    );
    check("stream_wait", s.dnnl_stream_wait(this.#d.stream));
  }

  /** Free the primitive and its memory objects. */
  destroy(): void {
    for (const m of this.#mems) this.#d.sym.dnnl_memory_destroy(m);
    this.#d.sym.dnnl_primitive_destroy(this.#prim);
    for (const pd of this.#owned) this.#d.sym.dnnl_primitive_desc_destroy(pd);
  }
}

/**
 * Primitives keyed by a geometry string, least-recently-used eviction. `null` entries remember
 * geometries oneDNN refused, so those go straight to the JS fallback.
 */
export class PrimitiveCache<T extends { destroy(): void } = Primitive> {
  readonly #map = new Map<string, T | null>();
  readonly #max: number;

  /** A cache holding at most `max` primitives. */
  constructor(max = 256) {
    this.#max = max;
  }

  /** The cached primitive for `key`, creating it with `make` (null when it throws). */
  get(key: string, make: () => T): T | null {
    let p = this.#map.get(key);
    if (p !== undefined) {
      this.#map.delete(key);
      this.#map.set(key, p);
      return p;
    }
    try {
      p = make();
    } catch (e) {
      if (!(e instanceof DnnlError)) throw e;
      p = null;
    }
    this.#map.set(key, p);
    if (this.#map.size > this.#max) {
      const [oldKey, old] = this.#map.entries().next().value!;
      this.#map.delete(oldKey);
      old?.destroy();
    }
    return p;
  }

  /** Destroy every cached primitive. */
  clear(): void {
    for (const p of this.#map.values()) p?.destroy();
    this.#map.clear();
  }
}
