/**
 * One-line messages for `node:util` parseArgs errors, shared by every task's flag parser
 * (bench, report, doctor, data): an unknown flag, a stray positional, a flag missing its value.
 * @module
 */

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
  return msg.replace(/^Option '([^']+)'/, "flag $1");
}
