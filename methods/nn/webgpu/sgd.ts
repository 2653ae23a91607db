/**
 * `torch.optim.SGD`'s per-parameter update (`SemisegSgdStep`, see `../native/sgd.ts` for the
 * formula and the cpu kernel) as one element-wise WGSL pass on the `webgpu` backend: the
 * composite tfjs update is seven full-size kernels per parameter. Inputs p, g (and buf after
 * the first step); outputs p' and buf' ([0] when momentum is 0). Windows of at most the
 * binding limit, so a parameter larger than one binding still updates.
 * @module
 */
import type * as tf from "@tensorflow/tfjs-core";
import {
  alignElems,
  bindingLimit,
  dispatch,
  disposeScratch,
  type GpuKernelArgs,
  grid,
  kernel,
  newOutput,
  packUniforms,
  scratch,
  sizeOf,
  wholeOf,
  windowOf,
} from "./gpu.ts";
import { SGD_STEP, type SgdStepAttrs } from "../native/sgd.ts";

const SHADER = `
struct U { e0: i32, e1: i32, base: i32, first: i32, lr: f32, m: f32, wd: f32, damp: f32,
           nesterov: i32 }
@group(0) @binding(0) var<storage, read_write> PO: array<f32>;
@group(0) @binding(1) var<storage, read_write> BO: array<f32>;
@group(0) @binding(2) var<storage, read> P: array<f32>;
@group(0) @binding(3) var<storage, read> G: array<f32>;
@group(0) @binding(4) var<storage, read> B: array<f32>;
@group(0) @binding(5) var<uniform> u: U;
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let e = u.e0 + i32((wg.x + wg.y * nw.x) * 64u + li);
  if (e >= u.e1) { return; }
  let i = e - u.base;
  let p = P[i];
  let d = G[i] + u.wd * p;
  if (u.m == 0.0) { PO[i] = p - u.lr * d; return; }
  var b = d;
  if (u.first == 0) { b = u.m * B[i] + u.damp * d; }
  BO[i] = b;
  var step = b;
  if (u.nesterov == 1) { step = d + u.m * b; }
  PO[i] = p - u.lr * step;
}`;

/** Kernel function of `SemisegSgdStep` on webgpu. */
export function sgdStepGpu(args: GpuKernelArgs): tf.TensorInfo[] {
  const be = args.backend;
  const p = args.inputs["p"]!, g = args.inputs["g"]!, buf = args.inputs["buf"];
  const a = args.attrs as unknown as SgdStepAttrs;
  const n = sizeOf(p.shape);
  const pOut = newOutput(be, [...p.shape]);
  // With momentum 0 there is no buffer: an empty output, and a small never-written scratch
  // stands in for its binding.
  const bOut = a.momentum === 0 ? be.makeTensorInfo([0], "float32") : newOutput(be, [...p.shape]);
  const dummy = a.momentum === 0 ? scratch(be, 64) : null;
  const k = kernel(
    be.device,
    "semiseg-sgd",
    ["write", "write", "read", "read", "read", "uniform"],
    () => SHADER,
  );
  // Chunks of whole alignment units, each within the binding limit.
  const step = Math.max(
    alignElems(),
    Math.floor(bindingLimit(be.device) / 4 / alignElems()) * alignElems(),
  );
  for (let e0 = 0; e0 < n; e0 += step) {
    const e1 = Math.min(n, e0 + step);
    const pw = windowOf(be, p, e0, e1);
    const win = (t: tf.TensorInfo | undefined) =>
      t !== undefined && sizeOf(t.shape) === n ? windowOf(be, t, e0, e1).bound : pw.bound;
    const u = packUniforms([
      { i: e0 },
      { i: e1 },
      { i: pw.base },
      { i: buf === undefined ? 1 : 0 },
      { f: a.lr },
      { f: a.momentum },
      { f: a.weightDecay },
      { f: 1 - a.dampening },
      { i: a.nesterov ? 1 : 0 },
    ]);
    const bo = dummy !== null ? wholeOf(be, dummy).bound : win(bOut);
    dispatch(
      be,
      k,
      [windowOf(be, pOut, e0, e1).bound, bo, pw.bound, win(g), win(buf)],
      u,
      grid(be.device, Math.ceil((e1 - e0) / 64)),
      [pOut, p, g, ...(buf ? [buf] : []), ...(dummy ? [dummy] : [bOut])],
    );
  }
  if (dummy !== null) disposeScratch(be, dummy);
  return [pOut, bOut];
}

/** The fused SGD kernel by name, for `install.ts`. */
export function sgdKernels(): Record<string, (args: GpuKernelArgs) => tf.TensorInfo[]> {
  return { [SGD_STEP]: sgdStepGpu };
}
