/**
 * Progress on stderr: a redrawn one-line bar when stderr is a terminal (run k/n, iteration,
 * loss, it/s, ETA; during evaluation: cases, windows done/total, windows/s, ETA), plain lines
 * at most every `intervalMs` otherwise (CI logs, SLURM files).
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

/** What an evaluation progress update says (sliding windows over the test or val cases). */
export interface EvalProgress {
  run: number;
  runs: number;
  label: string;
  /** "eval" (the test cases) or "val" (best-val selection). */
  phase: "eval" | "val";
  casesDone: number;
  cases: number;
  windowsDone: number;
  windowsTotal: number;
  /** Seconds since this evaluation started. */
  elapsed: number;
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
  #last = -Infinity;
  readonly #tty: boolean;
  readonly #prefix: string;
  readonly #write: (s: string) => void;
  /** `write` receives the text (default: stderr); tests pass their own. */
  constructor(readonly intervalMs = 10_000, tty?: boolean, write?: (s: string) => void) {
    // Worker processes of --jobs share the terminal: plain lines, tagged with the worker.
    const worker = Deno.env.get("SEMISEG_WORKER");
    this.#tty = worker ? false : tty ?? Deno.stderr.isTerminal();
    this.#prefix = worker ? `[worker ${worker}] ` : "";
    this.#write = write ?? ((s) => Deno.stderr.writeSync(enc.encode(s)));
  }

  #show(text: string, frac: number, done: boolean): void {
    if (this.#tty) {
      const width = 20, filled = Math.round(Math.min(1, Math.max(0, frac)) * width);
      const bar = `[${"#".repeat(filled)}${".".repeat(width - filled)}]`;
      this.#write(`\r\x1b[2K${bar} ${text}${done ? "\n" : ""}`);
    } else {
      this.#write(this.#prefix + text + "\n");
    }
  }

  /**
   * Report evaluation progress; throttled like {@link update}, except that the start (0
   * windows done) and the end are always shown.
   */
  evalUpdate(u: EvalProgress): void {
    const now = performance.now();
    const done = u.casesDone >= u.cases;
    const start = u.windowsDone === 0 && u.casesDone === 0;
    if (!done && !start && now - this.#last < (this.#tty ? 200 : this.intervalMs)) return;
    this.#last = now;
    const head = `run ${u.run}/${u.runs} ${u.label} ${u.phase}`;
    let text: string;
    if (start) {
      text = `${head}: ${u.cases} cases, ${u.windowsTotal} sliding windows`;
    } else if (done) {
      text = `${head} done: ${u.cases} cases, ${u.windowsTotal} windows in ${
        formatDuration(u.elapsed)
      }`;
    } else {
      const rate = u.elapsed > 0 ? u.windowsDone / u.elapsed : 0;
      const eta = rate > 0 ? (u.windowsTotal - u.windowsDone) / rate : NaN;
      text = `${head} case ${
        Math.min(u.casesDone + 1, u.cases)
      }/${u.cases} windows ${u.windowsDone}/${u.windowsTotal} ${rate.toFixed(2)} win/s ETA ${
        formatDuration(eta)
      }`;
    }
    this.#show(text, u.windowsTotal > 0 ? u.windowsDone / u.windowsTotal : 1, done || start);
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
    this.#show(text, frac, done);
  }

  /** A one-off line (run skipped, run failed, table written). */
  line(s: string): void {
    this.#write((this.#tty ? "\r\x1b[2K" : this.#prefix) + s + "\n");
  }
}
