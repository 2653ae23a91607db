/**
 * Training on webgpu: a 20-step V-Net loss curve equals the cpu backend's within 1e-3 (same
 * seeds, data and optimizer), with a flat tensor count; a software adapter is refused unless
 * allowed, with one line naming SEMISEG_WEBGPU_SOFTWARE=1, and `auto` never picks one.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { initBackend } from "../methods/nn/backend.ts";
import { Rng } from "../methods/nn/rng.ts";
import { VNet } from "../methods/nn/vnet.ts";
import { ceDiceLoss } from "../methods/nn/losses.ts";
import { disposeGrads, lossAndGrads, Sgd } from "../methods/nn/optim.ts";
import { webgpuInfo } from "../methods/nn/webgpu/device.ts";
import { webgpuMissing } from "./webgpu_util.ts";

const missing = await webgpuMissing("webgpu_training_test");

/** Losses of 20 SGD steps of a 2-filter V-Net on 2 x 32^3 (as tests/native_fused_test.ts). */
async function curve(): Promise<{ losses: number[]; tensors: number[] }> {
  const rng = new Rng(11);
  const net = new VNet({ inChannels: 1, nFilters: 2 }, rng);
  const opt = new Sgd(net.params, { momentum: 0.9, weightDecay: 1e-4 });
  const n = 2 * 32 ** 3;
  const x = tf.tensor5d(rng.fillNormal(new Float32Array(n)), [2, 32, 32, 32, 1]);
  const lab = tf.tensor4d(
    Int32Array.from({ length: n }, () => (rng.uniform() < 0.4 ? 1 : 0)),
    [2, 32, 32, 32],
    "int32",
  );
  const losses: number[] = [], tensors: number[] = [];
  for (let i = 0; i < 20; i++) {
    const { value, grads } = lossAndGrads(() => {
      const [logits] = net.forward(x, { training: true, dropout: false });
      return ceDiceLoss(logits!, lab).loss;
    }, net.params);
    opt.step(grads, 0.01);
    disposeGrads(grads);
    losses.push((await value.data())[0]!);
    value.dispose();
    tensors.push(tf.memory().numTensors);
  }
  tf.dispose([x, lab]);
  net.dispose();
  opt.dispose();
  return { losses, tensors };
}

Deno.test({
  name: "webgpu training: a 20-step V-Net loss curve within 1e-3 of cpu, tensor count flat",
  ignore: missing !== null,
  async fn() {
    await initBackend("cpu");
    const ref = await curve();
    await initBackend("webgpu", { allowSoftwareWebgpu: true });
    const gpu = await curve();
    const worst = Math.max(...gpu.losses.map((v, i) => Math.abs(v - ref.losses[i]!)));
    assert.ok(worst < 1e-3, `max |loss_webgpu - loss_cpu| = ${worst}`);
    assert.ok(gpu.losses[19]! < gpu.losses[0]!, "the loss decreases");
    assert.equal(new Set(gpu.tensors).size, 1, `tensor count per step: ${gpu.tensors.join(",")}`);
  },
});

Deno.test({
  name: "webgpu: a software adapter is refused without opt-in (one line), auto skips it",
  ignore: missing !== null || webgpuInfo()?.software !== true,
  async fn() {
    if (Deno.env.get("SEMISEG_WEBGPU_SOFTWARE") === "1") return; // the user opted in
    await assert.rejects(
      () => initBackend("webgpu"),
      (e: Error) =>
        /^--backend webgpu: WebGPU adapter is a software rasteriser .*SEMISEG_WEBGPU_SOFTWARE=1/
          .test(e.message) && !e.message.includes("\n"),
    );
    const lines: string[] = [];
    const p = await initBackend("auto", { notice: (l) => lines.push(l) });
    assert.notEqual(p.backend, "webgpu");
    assert.ok(lines.some((l) => /^backend webgpu unavailable: .*software rasteriser/.test(l)));
  },
});
