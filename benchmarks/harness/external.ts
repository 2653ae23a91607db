/**
 * Methods defined outside the repository (`deno task bench --method-file ./my_method.ts`):
 * the file is type-checked with this project's configuration, imported, its default export
 * validated as a {@link MethodDefinition}, and made resolvable by id for this process.
 * Every problem is one line naming the file.
 * @module
 */
import { resolve } from "node:path";
import { addExternalMethod } from "../../methods/mod.ts";
import type { MethodDefinition } from "../../methods/types.ts";

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

/** Type-check, import and validate a method file; returns its definition (registered for this process). */
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
  const problem = shapeProblem(mod.default);
  if (problem) throw new Error(`${where}: ${problem}`);
  // deno-lint-ignore no-explicit-any
  const def = mod.default as MethodDefinition<any>;
  try {
    addExternalMethod(def);
  } catch (e) {
    throw new Error(`${where}: ${(e as Error).message}`);
  }
  return def;
}
