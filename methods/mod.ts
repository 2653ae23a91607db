/**
 * The method registry: one import and one list entry per method file. The registry is the
 * test matrix (conformance tests run over it) and what `deno task bench --list` prints.
 * @module
 */
import type { MethodDefinition } from "./types.ts";
import { supervised } from "./supervised.ts";
import { meanTeacher } from "./mean_teacher.ts";
import { uaMt } from "./ua_mt.ts";
import { dtc } from "./dtc.ts";
import { entropyMin } from "./entropy_min.ts";
import { uaCotraining } from "./ua_cotraining.ts";
import { massl } from "./massl.ts";
import { mssl } from "./mssl.ts";
import { masslCnn } from "./massl_cnn.ts";
import { masslPretrain } from "./massl_pretrain.ts";
import { ugMcl } from "./ug_mcl.ts";
import { ahuMultiNet } from "./ahu_multinet.ts";

/** Every registered method, in table order (baselines first). */
// deno-lint-ignore no-explicit-any
export const METHODS: readonly MethodDefinition<any>[] = [
  supervised,
  meanTeacher,
  uaMt,
  dtc,
  entropyMin,
  uaCotraining,
  masslCnn,
  masslPretrain,
  mssl,
  massl,
  ugMcl,
  ahuMultiNet,
];

// deno-lint-ignore no-explicit-any
const external: MethodDefinition<any>[] = [];

/**
 * Make a method defined outside the repository (`--method-file`) resolvable by id for this
 * process, without editing the registry. Its id must not clash with a registered one.
 */
// deno-lint-ignore no-explicit-any
export function addExternalMethod(def: MethodDefinition<any>): void {
  if (METHODS.some((d) => d.id === def.id)) {
    throw new Error(
      `method id '${def.id}' is already registered in methods/mod.ts; choose another id`,
    );
  }
  if (!external.some((d) => d.id === def.id)) external.push(def);
}

/** True for a method added with {@link addExternalMethod}. */
export function isExternalMethod(id: string): boolean {
  return external.some((d) => d.id === id);
}

/** Look a method up by id; throws one line naming the valid ids. */
// deno-lint-ignore no-explicit-any
export function getMethod(id: string): MethodDefinition<any> {
  const m = METHODS.find((d) => d.id === id) ?? external.find((d) => d.id === id);
  if (!m) {
    throw new Error(
      `unknown method '${id}' (expected one of ${METHODS.map((d) => d.id).join(", ")})`,
    );
  }
  return m;
}
