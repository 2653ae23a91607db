/**
 * Batch sampling as UA-MT/SSL4MIS do it, seeded and resumable.
 *
 * {@link TwoStreamBatchSampler} (UA-MT `TwoStreamBatchSampler`): each epoch permutes the primary
 * (labeled) indices once and restarts an eternal stream over the secondary (unlabeled) indices,
 * a fresh permutation each time it runs out; a batch is `primaryBatchSize` primary indices then
 * `batchSize - primaryBatchSize` secondary ones; an epoch has `floor(P / primaryBatchSize)`
 * batches (incomplete groups are dropped, like `grouper`). Epochs roll over by themselves.
 * Draw order on the single Rng: the epoch's primary permutation when the epoch starts, each
 * secondary permutation when the stream first needs it.
 *
 * {@link PatchSampler}: indices from a TwoStreamBatchSampler, then per sample RandomRotFlip +
 * RandomCrop (UA-MT order, fused) into `image` Float32Array [B, x, y, z, C] (NDHWC, ready for
 * `tf.tensor5d`) and `label` Int32Array [B, x, y, z]. Seeds: `deriveSeed(seed, "sampler")` for
 * the indices and `deriveSeed(seed, "augment")` for the transforms; `state()`/`restore()` resume
 * exactly. Cases are passed in already loaded (the harness caches them).
 * @module
 */
import { deriveSeed, Rng, type RngState } from "../methods/nn/rng.ts";
import { augmentPatch } from "./augment.ts";
import type { Case } from "./types.ts";

/** Resumable state of a {@link TwoStreamBatchSampler}. */
export interface TwoStreamState {
  rng: RngState;
  epoch: number;
  primaryPerm: number[];
  primaryPos: number;
  secondaryPerm: number[];
  secondaryPos: number;
}

/** UA-MT's two-stream batch sampler over index lists. */
export class TwoStreamBatchSampler {
  readonly primary: readonly number[];
  readonly secondary: readonly number[];
  readonly batchSize: number;
  readonly primaryBatchSize: number;
  #rng: Rng;
  #epoch = -1;
  #pPerm: number[] = [];
  #pPos = 0;
  #sPerm: number[] = [];
  #sPos = 0;

  constructor(
    primary: readonly number[],
    secondary: readonly number[],
    batchSize: number,
    primaryBatchSize: number,
    rng: Rng,
  ) {
    const secBs = batchSize - primaryBatchSize;
    if (!(primaryBatchSize >= 1 && secBs >= 0)) {
      throw new Error(
        `TwoStreamBatchSampler: need 1 <= primaryBatchSize <= batchSize (got ${primaryBatchSize}, ${batchSize})`,
      );
    }
    if (primary.length < primaryBatchSize) {
      throw new Error(
        `TwoStreamBatchSampler: ${primary.length} primary indices < primary batch size ${primaryBatchSize}`,
      );
    }
    if (secBs > 0 && secondary.length < secBs) {
      throw new Error(
        `TwoStreamBatchSampler: ${secondary.length} secondary indices < secondary batch size ${secBs}`,
      );
    }
    this.primary = [...primary];
    this.secondary = [...secondary];
    this.batchSize = batchSize;
    this.primaryBatchSize = primaryBatchSize;
    this.#rng = rng;
  }

  /** Batches per epoch: floor(P / primaryBatchSize). */
  get epochLength(): number {
    return Math.floor(this.primary.length / this.primaryBatchSize);
  }

  /** Index of the epoch the last batch came from (-1 before the first batch). */
  get epoch(): number {
    return this.#epoch;
  }

