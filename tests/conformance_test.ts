import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { METHODS } from "../methods/mod.ts";
import { supervised } from "../methods/supervised.ts";
import { Rng } from "../methods/nn/rng.ts";
import { initBackend } from "../methods/nn/backend.ts";
import { resolveHyperParams } from "../methods/types.ts";
import { checkMethodConformance, disposeBatch, syntheticBatch } from "./conformance.ts";

for (const def of METHODS) {
  Deno.test(`conformance: ${def.id}`, async () => {
    await checkMethodConformance(def);
  });
}

Deno.test("registry: every method file in methods/ is registered, ids unique", async () => {
  const dir = new URL("../methods/", import.meta.url);
  const ids = new Set(METHODS.map((d) => d.id));
  assert.equal(ids.size, METHODS.length, "duplicate ids");
  for (const e of Deno.readDirSync(dir)) {
    if (!e.isFile || !e.name.endsWith(".ts") || e.name === "mod.ts" || e.name === "types.ts") {
      continue;
    }
    const mod = await import(new URL(e.name, dir).href) as Record<string, unknown>;
    const defs = Object.values(mod).filter((v) =>
      typeof v === "object" && v !== null && "id" in v && "create" in v && "defaults" in v
    );
    assert.ok(defs.length > 0, `methods/${e.name} exports no MethodDefinition`);
    for (const d of defs) {
      assert.ok(
        METHODS.includes(d as never),
        `methods/${e.name}: '${(d as { id: string }).id}' not in METHODS`,
      );
    }
  }
  assert.deepEqual(METHODS.slice(0, 4).map((d) => d.id), [
    "supervised",
    "mean-teacher",
    "ua-mt",
    "dtc",
  ]);
});

async function runSupervised(
  initSeed: number,
): Promise<{ losses: number[]; weights: Float32Array[] }> {
  await initBackend("cpu");
  const hp = resolveHyperParams(supervised, { nFilters: 2 });
  const m = supervised.create(hp, { initSeed, inChannels: 1, nClasses: 2 });
  const batch = syntheticBatch(16);
  const random = { noise: new Rng(initSeed + 1), dropout: new Rng(initSeed + 2) };
  const losses: number[] = [];
  for (let i = 0; i < 3; i++) {
    losses.push((await m.trainStep(batch, { iteration: i, totalIterations: 100, random })).loss);
  }
  const st = m.state();
  const weights = Object.keys(st.tensors).sort().map((k) => st.tensors[k]!.values);
  m.dispose();
  disposeBatch(batch);
  return { losses, weights };
}

Deno.test("determinism: same seeds give bitwise-identical losses and weights; another seed differs", async () => {
  const a = await runSupervised(5);
  const b = await runSupervised(5);
  const c = await runSupervised(6);
  assert.deepEqual(b.losses, a.losses);
  assert.deepEqual(b.weights, a.weights);
  assert.notDeepEqual(c.losses, a.losses);
  assert.equal(tf.memory().numTensors >= 0, true);
});
