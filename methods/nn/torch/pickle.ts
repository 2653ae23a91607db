/**
 * Python pickles, the subset PyTorch checkpoints use: reading through the npm package
 * `pickleparser` (0.2.1, pinned in deno.json) and writing protocol 2 with our own small writer.
 *
 * Why `pickleparser`: of the npm pickle readers (`grep -i pickle` in the env package lists:
 * `pickleparser`, `jpickle`, `unpickle`, `node-pickle`), it is the only one that is maintained
 * TypeScript with no dependencies, implements every opcode of protocols 0-5 (including
 * `BINPERSID`, which torch's storages need and `jpickle` lacks; `unpickle` describes itself as
 * for protocol 4 data; `node-pickle` runs a Python script), lets the caller resolve globals and persistent ids
 * (so nothing from the file is ever executed: a global becomes either one of the functions we
 * hand it or an inert placeholder), and reads several pickles from one buffer in turn (a
 * `BufferReader` keeps its position), which the legacy format needs. Its limits, and what this
 * module does about them: `LONG1` values wider than 8 bytes throw and negative ones decode
 * unsigned (torch's legacy magic number is a 10-byte `LONG1`, so `pth.ts` compares its bytes
 * instead of unpickling it; state_dict integers fit `BININT`), and the protocol-0 `DICT` opcode
 * ignores the Map option (pickles below protocol 2 are refused here; torch writes protocol 2).
 * No npm package writes pickles in the form `torch.load(weights_only=True)` accepts, hence
 * {@link PickleWriter} (the opcodes of that loader's allow-list only).
 * @module
 */
import { BufferReader, NameRegistry, Parser } from "pickleparser";

/** A Python global the caller did not map: inert, keeps its name (and args/state if built). */
export interface PyPlaceholder {
  __module__: string;
  __name__: string;
  args?: unknown[];
}

/** Whether `v` is a {@link PyPlaceholder} (an object of, or a call to, an unmapped global). */
export function isPlaceholder(v: unknown): v is PyPlaceholder {
  return typeof v === "object" && v !== null && typeof (v as PyPlaceholder).__module__ === "string";
}

// deno-lint-ignore no-explicit-any
type PyCallable = ((...args: any[]) => any) | (new (...args: any[]) => any);

/** Options of {@link unpickle}. */
export interface UnpickleOptions {
  /** Prefix of every error (e.g. the file and the record). */
  label: string;
  /** Map `module.name` to a callable; `undefined` makes an inert placeholder. */
  resolveGlobal?: (module: string, name: string) => PyCallable | undefined;
  /** `persistent_load(pid)` (torch: the storage tuples). */
  persistentLoad?: (pid: unknown) => unknown;
}

class Registry extends NameRegistry {
  readonly unresolved = new Set<string>();
  constructor(readonly fn: UnpickleOptions["resolveGlobal"]) {
    super();
  }
  override resolve(module: string, name: string): PyCallable {
    const f = this.fn?.(module, name);
    if (f !== undefined) return f;
    this.unresolved.add(`${module}.${name}`);
    return super.resolve(module, name);
  }
}

/** Result of {@link unpickle}. */
export interface Unpickled {
  value: unknown;
  /** `module.name` of the globals that became placeholders. */
  unresolved: string[];
}

/**
 * Unpickle the pickle that starts at `reader`'s position (protocol >= 2) and leave the
 * reader after its STOP. Dicts (and OrderedDicts the caller maps) are Maps, tuples and lists
 * arrays, bytes Uint8Arrays. Errors are one line, prefixed with `opts.label`.
 */
