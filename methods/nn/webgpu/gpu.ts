/**
 * The small layer our WGSL kernels use to run inside tfjs's `webgpu` backend: the tensors'
 * GPU buffers, cached pipelines with explicit bind-group layouts, and dispatches recorded into
 * tfjs's own command encoder (so they are ordered with tfjs's kernels and tfjs's deferred
 * buffer release keeps every buffer alive until its commands are submitted).
 *
 * Large tensors: a storage binding may not exceed the device's `maxStorageBufferBindingSize`
 * (128 MiB by default; an LA activation at 112x112x80, batch 4, 16 channels is 257 MB), so the
 * kernels bind WINDOWS of a buffer ({@link windowOf}) and split their dispatches so that each
 * window fits ({@link bindingLimit}). `SEMISEG_WEBGPU_MAX_BINDING` (bytes) or
 * {@link setBindingLimit} lowers the limit artificially, which is how the tests exercise the
 * split path on small tensors.
 *
 * The backend internals used here are those of tfjs-backend-webgpu 4.22.0 (pinned exactly in
 * deno.json): `tensorMap`, `uploadToGPU`, `ensureCommandEncoderReady`, `computePassEncoder`,
 * `commandQueueOwnedIds`, `uniformPendingDisposal`, `bufferManager`, `submitQueue`.
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";

/** The parts of tfjs's WebGPUBackend that our kernels use. */
export interface WebgpuBackendLike {
  device: GPUDevice;
  queue: GPUQueue;
  tensorMap: {
    get(id: tf.DataId): { resource?: unknown; values?: unknown; shape: number[]; dtype: string };
  };
  uploadToGPU(id: tf.DataId): void;
  disposeData(id: tf.DataId, force?: boolean): boolean;
  makeTensorInfo(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  ensureCommandEncoderReady(): void;
  endComputePassEncoder(): void;
  submitQueue(): void;
  commandEncoder: GPUCommandEncoder | null;
  computePassEncoder: GPUComputePassEncoder | null;
  commandQueueOwnedIds: WeakSet<tf.DataId>;
  uniformPendingDisposal: GPUBuffer[];
  dispatchCountInPass: number;
  /** Set while `tf.profile`/`tf.time` measure kernels (tfjs's own GPU timer list). */
  activeTimers: { name: string; query: Promise<number> }[] | null;
  supportTimestampQuery: boolean;
  querySet: GPUQuerySet | null;
  querySetCount: number;
  getQueryTime(): Promise<number>;
  bufferManager: {
    acquireBuffer(size: number, usage: number): GPUBuffer;
    releaseBuffer(b: GPUBuffer): void;
  };
}

/** Arguments of a tfjs kernel function on the webgpu backend. */
export interface GpuKernelArgs {
  inputs: tf.NamedTensorInfoMap;
  backend: WebgpuBackendLike;
  attrs: tf.NamedAttrMap;
}

/** A kernel: its outputs, or `null` for "not supported here, use tfjs's kernel". */
export type GpuImpl = (args: GpuKernelArgs) => tf.TensorInfo | tf.TensorInfo[] | null;

/** How a kernel binds each buffer: read-only storage, read-write storage, or uniforms. */
export type BindingKind = "read" | "write" | "uniform";

/** A bound buffer range. */
export interface Bound {
  buffer: GPUBuffer;
  offset: number;
  size: number;
}

/** A window of a tensor's buffer: the binding and the element index its first element has. */
export interface Window {
  bound: Bound;
  /** Element index (in the whole tensor) of the window's element 0. */
  base: number;
}

let limitOverride: number | null = null;
let dispatches = 0;

/** Dispatches recorded by our kernels since start-up (tests check the split path with it). */
export function dispatchCount(): number {
  return dispatches;
}
let alignment = 256;

/** Lower (or with null restore) the binding limit used to split dispatches; for tests. */
export function setBindingLimit(bytes: number | null): void {
  limitOverride = bytes;
}

/** Largest storage binding a kernel may use, in bytes (device limit, or a lowered one). */
export function bindingLimit(device: GPUDevice): number {
  alignment = device.limits.minStorageBufferOffsetAlignment;
  let lim = device.limits.maxStorageBufferBindingSize;
  let env: string | undefined;
  try {
    env = Deno.env.get("SEMISEG_WEBGPU_MAX_BINDING");
  } catch { /* no --allow-env */ }
  if (env !== undefined && Number(env) > 0) lim = Math.min(lim, Number(env));
  if (limitOverride !== null) lim = Math.min(lim, limitOverride);
  return lim;
}

/** Elements per offset-alignment unit (64 for the usual 256 bytes). */
export function alignElems(): number {
  return alignment / 4;
}

/**
 * True when `t` is float32 AND its buffer holds f32 words: tfjs-webgpu's stock Cast of int32
 * relabels a tensor without converting it (our `Cast` converts, but tensors may come from
 * elsewhere), and our kernels read buffers as f32.
 */
export function storedAsF32(
  be: WebgpuBackendLike,
  t: tf.TensorInfo | undefined,
): t is tf.TensorInfo {
  return t !== undefined && t.dtype === "float32" && be.tensorMap.get(t.dataId).dtype === "float32";
}

/** The GPU buffer of a tensor (uploading it first when it still lives on the CPU). */
export function bufferOf(be: WebgpuBackendLike, t: tf.TensorInfo): GPUBuffer {
  be.uploadToGPU(t.dataId);
  const r = be.tensorMap.get(t.dataId).resource;
  if (!(r instanceof GPUBuffer)) throw new Error("webgpu kernel: tensor is not in a GPU buffer");
  return r;
}

/** A new float32 output tensor with its (uninitialised) GPU buffer. */
export function newOutput(be: WebgpuBackendLike, shape: number[]): tf.TensorInfo {
  const t = be.makeTensorInfo(shape, "float32");
  be.uploadToGPU(t.dataId);
  return t;
}

/** The whole buffer of `t` as a window with base 0. */
export function wholeOf(be: WebgpuBackendLike, t: tf.TensorInfo): Window {
  const buffer = bufferOf(be, t);
  const n = Math.max(1, sizeOf(t.shape));
  return { bound: { buffer, offset: 0, size: n * 4 }, base: 0 };
}

/**
 * The window of `t` holding elements [start, end): the offset is aligned down to the device's
 * offset alignment, so `base` may be a little below `start`.
 */
export function windowOf(
  be: WebgpuBackendLike,
  t: tf.TensorInfo,
  start: number,
  end: number,
): Window {
  const buffer = bufferOf(be, t);
  const a = alignElems();
  const base = Math.floor(start / a) * a;
  const stop = Math.max(end, base + 1);
  return { bound: { buffer, offset: base * 4, size: (stop - base) * 4 }, base };
}

/** An element range [start, end) of a tensor. */
export type Range = [number, number];

/**
 * Split `pairs` units (e.g. (sample, depth plane) pairs, or norm blocks) into contiguous ranges whose windows of every
 * buffer fit `limit` bytes; `ranges(p)` gives each buffer's element range for unit `p`
 * (monotone in p). One range when everything fits.
 */
export function planChunks(
  pairs: number,
  ranges: (p: number) => Range[],
  limit: number,
  align: number,
  what: string,
): Range[] {
  const out: Range[] = [];
  let p0 = 0;
  const fits = (a: number, b: number): boolean => {
    const r0 = ranges(a), r1 = ranges(b - 1);
    return r0.every((r, i) => (r1[i]![1] - Math.floor(r[0] / align) * align) * 4 <= limit);
  };
  while (p0 < pairs) {
    if (!fits(p0, p0 + 1)) {
      throw new Error(
        `webgpu ${what}: one unit (depth plane or block) exceeds the storage binding limit (${limit} bytes)`,
      );
    }
    let lo = p0 + 1, hi = pairs; // largest p1 in (p0, pairs] whose windows fit: binary search
    while (lo < hi) {
      const mid = Math.ceil((lo + hi) / 2);
      if (fits(p0, mid)) lo = mid;
      else hi = mid - 1;
    }
    out.push([p0, lo]);
    p0 = lo;
  }
  return out;
}

/** Number of elements of `shape`. */
export function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

const layouts = new WeakMap<GPUDevice, Map<string, GPUBindGroupLayout>>();
const pipelines = new WeakMap<GPUDevice, Map<string, GPUComputePipeline>>();

function layoutFor(device: GPUDevice, kinds: readonly BindingKind[]): GPUBindGroupLayout {
  const key = kinds.join(",");
  let m = layouts.get(device);
  if (!m) layouts.set(device, m = new Map());
  let l = m.get(key);
  if (!l) {
    l = device.createBindGroupLayout({
      entries: kinds.map((k, i) => ({
        binding: i,
        visibility: GPUShaderStage.COMPUTE,
        buffer: {
          type: k === "uniform" ? "uniform" : k === "read" ? "read-only-storage" : "storage",
        },
      })),
    });
    m.set(key, l);
  }
  return l;
}

/** A compiled kernel: its pipeline and the kinds of its bindings, in binding order. */
export interface Kernel {
  /** The cache key, also the name profiles show. */
  name: string;
  pipeline: GPUComputePipeline;
  layout: GPUBindGroupLayout;
  kinds: readonly BindingKind[];
}

/** Compile (once per device and key) the WGSL `code` whose bindings are `kinds`. */
export function kernel(
  device: GPUDevice,
  key: string,
  kinds: readonly BindingKind[],
  code: () => string,
): Kernel {
  let m = pipelines.get(device);
  if (!m) pipelines.set(device, m = new Map());
  const layout = layoutFor(device, kinds);
  let p = m.get(key);
  if (!p) {
    const module = device.createShaderModule({ label: key, code: code() });
    p = device.createComputePipeline({
      label: key,
      layout: device.createPipelineLayout({ bindGroupLayouts: [layout] }),
      compute: { module, entryPoint: "main" },
    });
    m.set(key, p);
  }
  return { name: key, pipeline: p, layout, kinds };
}

/** Uniform values: signed ints (i32) and floats (f32), each a 4-byte scalar, in WGSL order. */
export type UniformValue = { i: number } | { f: number };

/** Pack scalars into a uniform buffer's bytes (16-byte padded). */
export function packUniforms(vals: readonly UniformValue[]): ArrayBuffer {
  const buf = new ArrayBuffer(Math.max(16, Math.ceil((vals.length * 4) / 16) * 16));
  const dv = new DataView(buf);
  vals.forEach((v, j) => {
    if ("i" in v) dv.setInt32(j * 4, v.i, true);
    else dv.setFloat32(j * 4, v.f, true);
  });
  return buf;
}

/** Workgroup counts for `groups` linear workgroups, folded into x/y under the device limit. */
export function grid(device: GPUDevice, groups: number, z = 1): [number, number, number] {
  const max = device.limits.maxComputeWorkgroupsPerDimension;
  const x = Math.max(1, Math.min(groups, max));
  const y = Math.ceil(groups / x);
  if (y > max) throw new Error(`webgpu kernel: ${groups} workgroups exceed the dispatch limit`);
  return [x, y, z];
}

/**
 * Record one dispatch of `k` into tfjs's current compute pass. `buffers` are the storage
 * bindings in order (the uniforms are appended as the last binding); `owned` are the tensors
 * whose buffers the commands use, so tfjs defers releasing them until the queue is submitted.
 */
export function dispatch(
  be: WebgpuBackendLike,
  k: Kernel,
  buffers: readonly Bound[],
  uniforms: ArrayBuffer,
  groups: [number, number, number],
  owned: readonly tf.TensorInfo[],
): void {
  const ub = be.bufferManager.acquireBuffer(
    uniforms.byteLength,
    GPUBufferUsage.COPY_DST | GPUBufferUsage.UNIFORM,
  );
  be.queue.writeBuffer(ub, 0, uniforms);
  be.uniformPendingDisposal.push(ub);
  const entries: GPUBindGroupEntry[] = buffers.map((b, i) => ({
    binding: i,
    resource: { buffer: b.buffer, offset: b.offset, size: b.size },
  }));
  entries.push({ binding: buffers.length, resource: { buffer: ub, size: uniforms.byteLength } });
  const group = be.device.createBindGroup({ layout: k.layout, entries });
  for (const t of owned) be.commandQueueOwnedIds.add(t.dataId);
  be.ensureCommandEncoderReady();
  // Under tf.profile / tf.time, time this dispatch in a pass of its own with GPU timestamps,
  // exactly as tfjs times its programs, so profiles show our kernels too.
  const timed = be.activeTimers !== null && be.activeTimers !== undefined &&
    be.supportTimestampQuery;
  if (timed) {
    be.endComputePassEncoder();
    be.querySet ??= be.device.createQuerySet({ type: "timestamp", count: be.querySetCount });
    be.computePassEncoder = be.commandEncoder!.beginComputePass({
      timestampWrites: {
        querySet: be.querySet,
        beginningOfPassWriteIndex: 0,
        endOfPassWriteIndex: 1,
      },
    });
  } else if (!be.computePassEncoder) {
    be.computePassEncoder = be.commandEncoder!.beginComputePass();
  }
  const pass = be.computePassEncoder!;
  pass.setPipeline(k.pipeline);
  pass.setBindGroup(0, group);
  pass.dispatchWorkgroups(groups[0], groups[1], groups[2]);
  be.dispatchCountInPass++;
  dispatches++;
  if (timed) {
    be.endComputePassEncoder();
    be.activeTimers!.push({ name: k.name, query: be.getQueryTime() });
  } else if (
    be.dispatchCountInPass >= (tf.env().get("WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE") as number)
  ) {
    be.endComputePassEncoder();
    be.submitQueue();
  }
}

/** A float32 scratch tensor of `n` elements (dispose with `disposeScratch`). */
export function scratch(be: WebgpuBackendLike, n: number): tf.TensorInfo {
  return newOutput(be, [Math.max(1, n)]);
}

/** Release a scratch tensor (tfjs defers it until the commands using it are submitted). */
export function disposeScratch(be: WebgpuBackendLike, t: tf.TensorInfo): void {
  be.disposeData(t.dataId);
}
