/**
 * The base every method extends, after USB's `AlgorithmBase` (microsoft/Semi-supervised-learning
 * `semilearn/core/algorithmbase.py`: the base owns the model, the EMA model, the optimizer and the
 * checkpoint; an algorithm overrides its train-step hook). A method DECLARES its parts in its
 * constructor — networks, optimizers (each with its parameters and LR schedule), EMA teachers,
 * extra learnable tensors — and writes its losses in `trainStep` inside {@link MethodBase.minimise}
 * (the optimise tail: gradients, each optimizer's LR and step, EMA updates). The base implements
 * `state`, `restore` and `dispose` from the declarations.
 *
 * Two ready-made bases declare the usual networks: {@link VNetMethod} (a UA-MT/DTC V-Net student
 * with its SGD, optionally an EMA teacher; the heads and the prediction rule are parameters) and
 * {@link MasslNetMethod} (the MASSL network; optimizers declared by the method).
 *
 * Checkpoint layout (the one the per-method code wrote, so older checkpoints resume): parts in
 * declaration order; a network's tensors under its prefix (`student.`, `teacher.`, `net.`,
 * `net1.`); an optimizer's slot tensors under `<name>.` and its scalars under `extra[<name>]`; a
 * named variable under its key.
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import type {
  BuildContext,
  HyperParams,
  Method,
  MethodState,
  StepInfo,
  StepLosses,
  StoredTensor,
  TrainBatch,
} from "../types.ts";
import { emaUpdate } from "./ema.ts";
import { MasslNet, twoClass } from "./massl_net.ts";
import { Adam, disposeGrads, lossAndGrads, type NamedVariables, type Optimizer } from "./optim.ts";
import { Rng } from "./rng.ts";
import { assignStored, getStored, storeTensor } from "./state.ts";
import {
  type LrSchedule,
  prefixed,
  SGD_DEFAULTS,
  type SgdHp,
  sgdOptimizer,
  sgdSchedule,
  unprefixed,
} from "./training.ts";
import { type HeadSpec, segHeads, VNet } from "./vnet.ts";

/** What a declared network offers (VNet, MasslNet). */
export interface Network {
  /** Trainable parameters by stable name. */
  readonly params: NamedVariables;
  /** Parameters and buffers as stored tensors, names prefixed. */
  state(prefix?: string): Record<string, StoredTensor>;
  /** Inverse of `state`. */
  restore(tensors: Record<string, StoredTensor>, prefix?: string): void;
  /** Free every variable. */
  dispose(): void;
}

/** A declared optimizer: its checkpoint name, the parameters it updates, its LR schedule. */
export interface OptimizerSlot {
  readonly name: string;
  readonly params: NamedVariables;
  readonly optimizer: Optimizer;
  readonly lr: LrSchedule;
}

/** Options of {@link MethodBase.optimizer}. */
export interface OptimizerOptions {
  /** Store the optimizer's scalars under `extra[name]` (default true; false: tensors only). */
  scalars?: boolean;
}

/** Options of {@link MethodBase.minimise}. */
export interface MinimiseOptions {
  /** The optimizers that step, in order (default: every declared one). */
  optimizers?: OptimizerSlot | readonly OptimizerSlot[];
  /** Variables the gradient is taken over (default: the optimizers' parameters). */
  params?: NamedVariables;
}

/** The loss of one {@link MethodBase.minimise} (kept; read it with `readLosses`) and its LR. */
export interface Minimised {
  loss: tf.Scalar;
  /** The LR the first optimizer stepped with. */
  lr: number;
}

type Part =
  | { kind: "network"; prefix: string; net: Network }
  | { kind: "optimizer"; slot: OptimizerSlot; scalars: boolean }
  | { kind: "variable"; key: string; v: tf.Variable };

/** Throw one line unless the task is binary (`nClasses` 2); returns `ctx`. */
export function binaryOnly(id: string, ctx: BuildContext): BuildContext {
  if (ctx.nClasses !== 2) {
    throw new Error(`${id}: binary segmentation only (nClasses 2, got ${ctx.nClasses})`);
  }
  return ctx;
}

/** Union of parameter maps, in order (later keys win; keys are unique in practice). */
function unionOf(maps: readonly NamedVariables[]): NamedVariables {
  if (maps.length === 1) return maps[0]!;
  const out = new Map<string, tf.Variable>();
  for (const m of maps) for (const [k, v] of m) out.set(k, v);
  return out;
}

