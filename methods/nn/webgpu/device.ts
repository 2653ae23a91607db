/**
 * WebGPU device set-up for the tfjs `webgpu` backend under Deno.
 *
 * tfjs-backend-webgpu 4.22 registers its own backend factory, but that factory pushes the
 * ARRAY `['bgra8unorm-storage']` into `requiredFeatures` whenever the adapter has that feature
 * (`tfjs-backend-webgpu/src/base.ts`), which Deno's WebGPU rejects (denoland/webgpu-examples#22):
 * every real GPU has the feature, so stock init fails exactly where it matters. We replace the
 * factory with one that asks for the adapter's own maxima of the limits that bound tensor sizes
 * and workgroups, and only string features (`timestamp-query` when offered), then hand the
 * device to tfjs's `WebGPUBackend` unchanged.
 *
 * Software adapters (llvmpipe, lavapipe, SwiftShader) are refused unless
 * `SEMISEG_WEBGPU_SOFTWARE=1`: they run the real WGSL kernels (tests and CI use them) but at CPU
 * speed, far slower than the native cpu path.
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";

/** What was found and requested, for notices and provenance. */
export interface WebgpuInfo {
  /** Adapter description (vendor, architecture, device, description). */
  adapter: string;
  /** True for a software rasteriser. */
  software: boolean;
  /** Device limits actually granted (bytes / counts). */
  maxStorageBufferBindingSize: number;
  maxBufferSize: number;
  maxComputeWorkgroupStorageSize: number;
  maxComputeInvocationsPerWorkgroup: number;
  maxComputeWorkgroupsPerDimension: number;
  minStorageBufferOffsetAlignment: number;
}

interface AdapterInfoLike {
  vendor?: string;
  architecture?: string;
  device?: string;
  description?: string;
  isFallbackAdapter?: boolean;
}

const SOFTWARE = /llvmpipe|lavapipe|swiftshader|software|softpipe/i;

function envOr(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}

/** True when `SEMISEG_WEBGPU_SOFTWARE=1` allows a software adapter. */
export function softwareAllowed(): boolean {
  return envOr("SEMISEG_WEBGPU_SOFTWARE") === "1";
}

/** One-line description of an adapter, and whether it is a software rasteriser. */
export function describeAdapter(info: AdapterInfoLike): { text: string; software: boolean } {
  const text = [info.vendor, info.architecture, info.device, info.description]
    .filter((s) => s !== undefined && s !== "" && s !== "0").join(" ");
  return { text, software: info.isFallbackAdapter === true || SOFTWARE.test(text) };
}

/** Limits that bound tensor sizes and dispatch shapes: requested at the adapter's maxima. */
const LIMITS = [
  "maxStorageBufferBindingSize",
  "maxBufferSize",
  "maxComputeWorkgroupStorageSize",
  "maxComputeInvocationsPerWorkgroup",
  "maxComputeWorkgroupSizeX",
  "maxComputeWorkgroupSizeY",
  "maxComputeWorkgroupsPerDimension",
  "maxStorageBuffersPerShaderStage",
] as const;

let active: { device: GPUDevice; info: WebgpuInfo } | null = null;

/**
 * Open the adapter and device (once per process) and register them as tfjs's `webgpu`
 * backend. Throws a one-line error when there is no adapter, or it is a software one and
 * neither `opts.allowSoftware` (tests) nor {@link softwareAllowed} permits it.
 */
export async function openWebgpu(opts: { allowSoftware?: boolean } = {}): Promise<WebgpuInfo> {
  if (active) {
    if (active.info.software && !(opts.allowSoftware || softwareAllowed())) {
      throw new Error(
        `WebGPU adapter is a software rasteriser (${active.info.adapter}); set SEMISEG_WEBGPU_SOFTWARE=1 to use it anyway (slow)`,
      );
    }
    return active.info;
  }
  const gpu = (navigator as unknown as { gpu?: GPU }).gpu;
  if (!gpu) throw new Error("navigator.gpu is absent (this Deno has no WebGPU)");
  const adapter = await gpu.requestAdapter({ powerPreference: "high-performance" });
  if (!adapter) throw new Error("no WebGPU adapter (no GPU driver, or Vulkan/Metal missing)");
  const { text, software } = describeAdapter(adapter.info as AdapterInfoLike);
  if (software && !(opts.allowSoftware || softwareAllowed())) {
    throw new Error(
      `WebGPU adapter is a software rasteriser (${text}); set SEMISEG_WEBGPU_SOFTWARE=1 to use it anyway (slow)`,
    );
  }
  const requiredLimits: Record<string, number> = {};
  const lim = adapter.limits as unknown as Record<string, number>;
  for (const k of LIMITS) if (typeof lim[k] === "number") requiredLimits[k] = lim[k]!;
  // Only plain strings: see the module doc for the bgra8unorm-storage bug this avoids.
  const requiredFeatures: GPUFeatureName[] = adapter.features.has("timestamp-query")
    ? ["timestamp-query"]
    : [];
  const device = await adapter.requestDevice({ requiredFeatures, requiredLimits });
  const dl = device.limits;
  const info: WebgpuInfo = {
    adapter: text,
    software,
    maxStorageBufferBindingSize: dl.maxStorageBufferBindingSize,
    maxBufferSize: dl.maxBufferSize,
    maxComputeWorkgroupStorageSize: dl.maxComputeWorkgroupStorageSize,
    maxComputeInvocationsPerWorkgroup: dl.maxComputeInvocationsPerWorkgroup,
    maxComputeWorkgroupsPerDimension: dl.maxComputeWorkgroupsPerDimension,
    minStorageBufferOffsetAlignment: dl.minStorageBufferOffsetAlignment,
  };
  const { WebGPUBackend } = await import("@tensorflow/tfjs-backend-webgpu");
  // Importing the package registered tfjs's own factory; replace it with ours.
  if (tf.findBackendFactory("webgpu")) tf.removeBackend("webgpu");
  tf.registerBackend(
    "webgpu",
    () => new WebGPUBackend(device, adapter.info as unknown as GPUAdapterInfo),
    3,
  );
  active = { device, info };
  return info;
}

/** The device opened by {@link openWebgpu}, or null. */
export function webgpuDevice(): GPUDevice | null {
  return active?.device ?? null;
}

/** Limits of the opened device, or null before {@link openWebgpu}. */
export function webgpuInfo(): WebgpuInfo | null {
  return active?.info ?? null;
}
