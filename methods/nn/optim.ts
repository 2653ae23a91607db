/**
 * Optimizers with exact PyTorch update semantics and serialisable state, written as plain
 * update code over named `tf.Variable`s (not `tf.train`, whose state is opaque), plus the LR
 * schedules of the reproduced scripts and a gradient helper keyed by stable parameter names.
 *
 * References: PyTorch `torch/optim/sgd.py` (`_single_tensor_sgd`: `d_p = g + wd*p`;
 * `buf = d_p` on the first step, then `buf = m*buf + (1-dampening)*d_p`; `p -= lr*buf`) and
 * `torch/optim/adam.py` (`_single_tensor_adam`, non-amsgrad); LR step decay from UA-MT
 * `train_LA_meanteacher_certainty_unlabel.py` (`lr = base_lr * 0.1 ** (iter_num // 2500)`),
 * poly decay from HiLab-git/SSL4MIS `train_mean_teacher_3D.py`
 * (`lr = base_lr * (1 - iter_num / max_iterations) ** 0.9`).
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { hasFusedSgd, SGD_STEP } from "./native/sgd.ts";
// Gradients are registered only by this side-effect module in the split tfjs packages.
import "./gradients.ts";
import type { StoredTensor } from "../types.ts";
import { getStored, loadTensor, storeTensor } from "./state.ts";

/** Named trainable parameters (stable keys, as in a PyTorch state_dict). */
export type NamedVariables = ReadonlyMap<string, tf.Variable>;

/** Serialisable optimizer state: slot tensors by name plus scalars. */
export interface OptimizerState {
  tensors: Record<string, StoredTensor>;
  extra: Record<string, number>;
}

/** What every optimizer here offers. */
export interface Optimizer {
  /** Apply one update with learning rate `lr`; `grads` are keyed like the parameters. */
  step(grads: ReadonlyMap<string, tf.Tensor>, lr: number): void;
  /** Snapshot of the slots (momentum buffers / moments) and step count. */
  state(): OptimizerState;
  /** Restore a snapshot taken with {@link Optimizer.state}. */
  restore(s: OptimizerState): void;
  /** Free the slot tensors. */
  dispose(): void;
}

/**
 * `lr = base * gamma^(floor(iter / stepSize))`: the LA scripts' step decay with the LR used
 * by 0-based iteration `iter` (UA-MT/DTC set it after `iter_num % 2500 == 0`).
 */
export function stepLr(base: number, iteration: number, stepSize = 2500, gamma = 0.1): number {
  return base * Math.pow(gamma, Math.floor(iteration / stepSize));
}

/** Poly decay `base * (1 - iter/maxIter)^power` (SSL4MIS 3D scripts, power 0.9). */
export function polyLr(
  base: number,
  iteration: number,
  maxIterations: number,
  power = 0.9,
): number {
  return base * Math.pow(Math.max(0, 1 - iteration / maxIterations), power);
}

/** Options of {@link Sgd} (PyTorch names). */
export interface SgdOptions {
  momentum?: number;
  weightDecay?: number;
  dampening?: number;
  nesterov?: boolean;
}

/**
 * `torch.optim.SGD` with momentum and coupled weight decay: `d = g + wd*p`;
 * `buf = d` on the first step, else `buf = m*buf + (1-dampening)*d`; `d = nesterov ? d + m*buf
 * : buf`; `p = p - lr*d`.
 */
export class Sgd implements Optimizer {
  readonly #params: NamedVariables;
  readonly #momentum: number;
  readonly #wd: number;
  readonly #dampening: number;
  readonly #nesterov: boolean;
  readonly #buf = new Map<string, tf.Tensor>();

  constructor(params: NamedVariables, opts: SgdOptions = {}) {
    this.#params = params;
    this.#momentum = opts.momentum ?? 0;
    this.#wd = opts.weightDecay ?? 0;
    this.#dampening = opts.dampening ?? 0;
    this.#nesterov = opts.nesterov ?? false;
  }

