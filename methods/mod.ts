/**
 * The method registry: one import and one list entry per method file. The registry is the
 * test matrix (conformance tests run over it) and what `deno task bench --list` prints.
 * @module
 */
import type { MethodDefinition } from "./types.ts";

/** Every registered method, in table order (baselines first). */
// deno-lint-ignore no-explicit-any
export const METHODS: readonly MethodDefinition<any>[] = [];

/** Look a method up by id; throws one line naming the valid ids. */
// deno-lint-ignore no-explicit-any
export function getMethod(id: string): MethodDefinition<any> {
  const m = METHODS.find((d) => d.id === id);
  if (!m) {
    throw new Error(
      `unknown method '${id}' (expected one of ${METHODS.map((d) => d.id).join(", ")})`,
    );
  }
  return m;
}
