/**
 * What a method author builds a method from, in one import: the method base and its V-Net and
 * MASSL-network variants (`method_base.ts`), the batch and SGD helpers (`training.ts`), the
 * networks, losses, ramps, EMA, MC uncertainty, SDF/contour targets, optimizers, state
 * conversions and the seeded RNG. Published as `@semiseg/bench/nn` (deno.json `exports`); the
 * method files of this repository import the modules one by one, so that a run's code hash
 * (benchmarks/harness/code_hash.ts) covers only the files its method uses.
 * @module
 */
export * from "./method_base.ts";
export * from "./training.ts";
export * from "./vnet.ts";
export * from "./massl_net.ts";
export * from "./massl_layers.ts";
export * from "./massl_train.ts";
export * from "./losses.ts";
export * from "./ramps.ts";
export * from "./ema.ts";
export * from "./uncertainty.ts";
export * from "./sdf.ts";
export * from "./neighbours.ts";
export * from "./optim.ts";
export * from "./state.ts";
export * from "./rng.ts";
