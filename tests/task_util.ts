/**
 * Helper of the tests that run a task's entry point as a user would: `deno run -A SCRIPT ARGS`
 * from the checkout, one oneDNN thread, no stdin; exit code and decoded output.
 * @module
 */

/** The checkout's root folder. */
export const ROOT = new URL("..", import.meta.url).pathname;

const dec = new TextDecoder();

/** Run `script` (absolute, or relative to {@link ROOT}) with `args`. */
export async function task(
  script: string,
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", script, ...args],
    cwd: ROOT,
    env: { OMP_NUM_THREADS: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}
