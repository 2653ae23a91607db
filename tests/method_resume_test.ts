/**
 * Checkpoints written before the method-base refactor (methods/nn/method_base.ts) still resume.
 * For each method variant (every registered method plus its switches), the fixture
 * `tests/fixtures/method_state_layout.json` holds what the code of commit cd6a515 produced after
 * two training steps on the conformance batch: the checkpoint's tensor names and shapes (a
 * SHA-256 of the sorted `name shape` lines, with per-prefix counts), its non-tensor state (a
 * SHA-256 of the canonical JSON) and the losses of the two steps after that. The test takes the
 * same two steps with the current code, checks the layout is the one an old checkpoint has,
 * writes the checkpoint (`encodeCheckpoint`), restores it into a fresh instance built from
 * another init seed, and checks the two resumed steps equal the uninterrupted ones bitwise and
 * the old code's losses to 1e-5 (relative; the fixture was written on the cpu backend with
 * native kernels, another kernel set differs in the last bits, and on these 2-filter nets by
 * up to ~5e-4 after two steps: pure tfjs against native). The losses were re-recorded, layouts
 * unchanged, when the native kernel set changed for #21 (fused loss head, bias-fused norm with
 * oneDNN passes); the old kernels' losses were within 1.3e-4 of the new ones.
 *
 * Regenerate (only when a checkpoint layout change is intended, with a migration):
 * `deno run -A tests/method_resume_test.ts --write`.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import * as tf from "@tensorflow/tfjs-core";
import { initBackend } from "../methods/nn/backend.ts";
import { Rng } from "../methods/nn/rng.ts";
import { getMethod } from "../methods/mod.ts";
import {
  type HyperValue,
  type Method,
  type MethodState,
  resolveHyperParams,
  type StepInfo,
  type StepLosses,
} from "../methods/types.ts";
import { decodeCheckpoint, encodeCheckpoint } from "../benchmarks/harness/store.ts";
import { disposeBatch, syntheticBatch } from "./conformance.ts";

const FIXTURE = new URL("./fixtures/method_state_layout.json", import.meta.url);

/** Variant name, method id, hyper-parameter overrides (nFilters 2 is added where it exists). */
const VARIANTS: [string, string, Record<string, HyperValue>][] = [
  ["supervised", "supervised", {}],
  ["supervised-poly", "supervised", { lrPolicy: "poly" }],
  ["mean-teacher", "mean-teacher", {}],
  ["ua-mt", "ua-mt", {}],
  ["dtc", "dtc", {}],
  ["entropy-min", "entropy-min", {}],
  ["ua-cotraining", "ua-cotraining", {}],
  ["ua-cotraining-net1-exp", "ua-cotraining", {
    prediction: "net1",
    pseudoWeighting: "exp",
    supWeighting: "none",
  }],
  ["massl-cnn", "massl-cnn", {}],
  ["massl-pretrain", "massl-pretrain", {}],
  ["massl-pretrain-switch", "massl-pretrain", { pretrainIterations: 3 }],
  ["massl-pretrain-cnn-all", "massl-pretrain", {
    pretrainIterations: 1,
    finetune: "cnn",
    pretrainData: "all",
  }],
  ["mssl", "mssl", {}],
  ["mssl-joint", "mssl", { strategy: "joint", alpha: 0.7 }],
  ["massl", "massl", {}],
  ["massl-joint", "massl", { strategy: "joint" }],
  ["massl-encoder", "massl", { attentionGrad: "encoder", weighted: false }],
  ["ug-mcl", "ug-mcl", {}],
  ["ug-mcl-ref", "ug-mcl", { referenceCode: true }],
  ["ug-mcl-unlab", "ug-mcl", { itcScope: "unlabeled", useLdis: false, beta: 1 }],
  ["ahu-multinet", "ahu-multinet", {}],
  ["ahu-multinet-none", "ahu-multinet", { weighting: "none" }],
  ["ahu-multinet-simpl", "ahu-multinet", {
    weighting: "simplified",
    contourLoss: "dice",
    contourConnectivity: 2,
  }],
];

/** Loss names logged before the refactor, by their current name. */
const LEGACY_LOSS_NAMES: Record<string, string> = {
  weight: "consistencyWeight",
  lambda: "consistencyWeight",
};

/** What the fixture records per variant. */
interface Layout {
  tensors: number;
  prefixes: Record<string, number>;
  tensorSha: string;
  extraSha: string;
  losses: Record<string, number>[];
}

function sha(s: string): string {
  return createHash("sha256").update(s).digest("hex");
}

function canonical(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canonical);
  if (typeof v === "object" && v !== null) {
    return Object.fromEntries(
      Object.keys(v).sort().map((k) => [k, canonical((v as Record<string, unknown>)[k])]),
    );
  }
  return v;
}