export function unpickle(reader: BufferReader, opts: UnpickleOptions): Unpickled {
  const start = reader.position;
  if (reader.length - start < 2) throw new Error(`${opts.label}: empty pickle (truncated file?)`);
  const b0 = reader.byte(), b1 = reader.byte();
  reader.skip(-2);
  if (b0 !== 0x80 || b1 < 2 || b1 > 5) {
    throw new Error(
      b0 === 0x80
        ? `${opts.label}: pickle protocol ${b1} is not supported (2-5)`
        : `${opts.label}: not a pickle of protocol 2-5 (first byte 0x${
          b0.toString(16).padStart(2, "0")
        }): not a PyTorch checkpoint, or a corrupt one`,
    );
  }
  const registry = new Registry(opts.resolveGlobal);
  const parser = new Parser({
    nameResolver: registry,
    persistentResolver: {
      resolve: (pid: unknown) => {
        if (opts.persistentLoad === undefined) throw new Error("unexpected persistent id");
        return opts.persistentLoad(pid);
      },
    },
    unpicklingTypeOfDictionary: "Map",
    unpicklingTypeOfSet: "Set",
  });
  try {
    const value = parser.read(reader);
    return { value, unresolved: [...registry.unresolved] };
  } catch (e) {
    const msg = (e instanceof Error ? e.message : String(e)).split("\n")[0];
    throw new Error(`${opts.label}: pickle at byte ${start}: ${msg}`);
  }
}

/** Unpickle a whole buffer (one pickle). */
export function unpickleBytes(bytes: Uint8Array, opts: UnpickleOptions): Unpickled {
  return unpickle(new BufferReader(bytes), opts);
}

export { BufferReader };

/** A Python `GLOBAL` reference to write. */
export interface PyGlobal {
  module: string;
  name: string;
}

const OP = {
  MARK: 0x28,
  STOP: 0x2e,
  BININT: 0x4a,
  BININT1: 0x4b,
  BININT2: 0x4d,
  NONE: 0x4e,
  BINPERSID: 0x51,
  REDUCE: 0x52,
  BINUNICODE: 0x58,
  EMPTY_TUPLE: 0x29,
  GLOBAL: 0x63,
  BINGET: 0x68,
  LONG_BINGET: 0x6a,
  BINPUT: 0x71,
  LONG_BINPUT: 0x72,
  SETITEMS: 0x75,
  TUPLE: 0x74,
  PROTO: 0x80,
  TUPLE1: 0x85,
  TUPLE2: 0x86,
  TUPLE3: 0x87,
  NEWTRUE: 0x88,
  NEWFALSE: 0x89,
  LONG1: 0x8a,
} as const;

/**
 * A protocol-2 pickle writer of the opcodes `torch.load(weights_only=True)` accepts (PyTorch
 * 1.13's `_weights_only_unpickler`): globals, strings, ints, booleans, None, tuples, REDUCE,
 * SETITEMS and BINPERSID. Globals and strings passed to {@link PickleWriter.memoGlobal} /
 * {@link PickleWriter.memoStr} are written once and then fetched from the memo.
 */
export class PickleWriter {
  #buf = new Uint8Array(1024);
  #len = 0;
  readonly #memo = new Map<string, number>();
  readonly #enc = new TextEncoder();

  constructor() {
    this.#bytes(OP.PROTO, 2);
  }

  #grow(n: number): void {
    if (this.#len + n <= this.#buf.length) return;
    const next = new Uint8Array(Math.max(2 * this.#buf.length, this.#len + n));
    next.set(this.#buf.subarray(0, this.#len));
    this.#buf = next;
  }

  #bytes(...b: number[]): this {
    this.#grow(b.length);
    for (const x of b) this.#buf[this.#len++] = x;
    return this;
  }

  #raw(b: Uint8Array): void {
    this.#grow(b.length);
    this.#buf.set(b, this.#len);
    this.#len += b.length;
  }

  #u32(v: number): void {
    this.#bytes(v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff);
  }

