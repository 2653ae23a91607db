/**
 * Facts about this machine that `deno task doctor` prints and the time estimates key their
 * stored rates by: CPU model, oneDNN library file, a command's first output line.
 * @module
 */

function readText(path: string): string | null {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return null;
  }
}

/** The CPU model name (Linux /proc/cpuinfo, macOS sysctl), or "unknown cpu". */
export function cpuModel(): string {
  const info = readText("/proc/cpuinfo");
  if (info !== null) {
    for (const key of ["model name", "Model", "cpu model", "Hardware"]) {
      const m = new RegExp(`^${key}\\s*:\\s*(.+)$`, "m").exec(info);
      if (m) return m[1]!.trim().replace(/\s+/g, " ");
    }
  }
  if (Deno.build.os === "darwin") {
    try {
      const out = new Deno.Command("sysctl", {
        args: ["-n", "machdep.cpu.brand_string"],
        stdout: "piped",
        stderr: "null",
      }).outputSync();
      const s = new TextDecoder().decode(out.stdout).trim();
      if (out.success && s !== "") return s;
    } catch {
      // no sysctl: fall through
    }
  }
  return "unknown cpu";
}

/** The file a loaded shared library was mapped from (Linux /proc/self/maps), or null. */
export function loadedLibraryFile(fragment: string): string | null {
  const maps = readText("/proc/self/maps");
  if (maps === null) return null;
  for (const line of maps.split("\n")) {
    const path = line.slice(line.indexOf("/"));
    if (line.includes("/") && path.includes(fragment)) return path.trim();
  }
  return null;
}

/** Result of {@link probeCommand}. */
export interface CommandProbe {
  ok: boolean;
  /** stdout (trimmed), or the reason it could not run. */
  text: string;
}

/** Run `cmd args` with a time limit; never throws. */
export async function probeCommand(
  cmd: string,
  args: string[],
  timeoutMs = 8000,
): Promise<CommandProbe> {
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(cmd, { args, stdin: "null", stdout: "piped", stderr: "piped" })
      .spawn();
  } catch (e) {
    return {
      ok: false,
      text: e instanceof Deno.errors.NotFound
        ? `${cmd} not found`
        : (e instanceof Error ? e.message : String(e)),
    };
  }
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), timeoutMs);
  });
  const res = await Promise.race([child.output(), timeout]);
  clearTimeout(timer);
  if (res === "timeout") {
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
    await child.status.catch(() => {});
    return { ok: false, text: `${cmd} did not answer within ${timeoutMs / 1000} s` };
  }
  const dec = new TextDecoder();
  const out = dec.decode(res.stdout).trim();
  if (!res.success) {
    const err = dec.decode(res.stderr).trim().split("\n").filter(Boolean).at(-1) ?? "";
    return { ok: false, text: `${cmd} exited with ${res.code}${err ? `: ${err}` : ""}` };
  }
  return { ok: true, text: out };
}

/** The first directory of PATH holding an executable `name`, or null. */
export function which(name: string): string | null {
  if (name.includes("/")) return isFile(name) ? name : null;
  let path = "";
  try {
    path = Deno.env.get("PATH") ?? "";
  } catch {
    return null;
  }
  for (const dir of path.split(":")) {
    if (dir === "") continue;
    const p = `${dir}/${name}`;
    if (isFile(p)) return p;
  }
  return null;
}

function isFile(p: string): boolean {
  try {
    const st = Deno.statSync(p);
    return st.isFile && ((st.mode ?? 0o111) & 0o111) !== 0;
  } catch {
    return false;
  }
}
