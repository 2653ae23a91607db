/**
 * Methods defined outside the repository (`deno task bench --method-file ./my_method.ts`):
 * the file is type-checked with this project's configuration, imported, its default export
 * (or its one exported definition) validated as a {@link MethodDefinition}, and made
 * resolvable by id for this process. A registered method's own file is that method.
 * Every problem is one line naming the file.
 * @module
 */
import { resolve } from "node:path";
import { addExternalMethod, METHODS } from "../../methods/mod.ts";
import type { MethodDefinition } from "../../methods/types.ts";
import type { BenchmarkSpec } from "./spec.ts";
import { withAddedMethods } from "./plan.ts";

const CONFIG = new URL("../../deno.json", import.meta.url).pathname;

function shapeProblem(v: unknown): string | null {
  if (v === undefined) return "has no default export (export default a MethodDefinition)";
  if (v === null || typeof v !== "object") {
    return `default export is a ${v === null ? "null" : typeof v}, not a MethodDefinition object`;
  }
  const d = v as Record<string, unknown>;
  if (typeof d.id !== "string" || !/^[a-z][a-z0-9-]*$/.test(d.id)) {
    return "default export needs a kebab-case string 'id'";
  }
  if (typeof d.create !== "function") return "default export needs a create(hp, ctx) function";
  if (d.defaults === null || typeof d.defaults !== "object") {
    return "default export needs a 'defaults' object of hyper-parameters";
  }
  for (const [k, x] of Object.entries(d.defaults as Record<string, unknown>)) {
    if (!["number", "string", "boolean"].includes(typeof x)) {
      return `hyper-parameter '${k}' must be a number, string or boolean`;
    }
  }
  const m = d.meta as Record<string, unknown> | undefined;
  if (!m || typeof m.title !== "string" || typeof m.paper !== "string") {
    return "default export needs meta.title and meta.paper strings";
  }
  return null;
}

/**
 * The method definition a module offers: its default export, else its one named export that
 * has a definition's shape (as the files `deno task new-method` writes: `export const myMethod`).
 * Returns the problem as text when there is none or several.
 */
function definitionOf(mod: Record<string, unknown>): { def: unknown } | { problem: string } {
  if (mod.default !== undefined) {
    const problem = shapeProblem(mod.default);
    return problem ? { problem } : { def: mod.default };
  }
  const named = Object.keys(mod).filter((k) => shapeProblem(mod[k]) === null).sort();
  if (named.length === 1) return { def: mod[named[0]!] };
  if (named.length > 1) {
    return {
      problem: `has no default export and ${named.length} method definitions (${
        named.join(", ")
      }): export default the one to run`,
    };
  }
  return { problem: shapeProblem(undefined)! };
}

/**
 * True when `def` is the registered definition of its id (the file was a registered method's
 * own module, e.g. one `deno task new-method` wrote), not a method from outside the registry.
 */
// deno-lint-ignore no-explicit-any
export function isRegisteredDefinition(def: MethodDefinition<any>): boolean {
  return METHODS.some((d) => d === def);
}

/**
 * `spec` with the row of a `--method-file` method: a method from outside the registry is
 * appended as an external row; a registered method's own file is the registered method, added
 * as with `--methods <id>` (the same row and run ids), or left as it is when `spec` has it.
 */
export function withMethodFile(
  spec: BenchmarkSpec,
  // deno-lint-ignore no-explicit-any
  def: MethodDefinition<any>,
): BenchmarkSpec {
  if (isRegisteredDefinition(def)) return withAddedMethods(spec, [def.id]);
  return {
    ...spec,
    methods: [...spec.methods, { method: def.id, label: def.meta.title, external: true }],
  };
}

/**
 * Type-check, import and validate a method file; returns its definition, made resolvable by
 * id for this process. The rule for ids: a file whose definition is the registered one of its
 * id (a registered method's own file) is that registered method; a file that defines another
 * method under a registered id is refused in one line (give it its own id).
 */
export async function loadMethodFile(
  path: string,
  opts: { typeCheck?: boolean } = {},
  // deno-lint-ignore no-explicit-any
): Promise<MethodDefinition<any>> {
  const abs = resolve(path);
  const where = `--method-file ${path}`;
  try {
    if (!(await Deno.stat(abs)).isFile) throw new Error("not a file");
  } catch {
    throw new Error(`${where}: no such file`);
  }
  if (opts.typeCheck !== false) {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["check", "--quiet", "--config", CONFIG, abs],
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).output();
    if (!out.success) {
      const text = new TextDecoder().decode(out.stderr) + new TextDecoder().decode(out.stdout);
      // deno-lint-ignore no-control-regex
      const first = text.replace(/\x1b\[[0-9;]*m/g, "").split("\n").find((l) =>
        /ERROR|error/.test(l)
      ) ?? "type check failed";
      throw new Error(`${where}: type check failed: ${first.trim()}`);
    }
  }
  let mod: Record<string, unknown>;
  try {
    mod = await import(`file://${abs}`);
  } catch (e) {
    throw new Error(
      `${where}: import failed: ${(e instanceof Error ? e.message : String(e)).split("\n")[0]}`,
    );
  }
  const found = definitionOf(mod);
  if ("problem" in found) throw new Error(`${where}: ${found.problem}`);
  // deno-lint-ignore no-explicit-any
  const def = found.def as MethodDefinition<any>;
  if (isRegisteredDefinition(def)) return def;
  if (METHODS.some((d) => d.id === def.id)) {
    throw new Error(
      `${where}: method id '${def.id}' is already registered in methods/mod.ts by another definition; give this file's method its own id (a registered method's own file is accepted as that method)`,
    );
  }
  try {
    addExternalMethod(def);
  } catch (e) {
    throw new Error(`${where}: ${(e as Error).message}`);
  }
  return def;
}