  #put(key: string): void {
    const i = this.#memo.size;
    this.#memo.set(key, i);
    if (i < 256) this.#bytes(OP.BINPUT, i);
    else {
      this.#bytes(OP.LONG_BINPUT);
      this.#u32(i);
    }
  }

  #get(key: string): boolean {
    const i = this.#memo.get(key);
    if (i === undefined) return false;
    if (i < 256) this.#bytes(OP.BINGET, i);
    else {
      this.#bytes(OP.LONG_BINGET);
      this.#u32(i);
    }
    return true;
  }

  /** `GLOBAL module\nname\n`. */
  global(g: PyGlobal): this {
    if (/[\n]/.test(g.module + g.name)) throw new Error("PickleWriter: newline in a global name");
    this.#bytes(OP.GLOBAL);
    this.#raw(this.#enc.encode(`${g.module}\n${g.name}\n`));
    return this;
  }

  /** A global written once, then fetched from the memo. */
  memoGlobal(g: PyGlobal): this {
    const key = `g:${g.module}.${g.name}`;
    if (!this.#get(key)) {
      this.global(g);
      this.#put(key);
    }
    return this;
  }

  /** A `str` (BINUNICODE). */
  str(s: string): this {
    const b = this.#enc.encode(s);
    this.#bytes(OP.BINUNICODE);
    this.#u32(b.length);
    this.#raw(b);
    return this;
  }

  /** A `str` written once, then fetched from the memo. */
  memoStr(s: string): this {
    const key = `s:${s}`;
    if (!this.#get(key)) {
      this.str(s);
      this.#put(key);
    }
    return this;
  }

  /** An `int` (any safe integer). */
  int(v: number): this {
    if (!Number.isSafeInteger(v)) throw new Error(`PickleWriter: ${v} is not a safe integer`);
    if (v >= 0 && v < 256) return this.#bytes(OP.BININT1, v);
    if (v >= 0 && v < 65536) return this.#bytes(OP.BININT2, v & 0xff, v >> 8);
    if (v >= -(2 ** 31) && v < 2 ** 31) {
      this.#bytes(OP.BININT);
      this.#u32(v >>> 0);
      return this;
    }
    // LONG1: little-endian two's complement, shortest form.
    let x = BigInt(v);
    const out: number[] = [];
    for (;;) {
      const byte = Number(x & 0xffn);
      out.push(byte);
      x >>= 8n;
      if ((x === 0n && !(byte & 0x80)) || (x === -1n && byte & 0x80)) break;
    }
    return this.#bytes(OP.LONG1, out.length, ...out);
  }

  bool(v: boolean): this {
    return this.#bytes(v ? OP.NEWTRUE : OP.NEWFALSE);
  }

  none(): this {
    return this.#bytes(OP.NONE);
  }

  mark(): this {
    return this.#bytes(OP.MARK);
  }

  /** `TUPLE` of everything since the last {@link PickleWriter.mark}. */
  tuple(): this {
    return this.#bytes(OP.TUPLE);
  }

  /** A tuple of `n` (0-3) items just pushed. */
  tupleN(n: 0 | 1 | 2 | 3): this {
    return this.#bytes([OP.EMPTY_TUPLE, OP.TUPLE1, OP.TUPLE2, OP.TUPLE3][n]!);
  }

  /** A tuple of ints. */
  intTuple(v: readonly number[]): this {
    if (v.length <= 3) {
      for (const x of v) this.int(x);
      return this.tupleN(v.length as 0 | 1 | 2 | 3);
    }
    this.mark();
    for (const x of v) this.int(x);
    return this.tuple();
  }

  /** `REDUCE`: call the callable below the argument tuple. */
  reduce(): this {
    return this.#bytes(OP.REDUCE);
  }

  /** `SETITEMS`: key/value pairs since the last mark into the dict below the mark. */
  setItems(): this {
    return this.#bytes(OP.SETITEMS);
  }

  /** `BINPERSID`: the top of the stack is a persistent id. */
  persistentId(): this {
    return this.#bytes(OP.BINPERSID);
  }

  /** `STOP` and the pickle's bytes. */
  finish(): Uint8Array {
    this.#bytes(OP.STOP);
    return this.#buf.slice(0, this.#len);
  }
}
