/**
 * Training on webgpu: a 20-step V-Net loss curve equals the cpu backend's within 1e-3 (same
 * seeds, data and optimizer), with a flat tensor count; a software adapter is refused unless
 * allowed, with one line naming SEMISEG_WEBGPU_SOFTWARE=1, and `auto` never picks one.
 */
import assert from "node:assert/strict";
import { initBackend } from "../methods/nn/backend.ts";
import { webgpuInfo } from "../methods/nn/webgpu/device.ts";
import { webgpuMissing } from "./webgpu_util.ts";
import { vnetCurve } from "./vnet_curve.ts";

const missing = await webgpuMissing("webgpu_training_test");

Deno.test({
  name: "webgpu training: a 20-step V-Net loss curve within 1e-3 of cpu, tensor count flat",
  ignore: missing !== null,
  async fn() {
    await initBackend("cpu");
    const ref = await vnetCurve();
    await initBackend("webgpu", { allowSoftwareWebgpu: true });
    const gpu = await vnetCurve();
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
