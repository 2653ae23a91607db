/**
 * The flag parsing every task shares (bench, report, evaluate, doctor, data): strict
 * `node:util` parseArgs whose errors become one line (an unknown flag, a stray positional, a
 * flag missing its value), negative numbers handed to value flags, and the check of a
 * results folder given as a flag.
 * @module
 */
import { dirname } from "node:path";
import { parseArgs, type ParseArgsConfig } from "node:util";

/** The one-line message for a parseArgs error (the first line of anything else). */
export function flagErrorMessage(e: unknown): string {
  const msg = ((e instanceof Error ? e.message : String(e)).split("\n")[0] ?? "").trim();
  const unknown = /Unknown option '([^']+)'/.exec(msg);
  if (unknown) return `unknown flag ${unknown[1]} (see --help for the flags)`;
  const pos = /Unexpected argument '([^']+)'/.exec(msg);
  if (pos) return `unexpected argument '${pos[1]}' (flags take the form --name value)`;
  // "Option '-r, --root <value>' argument missing": name the long form.
  const missing = /Option '([^']+)' argument missing/.exec(msg);
  if (missing) {
    const spec = missing[1]!;
    return `flag ${/--[\w-]+/.exec(spec)?.[0] ?? spec.split(/[ ,]/)[0]} needs a value`;
  }
  // "Option '--iterations <value>' argument is ambiguous": a value that starts with '-'.
  const ambiguous = /Option '([^']+)' argument is ambiguous/.exec(msg);
  if (ambiguous) {
    const name = /--[\w-]+/.exec(ambiguous[1]!)?.[0] ?? ambiguous[1]!.split(/[ ,]/)[0];
    return `flag ${name} needs a value (one that starts with '-' is written ${name}=-VALUE)`;
  }
  return msg.replace(/^Option '([^']+)'/, "flag $1");
}

/** The option table of {@link parseFlags} (parseArgs' `options`). */
export type FlagOptions = NonNullable<ParseArgsConfig["options"]>;

/**
 * Strict `node:util` parseArgs of `argv` against `options`; any parse error is thrown as one
 * line ({@link flagErrorMessage}), naming the flag. Positionals are refused unless
 * `allowPositionals`.
 */
export function parseFlags<T extends FlagOptions, P extends boolean = false>(
  argv: string[],
  options: T,
  allowPositionals?: P,
): ReturnType<typeof parseArgs<{ args: string[]; options: T; strict: true; allowPositionals: P }>> {
  try {
    return parseArgs({
      args: argv,
      options,
      strict: true,
      allowPositionals: (allowPositionals ?? false) as P,
    });
  } catch (e) {
    throw new Error(flagErrorMessage(e));
  }
}

/**
 * `argv` with every negative number given to a value flag joined to it (`--iterations -1`
 * becomes `--iterations=-1`), so that parseArgs hands the value to the flag's own check,
 * which names the flag and what it expects, instead of calling the flag ambiguous.
 */
export function joinNegativeValues(argv: string[], valueFlags: Iterable<string>): string[] {
  const flags = new Set([...valueFlags].map((f) => `--${f}`));
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!, next = argv[i + 1];
    if (flags.has(a) && next !== undefined && /^-(\d|\.\d)/.test(next)) {
      out.push(`${a}=${next}`);
      i++;
    } else {
      out.push(a);
    }
  }
  return out;
}

/**
 * Check that `path` (a results root given as `flag`) is a folder or can become one: a file at
 * `path`, or a file where one of its parent folders should be, is a one-line error naming
 * the flag and the file (instead of the os error of the first write).
 */
export async function checkOutputFolder(flag: string, path: string): Promise<void> {
  let p = path;
  for (;;) {
    let info: Deno.FileInfo | null = null;
    try {
      info = await Deno.stat(p);
    } catch (e) {
      // ENOTDIR: a file stands where a parent folder should; the walk up names it.
      if (!(e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory)) {
        throw new Error(`${flag}: cannot use '${path}' (${(e as Error).message.split("\n")[0]})`);
      }
    }
    if (info) {
      if (info.isDirectory) return;
      throw new Error(
        p === path
          ? `${flag}: '${path}' is a file, not a folder (pass a folder for the results)`
          : `${flag}: '${path}' lies under '${p}', which is a file (pass a folder for the results)`,
      );
    }
    const parent = dirname(p);
    if (parent === p) return;
    p = parent;
  }
}
