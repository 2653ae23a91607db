/**
 * Helper of the tests that run a task's entry point as a user would: `deno run -A SCRIPT ARGS`
 * from the checkout, one oneDNN thread, no stdin; exit code and decoded output.
 * @module
 */

/** The checkout's root folder. */
export const ROOT = new URL("..", import.meta.url).pathname;

const dec = new TextDecoder();

/**
 * The bench flags of the smallest real run the state tests use: supervised, 2 labeled, seed 1,
 * 10 iterations on the cpu backend, one worker, no estimate (add `--out DIR`).
 */
export const TINY_RUN: readonly string[] = [
  "--methods",
  "supervised",
  "--labeled",
  "2",
  "--seeds",
  "1",
  "--iterations",
  "10",
  "--backend",
  "cpu",
  "--jobs",
  "1",
  "--no-estimate",
];

/** Run `script` (absolute, or relative to {@link ROOT}) with `args`, `env` added. */
export async function task(
  script: string,
  args: readonly string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", script, ...args],
    cwd: ROOT,
    env: { OMP_NUM_THREADS: "1", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}