function layoutOf(s: MethodState): Omit<Layout, "losses"> {
  const names = Object.keys(s.tensors).sort();
  const prefixes: Record<string, number> = {};
  for (const n of names) {
    const p = n.split(".")[0]!;
    prefixes[p] = (prefixes[p] ?? 0) + 1;
  }
  return {
    tensors: names.length,
    prefixes,
    tensorSha: sha(names.map((n) => `${n} ${s.tensors[n]!.shape.join("x")}`).join("\n")),
    extraSha: sha(JSON.stringify(canonical({ extra: s.extra, rng: s.rng ?? null }))),
  };
}

function info(iteration: number, noise: Rng, dropout: Rng): StepInfo {
  return { iteration, totalIterations: 6000, random: { noise, dropout } };
}

/** Two steps, the layout, a checkpoint round trip into a fresh instance, two more steps each. */
async function runVariant(id: string, over: Record<string, HyperValue>): Promise<{
  layout: Omit<Layout, "losses">;
  continued: StepLosses[];
  resumed: StepLosses[];
  sameState: boolean;
}> {
  const def = getMethod(id);
  const o: Record<string, HyperValue> = { ...over };
  if ("nFilters" in def.defaults) o.nFilters = 2;
  const hp = resolveHyperParams(def, o);
  const ctx = { initSeed: 11, inChannels: 1, nClasses: 2 };
  const batch = syntheticBatch(16);
  const m: Method = def.create(hp, ctx);
  const noise = new Rng(101), dropout = new Rng(202);
  for (let i = 0; i < 2; i++) await m.trainStep(batch, info(i, noise, dropout));
  const st = m.state();
  const bytes = encodeCheckpoint({
    iteration: 2,
    method: st,
    harness: { noise: noise.state(), dropout: dropout.state() },
  });
  const ck = decodeCheckpoint(bytes, `${id}.ckpt`);
  const m2: Method = def.create(hp, { ...ctx, initSeed: 12 });
  m2.restore(ck.method);
  const n2 = new Rng(0), d2 = new Rng(0);
  n2.restore(ck.harness.noise as ReturnType<Rng["state"]>);
  d2.restore(ck.harness.dropout as ReturnType<Rng["state"]>);
  const continued: StepLosses[] = [], resumed: StepLosses[] = [];
  for (let i = 2; i < 4; i++) {
    continued.push(await m.trainStep(batch, info(i, noise, dropout)));
    resumed.push(await m2.trainStep(batch, info(i, n2, d2)));
  }
  let sameState = true;
  try {
    assert.deepEqual(m2.state(), m.state());
  } catch {
    sameState = false;
  }
  m.dispose();
  m2.dispose();
  disposeBatch(batch);
  return { layout: layoutOf(st), continued, resumed, sameState };
}

function close(a: number, b: number, what: string): void {
  assert.ok(
    a === b || Math.abs(a - b) <= 1e-5 * Math.max(1, Math.abs(b)),
    `${what}: ${a} vs ${b} (fixture)`,
  );
}

if (import.meta.main && Deno.args[0] === "--write") {
  await initBackend("cpu");
  const out: Record<string, Layout> = {};
  for (const [name, id, over] of VARIANTS) {
    const r = await runVariant(id, over);
    out[name] = { ...r.layout, losses: r.continued };
  }
  await Deno.writeTextFile(FIXTURE, JSON.stringify(out, null, 2) + "\n");
} else {
  let fixture: Record<string, Layout> = {};
  try {
    fixture = JSON.parse(Deno.readTextFileSync(FIXTURE));
  } catch (e) {
    throw new Error(`tests/fixtures/method_state_layout.json: unreadable (${e})`);
  }
  for (const [name, id, over] of VARIANTS) {
    Deno.test(`resume across the method-base refactor: ${name}`, async () => {
      await initBackend("cpu");
      const want = fixture[name];
      assert.ok(want, `tests/fixtures/method_state_layout.json has no entry '${name}'`);
      const start = tf.memory().numTensors;
      const r = await runVariant(id, over);
      const { losses: wantLosses, ...wantLayout } = want;
      assert.deepEqual(
        r.layout,
        wantLayout,
        `${name}: checkpoint layout differs from the old code's`,
      );
      assert.ok(r.sameState, `${name}: state after the resumed steps differs`);
      assert.deepEqual(r.resumed, r.continued, `${name}: resumed steps differ from uninterrupted`);
      r.continued.forEach((l, i) => {
        const old: Record<string, number> = {};
        for (const [k, v] of Object.entries(wantLosses[i]!)) old[LEGACY_LOSS_NAMES[k] ?? k] = v;
        assert.deepEqual(Object.keys(l), Object.keys(old), `${name}: step ${i + 2} loss names`);
        for (const k of Object.keys(old)) close(l[k]!, old[k]!, `${name} step ${i + 2} ${k}`);
      });
      assert.equal(tf.memory().numTensors, start, `${name}: tensors leaked`);
    });
  }
}
