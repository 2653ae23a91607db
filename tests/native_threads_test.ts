/**
 * The native kernels that carry no oneDNN reduction give the same bits whatever the oneDNN
 * thread count: the fused BatchNorm+ReLU with a conv bias and the instance-norm variant
 * (statistics in fixed-order JS loops, element-wise passes on oneDNN), the loss head and the SGD
 * update, each repeated four times through the recycled output pool. Runs
 * tests/native_threads_script.ts with OMP_NUM_THREADS 1, 2 and 3 and compares its SHA-256s.
 * Skipped, with a message, when libdnnl.so.2 is absent.
 */
import assert from "node:assert/strict";
import { dnnlMissing } from "./native_util.ts";

const missing = dnnlMissing("native_threads_test");
const SCRIPT = new URL("./native_threads_script.ts", import.meta.url).pathname;

async function hashesWith(threads: number): Promise<Record<string, string>> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", SCRIPT],
    env: { OMP_NUM_THREADS: String(threads) },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const err = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, `native_threads_script with ${threads} threads failed: ${err}`);
  const line = new TextDecoder().decode(out.stdout).trim().split("\n").pop()!;
  const r = JSON.parse(line) as { threads: string; hashes: Record<string, string> };
  assert.equal(r.threads, String(threads));
  return r.hashes;
}

Deno.test({
  name: "native norm, loss-head and SGD kernels: bitwise the same with 1, 2 and 3 oneDNN threads",
  ignore: missing !== null,
  async fn() {
    const one = await hashesWith(1);
    assert.equal(Object.keys(one).length, 13, JSON.stringify(one));
    for (const [k, v] of Object.entries(one)) {
      assert.match(v, /^[0-9a-f]{16}$/, `${k}: ${v} (a repeat through the pool gave other bits)`);
    }
    for (const t of [2, 3]) assert.deepEqual(await hashesWith(t), one, `${t} threads`);
  },
});
