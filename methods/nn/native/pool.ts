/**
 * Recycled output buffers for the native cpu kernels. A fresh large `Float32Array` is fresh
 * memory: every 4 KiB page faults on first touch (measured here: 7.5 ms to allocate and fill
 * 25 MB fresh against 0.4 ms to fill it again; 25 M minor faults and a third of the CPU time
 * in the kernel over four 112x112x80 batch-4 V-Net steps). The kernels take their large
 * outputs from this pool, and the tfjs cpu backend's storage gives them back when the last
 * tensor on them is disposed, so a training step reuses the previous step's pages.
 *
 * A buffer is recycled only when nothing can still see it. The pool counts, per ArrayBuffer,
 * the tensors registered on it (the backend's `data.set`, which also catches tfjs kernels that
 * return a view of an input, such as a contiguous Slice) and recycles it when the count drops
 * to zero at `data.delete`. A buffer whose values left tfjs through `readSync` (`dataSync`,
 * `data()`, `arraySync`, `bufferSync`) is never recycled: the caller may keep that array.
 * Recycled buffers hold old values: a kernel that needs zeros asks {@link outputZeroed}.
 * At most {@link poolLimitBytes} are kept free (`SEMISEG_POOL_MB`, default 1024; 0 turns the
 * pool off; junk is named in one line and the default used); beyond that a buffer is left to
 * the garbage collector as before.
 * @module
 */

/** Buffers smaller than this many floats are plain allocations (page faults are few). */
export const MIN_POOLED = 1 << 18;

interface Storage {
  has(id: object): boolean;
  get(id: object): { values?: unknown };
  set(id: object, value: { values?: unknown }): void;
  delete(id: object): boolean;
}

/** What the pool has done since start-up (for tests and the perf report). */
export interface PoolStats {
  /** Allocations served from a free list. */
  reused: number;
  /** Allocations that made a new buffer. */
  fresh: number;
  /** Buffers given back for reuse. */
  recycled: number;
  /** Buffers that escaped through readSync (never recycled). */
  escaped: number;
  /** Bytes on the free lists now. */
  freeBytes: number;
}

/** Default bound on pooled free bytes, MiB. */
export const DEFAULT_POOL_MB = 1024;

function limitFromEnv(): number {
  let v: string | undefined;
  try {
    v = Deno.env.get("SEMISEG_POOL_MB");
  } catch { /* no --allow-env */ }
  const mb = v === undefined || v === "" ? DEFAULT_POOL_MB : Number(v);
  if (!Number.isFinite(mb) || mb < 0) {
    Deno.stderr.writeSync(
      new TextEncoder().encode(
        `SEMISEG_POOL_MB=${v}: expected a number of MiB >= 0 (0 turns the pool off); using ${DEFAULT_POOL_MB}\n`,
      ),
    );
    return DEFAULT_POOL_MB * 2 ** 20;
  }
  return mb * 2 ** 20;
}

let limit: number | null = null;
const free = new Map<number, Float32Array[]>();
let freeBytes = 0;
/** Buffers made here, by their ArrayBuffer (the full-length array). */
const ours = new WeakMap<ArrayBufferLike, Float32Array>();
/** Tensors registered on each of our buffers. */
const refs = new WeakMap<ArrayBufferLike, number>();
const escapedSet = new WeakSet<ArrayBufferLike>();
const hooked = new WeakSet<object>();
const stats = { reused: 0, fresh: 0, recycled: 0, escaped: 0 };

/** The most bytes kept on the free lists. */
export function poolLimitBytes(): number {
  return limit ??= limitFromEnv();
}

/** Set the limit (tests); `null` reads `SEMISEG_POOL_MB` again. Clears the free lists. */
export function setPoolLimit(bytes: number | null): void {
  limit = bytes;
  clearPool();
}

/** Drop every free buffer (they go to the garbage collector). */
export function clearPool(): void {
  free.clear();
  freeBytes = 0;
}

/** Counters of the pool. */
export function poolStats(): PoolStats {
  return { ...stats, freeBytes };
}

function give(buf: ArrayBufferLike): void {
  const a = ours.get(buf);
  if (!a || escapedSet.has(buf)) return;
  if (freeBytes + a.byteLength > poolLimitBytes()) return;
  let list = free.get(a.length);
  if (!list) free.set(a.length, list = []);
  list.push(a);
  freeBytes += a.byteLength;
  stats.recycled++;
}

function bufferOf(v: unknown): ArrayBufferLike | null {
  return ArrayBuffer.isView(v) ? v.buffer : null;
}

/**
 * Watch the tfjs cpu backend `backend`'s storage (once per backend): count tensors on pooled
 * buffers, recycle them at their last delete, and mark what `readSync` hands out as escaped.
 */
function attach(backend: object): void {
  if (hooked.has(backend)) return;
  hooked.add(backend);
  const be = backend as { data: Storage; readSync?: (id: object) => unknown };
  const st = be.data;
  const set = st.set.bind(st), del = st.delete.bind(st);
  st.set = (id, value) => {
    const old = st.has(id) ? bufferOf(st.get(id).values) : null;
    set(id, value);
    const b = bufferOf(value.values);
    if (b && ours.has(b)) refs.set(b, (refs.get(b) ?? 0) + 1);
    if (old && ours.has(old)) release(old);
  };
  st.delete = (id) => {
    const b = st.has(id) ? bufferOf(st.get(id).values) : null;
    const r = del(id);
    if (b && ours.has(b)) release(b);
    return r;
  };
  const read = be.readSync;
  if (typeof read === "function") {
    be.readSync = (id) => {
      const v = read.call(be, id);
      const b = bufferOf(v);
      if (b && ours.has(b) && !escapedSet.has(b)) {
        escapedSet.add(b);
        stats.escaped++;
      }
      return v;
    };
  }
}

function release(b: ArrayBufferLike): void {
  const n = (refs.get(b) ?? 1) - 1;
  if (n > 0) {
    refs.set(b, n);
    return;
  }
  refs.delete(b);
  give(b);
}

/** Whether buffers of `n` floats come from the pool. */
function pooled(n: number): boolean {
  return n >= MIN_POOLED && poolLimitBytes() > 0;
}

/** A buffer of `n` floats from the free list (zeroed if asked), else a fresh (zero) one. */
function take(n: number, zero = false): Float32Array {
  const a = free.get(n)?.pop();
  if (a) {
    freeBytes -= a.byteLength;
    stats.reused++;
    return zero ? a.fill(0) : a;
  }
  const fresh = new Float32Array(n);
  ours.set(fresh.buffer, fresh);
  stats.fresh++;
  return fresh;
}

/**
 * A float32 output of `n` elements for a kernel of `backend` (the tfjs cpu backend the kernel
 * received), from the pool when large: its values are stale, the kernel must write them all.
 */
export function output(backend: object, n: number): Float32Array {
  if (!pooled(n)) return new Float32Array(n);
  attach(backend);
  return take(n);
}

/** {@link output}, zero-filled. */
export function outputZeroed(backend: object, n: number): Float32Array {
  if (!pooled(n)) return new Float32Array(n);
  attach(backend);
  return take(n, true);
}

/**
 * A scratch buffer of `n` floats for the duration of one kernel call (stale values); hand it
 * back with {@link giveScratch} when the call is done with it.
 */
export function scratch(n: number): Float32Array {
  return pooled(n) ? take(n) : new Float32Array(n);
}

/** Return a {@link scratch} buffer (it must not be referenced any more). */
export function giveScratch(a: Float32Array): void {
  if (ours.get(a.buffer) === a && !refs.has(a.buffer)) give(a.buffer);
}
