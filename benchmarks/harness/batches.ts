/**
 * The runner's view of the patch sampler: a stream of NDHWC batches whose first `nLabeled`
 * samples are labeled, resumable through `state()`/`restore()`.
 * @module
 */
import type { Case } from "../../datasets/types.ts";
import { PatchSampler, type PatchSamplerState } from "../../datasets/sampler.ts";

/** One batch as typed arrays (the runner turns it into tensors). */
export interface RawBatch {
  images: Float32Array;
  labels: Int32Array;
  /** [B, x, y, z, C]. */
  shape: [number, number, number, number, number];
  nLabeled: number;
}

/** A resumable stream of batches. */
export interface BatchSource {
  next(): RawBatch;
  state(): unknown;
  restore(s: unknown): void;
}

/** Settings of {@link makeBatchSource}. */
export interface BatchSourceOptions {
  labeled: Case[];
  unlabeled: Case[];
  patch: [number, number, number];
  labeledBs: number;
  unlabeledBs: number;
  /** Supervised-only rows: every sample labeled, batch = labeledBs + unlabeledBs (as UA-MT's train_LA.py), at most L. */
  labeledOnly: boolean;
  seed: number;
}

/** UA-MT two-stream sampling with RandomRotFlip + RandomCrop (datasets/sampler.ts). */
export function makeBatchSource(o: BatchSourceOptions): BatchSource {
  const cases = [...o.labeled, ...(o.labeledOnly ? [] : o.unlabeled)];
  const labeledIdx = o.labeled.map((_, i) => i);
  const unlabeledIdx = o.labeledOnly ? [] : o.unlabeled.map((_, i) => o.labeled.length + i);
  const batchSize = o.labeledOnly
    ? Math.min(o.labeledBs + o.unlabeledBs, o.labeled.length)
    : o.labeledBs + (unlabeledIdx.length > 0 ? o.unlabeledBs : 0);
  const labeledBatchSize = o.labeledOnly ? batchSize : o.labeledBs;
  const sampler = new PatchSampler(cases, labeledIdx, unlabeledIdx, {
    patch: o.patch,
    batchSize,
    labeledBatchSize,
    seed: o.seed,
  });
  return {
    next(): RawBatch {
      const b = sampler.next();
      return { images: b.image, labels: b.label, shape: b.imageShape, nLabeled: b.labeledCount };
    },
    state: () => sampler.state(),
    restore: (s) => sampler.restore(s as PatchSamplerState),
  };
}