/** See the module doc. */
export abstract class MethodBase<H extends HyperParams> implements Method {
  readonly #parts: Part[] = [];
  readonly #slots: OptimizerSlot[] = [];
  readonly #emas: { teacher: Network; student: Network; decay: number }[] = [];

  constructor(protected readonly hp: H, protected readonly ctx: BuildContext) {}

  /** Declare a network stored under `prefix`; returns it. */
  protected network<N extends Network>(prefix: string, net: N): N {
    this.#parts.push({ kind: "network", prefix, net });
    return net;
  }

  /** Declare an optimizer over `params` with its LR schedule; stored under `name`. */
  protected optimizer(
    name: string,
    params: NamedVariables,
    optimizer: Optimizer,
    lr: LrSchedule,
    opts: OptimizerOptions = {},
  ): OptimizerSlot {
    const slot = { name, params, optimizer, lr };
    this.#parts.push({ kind: "optimizer", slot, scalars: opts.scalars ?? true });
    this.#slots.push(slot);
    return slot;
  }

  /** Declare an extra variable (e.g. a learned loss weight) stored under `key`; returns it. */
  protected variable(key: string, v: tf.Variable): tf.Variable {
    this.#parts.push({ kind: "variable", key, v });
    return v;
  }

  /**
   * Declare `teacher` an EMA of `student` (`ema.ts` `emaUpdate`, decay `decay`), updated after
   * the optimizers step in {@link minimise}.
   */
  protected ema(teacher: Network, student: Network, decay: number): void {
    this.#emas.push({ teacher, student, decay });
  }

  /**
   * The optimise tail: `f` (a scalar loss, evaluated under a tape that tidies) is
   * differentiated over the optimizers' parameters, each optimizer steps with its schedule's
   * LR at `step`, the gradients are freed, then every EMA teacher follows its student (methods
   * with a teacher minimise once per step). The loss is kept for the caller.
   */
  protected minimise(f: () => tf.Scalar, step: StepInfo, opts: MinimiseOptions = {}): Minimised {
    const o = opts.optimizers ?? this.#slots;
    const slots: readonly OptimizerSlot[] = Array.isArray(o) ? o : [o as OptimizerSlot];
    if (slots.length === 0) throw new Error("minimise: no optimizer declared");
    const { value, grads } = lossAndGrads(f, opts.params ?? unionOf(slots.map((s) => s.params)));
    let lr = NaN;
    slots.forEach((s, i) => {
      const r = s.lr(step.iteration, step.totalIterations);
      if (i === 0) lr = r;
      s.optimizer.step(grads, r);
    });
    disposeGrads(grads);
    for (const e of this.#emas) {
      emaUpdate(e.teacher.params, e.student.params, step.iteration, e.decay);
    }
    return { loss: value, lr };
  }

  abstract trainStep(batch: TrainBatch, step: StepInfo): Promise<StepLosses>;
  abstract predict(patch: tf.Tensor5D): tf.Tensor5D;

  state(): MethodState {
    const tensors: Record<string, StoredTensor> = {};
    const extra: Record<string, unknown> = {};
    for (const p of this.#parts) {
      if (p.kind === "network") Object.assign(tensors, p.net.state(p.prefix));
      else if (p.kind === "variable") tensors[p.key] = storeTensor(p.v);
      else {
        const o = p.slot.optimizer.state();
        Object.assign(tensors, prefixed(`${p.slot.name}.`, o.tensors));
        if (p.scalars) extra[p.slot.name] = o.extra;
      }
    }
    return { tensors, extra };
  }

  restore(s: MethodState): void {
    for (const p of this.#parts) {
      if (p.kind === "network") p.net.restore(s.tensors, p.prefix);
      else if (p.kind === "variable") {
        assignStored(p.v, getStored(s.tensors, p.key, p.v.shape), p.key);
      } else {
        const name = p.slot.name;
        p.slot.optimizer.restore({
          tensors: unprefixed(`${name}.`, s.tensors),
          extra: p.scalars ? (s.extra[name] ?? {}) as Record<string, number> : {},
        });
      }
    }
  }

  dispose(): void {
    for (const p of this.#parts) {
      if (p.kind === "network") p.net.dispose();
      else if (p.kind === "variable") p.v.dispose();
      else p.slot.optimizer.dispose();
    }
  }
}

/** Hyper-parameters every V-Net method has: width, dropout and the SGD set-up. */
export type VNetHp = SgdHp & {
  /** V-Net base width (`n_filters`). */
  nFilters: number;
  /** Dropout3d probability on x5 and x9. */
  dropout: number;
};