  step(grads: ReadonlyMap<string, tf.Tensor>, lr: number): void {
    for (const [k, p] of this.#params) {
      const g = grads.get(k);
      if (g === undefined) continue; // PyTorch skips parameters whose .grad is None
      const old = this.#buf.get(k);
      const newBuf = tf.tidy((): tf.Tensor | undefined => {
        if (hasFusedSgd() && g.dtype === "float32") {
          // One pass over the arrays (native cpu layer), same formula as below.
          const attrs = {
            lr,
            momentum: this.#momentum,
            weightDecay: this.#wd,
            dampening: this.#dampening,
            nesterov: this.#nesterov,
          };
          const [np, nb] = tf.engine().runKernel(
            SGD_STEP,
            old === undefined ? { p, g } : { p, g, buf: old },
            attrs,
          ) as tf.Tensor[];
          p.assign(np!);
          return this.#momentum !== 0 ? nb : undefined;
        }
        let d: tf.Tensor = this.#wd !== 0 ? tf.add(g, tf.mul(this.#wd, p)) : g;
        let buf: tf.Tensor | undefined;
        if (this.#momentum !== 0) {
          buf = old === undefined
            ? tf.clone(d)
            : tf.add(tf.mul(this.#momentum, old), tf.mul(1 - this.#dampening, d));
          d = this.#nesterov ? tf.add(d, tf.mul(this.#momentum, buf)) : buf;
        }
        p.assign(tf.sub(p, tf.mul(lr, d)));
        return buf;
      }) as tf.Tensor | undefined;
      if (newBuf !== undefined) {
        old?.dispose();
        this.#buf.set(k, newBuf);
      }
    }
  }

  state(): OptimizerState {
    const tensors: Record<string, StoredTensor> = {};
    for (const [k, b] of this.#buf) tensors[`${k}.momentum_buffer`] = storeTensor(b);
    return { tensors, extra: {} };
  }

  restore(s: OptimizerState): void {
    this.dispose();
    for (const [k, p] of this.#params) {
      const name = `${k}.momentum_buffer`;
      if (s.tensors[name] === undefined) continue;
      this.#buf.set(k, loadTensor(getStored(s.tensors, name, p.shape)));
    }
  }

  dispose(): void {
    for (const b of this.#buf.values()) b.dispose();
    this.#buf.clear();
  }
}

/** Options of {@link Adam} (PyTorch names and defaults). */
export interface AdamOptions {
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
}

/**
 * `torch.optim.Adam` (non-amsgrad, coupled L2 weight decay): `g += wd*p`;
 * `m = b1 m + (1-b1) g`; `v = b2 v + (1-b2) g^2`; `p -= (lr / (1-b1^t)) * m /
 * (sqrt(v)/sqrt(1-b2^t) + eps)`.
 */
export class Adam implements Optimizer {
  readonly #params: NamedVariables;
  readonly #b1: number;
  readonly #b2: number;
  readonly #eps: number;
  readonly #wd: number;
  readonly #m = new Map<string, tf.Tensor>();
  readonly #v = new Map<string, tf.Tensor>();
  readonly #t = new Map<string, number>();

  constructor(params: NamedVariables, opts: AdamOptions = {}) {
    this.#params = params;
    this.#b1 = opts.beta1 ?? 0.9;
    this.#b2 = opts.beta2 ?? 0.999;
    this.#eps = opts.eps ?? 1e-8;
    this.#wd = opts.weightDecay ?? 0;
  }

  step(grads: ReadonlyMap<string, tf.Tensor>, lr: number): void {
    for (const [k, p] of this.#params) {
      const g0 = grads.get(k);
      if (g0 === undefined) continue;
      const t = (this.#t.get(k) ?? 0) + 1;
      const m0 = this.#m.get(k);
      const v0 = this.#v.get(k);
      const [m, v] = tf.tidy(() => {
        const g = this.#wd !== 0 ? tf.add(g0, tf.mul(this.#wd, p)) : g0;
        const m = tf.add(tf.mul(this.#b1, m0 ?? tf.zerosLike(p)), tf.mul(1 - this.#b1, g));
        const v = tf.add(
          tf.mul(this.#b2, v0 ?? tf.zerosLike(p)),
          tf.mul(1 - this.#b2, tf.square(g)),
        );
        const bc1 = 1 - Math.pow(this.#b1, t);
        const bc2 = 1 - Math.pow(this.#b2, t);
        const denom = tf.add(tf.div(tf.sqrt(v), Math.sqrt(bc2)), this.#eps);
        p.assign(tf.sub(p, tf.mul(lr / bc1, tf.div(m, denom))));
        return [m, v];
      });
      m0?.dispose();
      v0?.dispose();
      this.#m.set(k, m!);
      this.#v.set(k, v!);
      this.#t.set(k, t);
    }
  }

  state(): OptimizerState {
    const tensors: Record<string, StoredTensor> = {};
    const extra: Record<string, number> = {};
    for (const [k, m] of this.#m) {
      tensors[`${k}.exp_avg`] = storeTensor(m);
      tensors[`${k}.exp_avg_sq`] = storeTensor(this.#v.get(k)!);
      extra[`${k}.step`] = this.#t.get(k)!;
    }
    return { tensors, extra };
  }

  restore(s: OptimizerState): void {
    this.dispose();
    for (const [k, p] of this.#params) {
      const t = s.extra[`${k}.step`];
      if (t === undefined) continue;
      this.#m.set(k, loadTensor(getStored(s.tensors, `${k}.exp_avg`, p.shape)));
      this.#v.set(k, loadTensor(getStored(s.tensors, `${k}.exp_avg_sq`, p.shape)));
      this.#t.set(k, t);
    }
  }

  dispose(): void {
    for (const x of this.#m.values()) x.dispose();
    for (const x of this.#v.values()) x.dispose();
    this.#m.clear();
    this.#v.clear();
    this.#t.clear();
  }
}

/**
 * `loss.backward()` for named parameters: evaluates `f` (a scalar loss) under a gradient tape
 * and returns the loss and the gradients keyed by the parameters' stable names. The caller
 * disposes everything returned.
 */
export function lossAndGrads(
  f: () => tf.Scalar,
  params: NamedVariables,
): { value: tf.Scalar; grads: Map<string, tf.Tensor> } {
  const byTfName = new Map<string, string>();
  const list: tf.Variable[] = [];
  for (const [k, v] of params) {
    byTfName.set(v.name, k);
    list.push(v);
  }
  const { value, grads } = tf.variableGrads(f, list);
  const out = new Map<string, tf.Tensor>();
  for (const [name, g] of Object.entries(grads)) {
    const k = byTfName.get(name);
    if (k === undefined) g.dispose();
    else out.set(k, g);
  }
  return { value, grads: out };
}

/** Dispose every tensor of a gradient map. */
export function disposeGrads(grads: Map<string, tf.Tensor>): void {
  for (const g of grads.values()) g.dispose();
  grads.clear();
}
