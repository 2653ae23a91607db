/**
 * The output-buffer pool of the native kernels (methods/nn/native/pool.ts): buffers come back
 * for reuse when their last tensor is disposed, never while a tensor or a view still holds them,
 * never after their values left tfjs through dataSync / data(), and zero-filled outputs are
 * zeros even on a recycled buffer. Skipped, with a message, when libdnnl.so.2 is absent.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import "../methods/nn/gradients.ts";
import { installNativeKernels } from "../methods/nn/native/install.ts";
import { MIN_POOLED, poolStats, setPoolLimit } from "../methods/nn/native/pool.ts";
import { dnnlMissing } from "./native_util.ts";

tf.env().set("PROD", true);
await tf.setBackend("cpu");
const missing = dnnlMissing("native_pool_test");
const ignore = missing !== null;

const N = MIN_POOLED * 2;

function filled(v: number): tf.Tensor {
  return tf.fill([N], v);
}

/** `a + b` on the native Add kernel (a pooled output). */
function add(a: tf.Tensor, b: tf.Tensor): tf.Tensor {
  return tf.add(a, b);
}

Deno.test({
  name: "pool: a disposed output is reused by the next output of its size",
  ignore,
  fn() {
    assert.ok(installNativeKernels().active);
    setPoolLimit(256 * 2 ** 20);
    const a = filled(1), b = filled(2);
    const s0 = poolStats();
    add(a, b).dispose();
    const s1 = poolStats();
    assert.equal(s1.recycled, s0.recycled + 1, "the disposed sum went back to the pool");
    const c = add(a, b);
    const s2 = poolStats();
    assert.equal(s2.reused, s1.reused + 1, "the second sum reused it");
    assert.ok(c.dataSync().every((v) => v === 3), "and holds its own values");
    tf.dispose([a, b, c]);
    setPoolLimit(null);
  },
});

Deno.test({
  name: "pool: values read with dataSync / data() stay valid after the tensor is disposed",
  ignore,
  async fn() {
    assert.ok(installNativeKernels().active);
    setPoolLimit(256 * 2 ** 20);
    const a = filled(1), b = filled(2);
    const t1 = add(a, b), t2 = add(a, a);
    const v1 = t1.dataSync(), v2 = await t2.data();
    tf.dispose([t1, t2]);
    // Many more outputs of the same size, with other values: none may land in v1 or v2.
    for (let i = 0; i < 4; i++) tf.tidy(() => add(filled(10 + i), b).dataSync());
    const more = [add(b, b), add(b, filled(7))];
    assert.ok(v1.every((v) => v === 3), "dataSync values overwritten after dispose");
    assert.ok(v2.every((v) => v === 2), "data() values overwritten after dispose");
    tf.dispose([a, b, ...more]);
    setPoolLimit(null);
  },
});

Deno.test({
  name: "pool: a slice viewing an output keeps its buffer until the slice is disposed too",
  ignore,
  fn() {
    assert.ok(installNativeKernels().active);
    setPoolLimit(256 * 2 ** 20);
    const a = filled(1), b = filled(2);
    const big = add(a, b);
    // A contiguous strided slice: tfjs's cpu StridedSlice returns a view of the input's array.
    const head = tf.stridedSlice(big, [0], [N / 2], [1]);
    const be = tf.backend() as unknown as { data: { get(id: object): { values: Float32Array } } };
    assert.equal(
      be.data.get(head.dataId).values.buffer,
      be.data.get(big.dataId).values.buffer,
      "the slice is a view (else this test checks nothing)",
    );
    big.dispose();
    const before = poolStats().recycled;
    const other = add(a, a); // same size as big: must not get big's buffer
    assert.equal(poolStats().recycled, before);
    assert.ok(head.dataSync().every((v) => v === 3), "the slice kept its values");
    head.dispose();
    tf.dispose([a, b, other]);
    setPoolLimit(null);
  },
});

Deno.test({
  name: "pool: zero-filled outputs (PadV2) are zeros on a recycled buffer; limit 0 turns it off",
  ignore,
  fn() {
    assert.ok(installNativeKernels().active);
    setPoolLimit(256 * 2 ** 20);
    const x = tf.fill([1, 63, 64, 64, 1], 5);
    const pads: [number, number][] = [[0, 0], [1, 0], [0, 0], [0, 0], [0, 0]];
    // Leave a dirty buffer of the padded size in the pool, then pad.
    const size = 64 * 64 * 64;
    tf.add(tf.fill([size], 9), tf.fill([size], 9)).dispose();
    const p = tf.pad(x, pads);
    const v = p.dataSync();
    for (let i = 0; i < 64 * 64; i++) assert.equal(v[i], 0, `pad row ${i}`);
    assert.equal(v[64 * 64], 5);
    tf.dispose([x, p]);
    setPoolLimit(0);
    const s0 = poolStats();
    const a = filled(1);
    add(a, a).dispose();
    add(a, a).dispose();
    assert.deepEqual(poolStats(), s0, "nothing pooled with SEMISEG_POOL_MB=0");
    a.dispose();
    setPoolLimit(null);
  },
});