  #startEpoch(): void {
    this.#epoch++;
    this.#pPerm = this.#rng.permutation(this.primary.length).map((i) => this.primary[i]!);
    this.#pPos = 0;
    this.#sPerm = [];
    this.#sPos = 0;
  }

  #nextSecondary(): number {
    if (this.#sPos >= this.#sPerm.length) {
      this.#sPerm = this.#rng.permutation(this.secondary.length).map((i) => this.secondary[i]!);
      this.#sPos = 0;
    }
    return this.#sPerm[this.#sPos++]!;
  }

  /** The next batch of indices (primary first). */
  next(): number[] {
    if (this.#epoch < 0 || this.#pPos + this.primaryBatchSize > this.#pPerm.length) {
      this.#startEpoch();
    }
    const b = this.#pPerm.slice(this.#pPos, this.#pPos + this.primaryBatchSize);
    this.#pPos += this.primaryBatchSize;
    for (let i = this.primaryBatchSize; i < this.batchSize; i++) b.push(this.#nextSecondary());
    return b;
  }

  /** Snapshot for checkpoints. */
  state(): TwoStreamState {
    return {
      rng: this.#rng.state(),
      epoch: this.#epoch,
      primaryPerm: [...this.#pPerm],
      primaryPos: this.#pPos,
      secondaryPerm: [...this.#sPerm],
      secondaryPos: this.#sPos,
    };
  }

  /** Restore a snapshot from {@link TwoStreamBatchSampler.state}. */
  restore(s: TwoStreamState): void {
    this.#rng.restore(s.rng);
    this.#epoch = s.epoch;
    this.#pPerm = [...s.primaryPerm];
    this.#pPos = s.primaryPos;
    this.#sPerm = [...s.secondaryPerm];
    this.#sPos = s.secondaryPos;
  }
}

/** Settings of a {@link PatchSampler}. */
export interface PatchSamplerOptions {
  /** Patch size (x, y, z), e.g. [112, 112, 80] for LA. */
  patch: [number, number, number];
  /** Total batch size (UA-MT: 4). */
  batchSize: number;
  /** Labeled samples per batch (UA-MT: 2). Equal to batchSize for supervised-only training. */
  labeledBatchSize: number;
  /** Master seed; sampler and augmentation streams are derived from it. */
  seed: number;
  /** Apply RandomRotFlip before the crop (default true). */
  rotFlip?: boolean;
}

/** One batch, NDHWC. */
export interface PatchBatch {
  /** [B, x, y, z, C] float32. */
  image: Float32Array;
  /** [B, x, y, z] int32 class indices (0 for padding). */
  label: Int32Array;
  /** [B, x, y, z, C]. */
  imageShape: [number, number, number, number, number];
  /** [B, x, y, z]. */
  labelShape: [number, number, number, number];
  /** Indices into the case list; the first `labeledCount` are labeled. */
  caseIndices: number[];
  labeledCount: number;
}

/** Resumable state of a {@link PatchSampler}. */
export interface PatchSamplerState {
  batches: TwoStreamState;
  augment: RngState;
}

/** Patches from loaded cases: two-stream indices, then UA-MT augmentation. */
export class PatchSampler {
  readonly cases: readonly Case[];
  readonly options: PatchSamplerOptions;
  readonly batches: TwoStreamBatchSampler;
  #aug: Rng;

  /**
   * @param cases loaded cases
   * @param labeled indices (into `cases`) of the labeled cases, in split order
   * @param unlabeled indices of the unlabeled cases
   */
  constructor(
    cases: readonly Case[],
    labeled: readonly number[],
    unlabeled: readonly number[],
    options: PatchSamplerOptions,
  ) {
    const channels = new Set(cases.map((c) => c.image.channels));
    if (channels.size > 1) throw new Error("PatchSampler: cases differ in channel count");
    for (const i of [...labeled, ...unlabeled]) {
      if (!(i >= 0 && i < cases.length)) {
        throw new Error(`PatchSampler: case index ${i} out of range`);
      }
    }
    this.cases = cases;
    this.options = { ...options };
    this.batches = new TwoStreamBatchSampler(
      labeled,
      unlabeled,
      options.batchSize,
      options.labeledBatchSize,
      new Rng(deriveSeed(options.seed, "sampler")),
    );
    this.#aug = new Rng(deriveSeed(options.seed, "augment"));
  }

  /** Iterations per epoch (floor(L / labeledBatchSize)). */
  get epochLength(): number {
    return this.batches.epochLength;
  }

  /** The next augmented batch. */
  next(): PatchBatch {
    const idx = this.batches.next();
    const [px, py, pz] = this.options.patch;
    const c = this.cases[0]?.image.channels ?? 1;
    const B = idx.length;
    const vox = px * py * pz;
    const image = new Float32Array(B * vox * c);
    const label = new Int32Array(B * vox);
    idx.forEach((ci, b) => {
      const cs = this.cases[ci]!;
      augmentPatch(
        { data: cs.image.data, shape: cs.image.shape, channels: cs.image.channels },
        { data: cs.label.data, shape: cs.label.shape, channels: 1 },
        this.options.patch,
        this.#aug,
        this.options.rotFlip ?? true,
        image,
        b * vox * c,
        label,
        b * vox,
      );
    });
    return {
      image,
      label,
      imageShape: [B, px, py, pz, c],
      labelShape: [B, px, py, pz],
      caseIndices: idx,
      labeledCount: this.options.labeledBatchSize,
    };
  }

  /** Snapshot for checkpoints. */
  state(): PatchSamplerState {
    return { batches: this.batches.state(), augment: this.#aug.state() };
  }

  /** Restore a snapshot from {@link PatchSampler.state}. */
  restore(s: PatchSamplerState): void {
    this.batches.restore(s.batches);
    this.#aug.restore(s.augment);
  }
}
