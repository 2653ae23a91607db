/**
 * `deno task data <name> [--root DIR]`: verify a dataset root and print findings one per line,
 * or, when the root is missing, where to obtain the data and the expected layout.
 * Exit status: 0 healthy, 1 problems found or root missing, 2 usage error.
 * @module
 */
import { parseArgs } from "node:util";
import { DATASETS, getDataset } from "./mod.ts";
import { isDir } from "./common.ts";
import { flagErrorMessage } from "../benchmarks/harness/flags.ts";

const USAGE = `usage: deno task data <name> [--root DIR]   (names: ${
  DATASETS.map((d) => d.id).join(", ")
})`;

/** Run the check; returns the exit code and writes lines through `print`. */
export async function main(args: string[], print: (line: string) => void): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      strict: true,
      options: { root: { type: "string" }, help: { type: "boolean", short: "h" } },
    });
  } catch (e) {
    // The shared one-line message, with this task's usage instead of "see --help".
    print(`${flagErrorMessage(e).replace(/ \(see --help for the flags\)$/, "")} (${USAGE})`);
    return 2;
  }
  if (parsed.values.help) {
    print(USAGE);
    return 0;
  }
  const [name, ...extra] = parsed.positionals;
  if (name === undefined || extra.length > 0) {
    print(USAGE);
    return 2;
  }
  let def;
  try {
    def = getDataset(name);
  } catch (e) {
    print(e instanceof Error ? e.message : String(e));
    return 2;
  }
  const root = parsed.values.root ?? `data/${def.id}`;
  if (def.id !== "synthetic" && !isDir(root)) {
    print(`${root}: not found. ${def.title}: where to get it and the layout expected:`);
    for (const l of def.obtain.split("\n")) print(l);
    return 1;
  }
  let problems: string[];
  try {
    const ds = def.open(root);
    const ids = await ds.caseIds();
    print(`${def.id}: ${ids.length} cases under ${root}`);
    problems = await ds.check();
  } catch (e) {
    print(e instanceof Error ? e.message.split("\n")[0]! : String(e));
    return 1;
  }
  for (const p of problems) print(p);
  print(problems.length === 0 ? `${def.id}: OK` : `${def.id}: ${problems.length} problem(s)`);
  return problems.length === 0 ? 0 : 1;
}

if (import.meta.main) {
  try {
    // deno-lint-ignore no-console
    Deno.exit(await main(Deno.args, (l) => console.log(l)));
  } catch (e) {
    // Anything unforeseen is still one line, not a stack trace.
    Deno.stderr.writeSync(
      new TextEncoder().encode(
        `data: ${(e instanceof Error ? e.message : String(e)).split("\n")[0]}\n`,
      ),
    );
    Deno.exit(2);
  }
}
