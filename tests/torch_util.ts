/**
 * Helper of the tests that run PyTorch (Debian `python3-torch`, at /usr/bin/python3, which may
 * not be the first python3 on PATH): whether it is there, or the one-line reason it is not.
 * @module
 */

/** The Python interpreter the PyTorch tests use. */
export const PYTHON = "/usr/bin/python3";

/** Null when {@link PYTHON} imports `modules`; otherwise what is missing and the fix. */
export function torchMissing(modules = ["torch"]): string | null {
  try {
    Deno.statSync(PYTHON);
  } catch {
    return `${PYTHON} not found (apt-get install python3-torch)`;
  }
  const r = new Deno.Command(PYTHON, {
    args: ["-c", `import ${modules.join(", ")}`],
    stderr: "null",
  }).outputSync();
  return r.success
    ? null
    : `${PYTHON} cannot import ${modules.join(" and ")} (apt-get install python3-torch)`;
}