/** Defaults of {@link VNetHp}: `n_filters` 16, dropout 0.5, {@link SGD_DEFAULTS}. */
export const VNET_DEFAULTS: VNetHp = { nFilters: 16, dropout: 0.5, ...SGD_DEFAULTS };

/** The prediction rule of a V-Net method: class probabilities from eval-mode head outputs. */
export type PredictionRule = (outputs: tf.Tensor5D[]) => tf.Tensor5D;

/** Softmax of the first head: the UA-MT rule. */
export const softmaxOfFirstHead: PredictionRule = (o) => tf.softmax(o[0]!, -1) as tf.Tensor5D;

/** What a {@link VNetMethod} builds. */
export interface VNetSetup {
  /** Output heads (default `segHeads(nClasses)`). */
  heads?: HeadSpec[];
  /** Class probabilities from the student's eval-mode outputs (default {@link softmaxOfFirstHead}). */
  predict?: PredictionRule;
  /**
   * An EMA teacher with this decay: a second V-Net drawn right after the student from the same
   * stream (the reference's `create_model()` then `create_model(ema=True)`), stored as `teacher.`.
   */
  teacherDecay?: number;
}

/**
 * A method training one V-Net (`student.`) with the SGD of {@link VNetHp} (`optim`), drawn from
 * `ctx.initSeed`, and optionally its EMA teacher (`teacher.`). `predict` applies the setup's
 * rule to the student in eval mode.
 */
export abstract class VNetMethod<H extends VNetHp> extends MethodBase<H> {
  /** The (student) network. */
  protected readonly net: VNet;
  /** Its SGD (the only optimizer unless the method declares more). */
  protected readonly sgd: OptimizerSlot;
  readonly #teacher: VNet | null;
  readonly #rule: PredictionRule;

  constructor(hp: H, ctx: BuildContext, setup: VNetSetup = {}) {
    super(hp, ctx);
    const rng = new Rng(ctx.initSeed);
    const opts = {
      inChannels: ctx.inChannels,
      nFilters: hp.nFilters,
      heads: setup.heads ?? segHeads(ctx.nClasses),
      dropoutP: hp.dropout,
    };
    this.net = this.network("student.", new VNet(opts, rng));
    this.#teacher = null;
    if (setup.teacherDecay !== undefined) {
      this.#teacher = this.network("teacher.", new VNet(opts, rng));
      this.ema(this.#teacher, this.net, setup.teacherDecay);
    }
    this.sgd = this.optimizer(
      "optim",
      this.net.params,
      sgdOptimizer(this.net.params, hp),
      sgdSchedule(hp),
    );
    this.#rule = setup.predict ?? softmaxOfFirstHead;
  }

  /** The EMA teacher (declared with `teacherDecay`). */
  protected get teacher(): VNet {
    if (this.#teacher === null) throw new Error("VNetMethod: no teacher declared");
    return this.#teacher;
  }

  predict(patch: tf.Tensor5D): tf.Tensor5D {
    return tf.tidy(() => this.#rule(this.net.forward(patch, { training: false })));
  }

  /** The student when `predict` is its first head's softmax (the evaluator's fused path). */
  inferenceNetwork(): VNet | null {
    const plain = this.#rule === softmaxOfFirstHead &&
      this.predict === VNetMethod.prototype.predict;
    return plain ? this.net : null;
  }
}

/**
 * A method on the MASSL network (`net.`, `MasslNet`, drawn from `ctx.initSeed`) with
 * `recChannels` reconstruction channels (0: no reconstruction decoder). `predict` is the
 * two-class sigmoid foreground of the segmentation path; the method declares its Adams with
 * {@link MasslNetMethod.adam}.
 */
export abstract class MasslNetMethod<H extends HyperParams & { nFilters: number }>
  extends MethodBase<H> {
  /** The network (public: tests read its parameter groups). */
  readonly net: MasslNet;

  constructor(hp: H, ctx: BuildContext, recChannels: number) {
    super(hp, ctx);
    this.net = this.network(
      "net.",
      new MasslNet(
        { inChannels: ctx.inChannels, nFilters: hp.nFilters, recChannels },
        new Rng(ctx.initSeed),
      ),
    );
  }

  /** Declare `torch.optim.Adam(params)` (PyTorch defaults) named `name`, LR from `lr`. */
  protected adam(name: string, params: NamedVariables, lr: LrSchedule): OptimizerSlot {
    return this.optimizer(name, params, new Adam(params), lr);
  }

  predict(patch: tf.Tensor5D): tf.Tensor5D {
    return tf.tidy(() => twoClass(this.net.forward(patch, { rec: false }).seg!));
  }
}
