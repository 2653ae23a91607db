/**
 * Helpers of the webgpu tests: open the WebGPU backend (a software adapter is allowed here, as
 * in CI), or say in one line why the tests skip; run the same computation on the pure-JS cpu
 * reference and on webgpu; the relative error every comparison uses.
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { initBackend } from "../methods/nn/backend.ts";

/**
 * Null when `--backend webgpu` initialises (a software adapter allowed, as
 * SEMISEG_WEBGPU_SOFTWARE=1 would); otherwise the reason, after printing one skip line for `file`.
 */
export async function webgpuMissing(file: string): Promise<string | null> {
  try {
    await initBackend("webgpu", { allowSoftwareWebgpu: true });
    return null;
  } catch (e) {
    const why = e instanceof Error ? e.message.split("\n")[0]! : String(e);
    Deno.stderr.writeSync(
      new TextEncoder().encode(
        `${file}: SKIPPING webgpu tests: ${why} (needs a WebGPU adapter; on Debian: apt-get install libegl-mesa0 libgl1-mesa-dri)\n`,
      ),
    );
    return why;
  }
}

/** Run `f` on the pure-JS cpu backend and on webgpu; the float32 results of both, in order. */
export async function onBoth(
  f: () => tf.Tensor[],
): Promise<{ ref: Float32Array[]; gpu: Float32Array[] }> {
  const run = async (backend: "cpu-js" | "webgpu"): Promise<Float32Array[]> => {
    await initBackend(backend, { allowSoftwareWebgpu: true });
    const ts = f();
    const out = await Promise.all(ts.map((t) => t.data() as Promise<Float32Array>));
    tf.dispose(ts);
    return out;
  };
  const ref = await run("cpu-js");
  const gpu = await run("webgpu");
  return { ref, gpu };
}

/** max |a - b| / max |b|: the error relative to the reference's magnitude. */
export function maxRel(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0, s = 1e-30;
  for (let i = 0; i < a.length; i++) {
    m = Math.max(m, Math.abs(a[i]! - b[i]!));
    s = Math.max(s, Math.abs(b[i]!));
  }
  return m / s;
}
