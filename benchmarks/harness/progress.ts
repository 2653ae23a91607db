/**
 * Progress on stderr: a redrawn one-line bar when stderr is a terminal (run k/n, iteration,
 * loss, it/s, ETA), plain lines at most every `intervalMs` otherwise (CI logs, SLURM files).
 * @module
 */

/** What a progress update says. */
export interface ProgressUpdate {
  run: number;
  runs: number;
  label: string;
  iteration: number;
  iterations: number;
  loss: number;
  itPerSec: number;
}

const enc = new TextEncoder();

/** Format seconds as h:mm:ss or m:ss. */
export function formatDuration(s: number): string {
  if (!Number.isFinite(s) || s < 0) return "?";
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = Math.floor(s % 60);
  const mm = h > 0 ? String(m).padStart(2, "0") : String(m);
  return `${h > 0 ? `${h}:` : ""}${mm}:${String(sec).padStart(2, "0")}`;
}

/** Reports training progress to stderr. */
export class Progress {
  #last = 0;
  readonly #tty: boolean;
  readonly #prefix: string;
  constructor(readonly intervalMs = 10_000, tty?: boolean) {
    // Worker processes of --jobs share the terminal: plain lines, tagged with the worker.
    const worker = Deno.env.get("SEMISEG_WORKER");
    this.#tty = worker ? false : tty ?? Deno.stderr.isTerminal();
    this.#prefix = worker ? `[worker ${worker}] ` : "";
  }

  /** Report an iteration; throttled (always shown for the last iteration). */
  update(u: ProgressUpdate): void {
    const now = performance.now();
    const done = u.iteration >= u.iterations;
    if (!done && now - this.#last < (this.#tty ? 200 : this.intervalMs)) return;
    this.#last = now;
    const eta = u.itPerSec > 0 ? (u.iterations - u.iteration) / u.itPerSec : NaN;
    const frac = u.iterations > 0 ? u.iteration / u.iterations : 1;
    const text = `run ${u.run}/${u.runs} ${u.label} it ${u.iteration}/${u.iterations} loss ${
      u.loss.toFixed(4)
    } ${u.itPerSec.toFixed(2)} it/s ETA ${formatDuration(eta)}`;
    if (this.#tty) {
      const width = 20, filled = Math.round(frac * width);
      const bar = `[${"#".repeat(filled)}${".".repeat(width - filled)}]`;
      Deno.stderr.writeSync(enc.encode(`\r\x1b[2K${bar} ${text}${done ? "\n" : ""}`));
    } else {
      Deno.stderr.writeSync(enc.encode(this.#prefix + text + "\n"));
    }
  }

  /** A one-off line (run skipped, run failed, table written). */
  line(s: string): void {
    Deno.stderr.writeSync(enc.encode((this.#tty ? "\r\x1b[2K" : this.#prefix) + s + "\n"));
  }
}
