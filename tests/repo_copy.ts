/**
 * Helper of the tests that change a repository (new-method, the README's add-a-method
 * commands): a temporary copy of this checkout (tracked and untracked, not ignored, files;
 * `node_modules` linked), so the real tree is never written.
 * @module
 */
import { join } from "node:path";

/** The checkout's root folder. */
export const REPO = new URL("..", import.meta.url).pathname;

const dec = new TextDecoder();

/**
 * Copy the checkout into a new temporary folder and return it, or null when `git` cannot list
 * the files (the caller skips, naming git).
 */
export async function copyRepo(): Promise<string | null> {
  let listed;
  try {
    listed = await new Deno.Command("git", {
      args: ["ls-files", "-co", "--exclude-standard"],
      cwd: REPO,
      stdout: "piped",
      stderr: "null",
    }).output();
  } catch {
    return null;
  }
  if (!listed.success) return null;
  const tmp = await Deno.makeTempDir({ prefix: "semiseg_copy_" });
  for (const f of dec.decode(listed.stdout).split("\n").filter(Boolean)) {
    await Deno.mkdir(join(tmp, f, ".."), { recursive: true });
    try {
      await Deno.copyFile(join(REPO, f), join(tmp, f));
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e; // deleted but still listed
    }
  }
  await Deno.symlink(join(REPO, "node_modules"), join(tmp, "node_modules"));
  return tmp;
}

/** Run `deno ARGS` in `cwd` (one oneDNN thread, no stdin); exit code and decoded output. */
export async function deno(
  args: string[],
  cwd: string,
): Promise<{ code: number; out: string; err: string }> {
  const o = await new Deno.Command(Deno.execPath(), {
    args,
    cwd,
    env: { OMP_NUM_THREADS: "1", NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: o.code, out: dec.decode(o.stdout), err: dec.decode(o.stderr) };
}

/** Every file under `dir` (relative paths, sorted), for "nothing was written" checks. */
export function listFiles(dir: string, prefix = ""): string[] {
  const out: string[] = [];
  for (const e of Deno.readDirSync(join(dir, prefix))) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.isDirectory) out.push(...listFiles(dir, rel));
    else out.push(rel);
  }
  return out.sort();
}
