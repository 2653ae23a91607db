/**
 * Uncertainty-Aware Deep Co-training (Zheng, Fu, Xie, Chen, Wang, Sham; arXiv 2111.11629),
 * RECONSTRUCTED from the arXiv abstract alone: no full text, no code (the HiLab-git/SSL4MIS
 * README paper list gives its code as "None"), no result tables. What the abstract fixes: a
 * Monte-Carlo uncertainty map weights the supervised loss and the unsupervised loss in opposite
 * directions, and the supervised and unsupervised losses of the co-trained models are summed
 * into ONE backward pass. The rest is our reconstruction [I] (deep co-training / cross pseudo
 * supervision style, on the UA-MT recipe), configurable:
 *
 * - Two UA-MT V-Nets (`code/networks/vnet.py`, dropout on) with different initialisations: net 1 from
 *   `BuildContext.initSeed`, net 2 from `deriveSeed(initSeed, "net2")`.
 * - Per network k and image: T MC-dropout passes with input noise `clamp(N(0, 0.1), -0.2, 0.2)`
 *   (UA-MT recipe, T/2 forwards over the batch repeated twice), predictive entropy of the mean
 *   softmax, normalised `U = H / ln C` (clipped to [0, 1]).
 * - Supervised (labeled, net k): `0.5 * (mean(w_sup(U^k) * CE(p^k, y)) + Dice(p^k, y))` with
 *   `w_sup = 1 + U` (emphasise hard voxels; "none" gives the plain LA loss).
 * - Cross pseudo-label (unlabeled, net k learns net j's hard labels `argmax p^j`, no gradient
 *   through them): `sum(w_ps(U^j) CE(p^k, argmax p^j)) / sum(w_ps(U^j))` with
 *   `w_ps = 1 - U` ("linear") or `exp(-U)` ("exp") (suppress unreliable voxels).
 * - `L = sum_k [L_sup^k + lambda(t) L_ps^k]`, `lambda(t) = 0.1 sigmoid_rampup(iter // 150, 40)`;
 *   one gradient of L over both networks' parameters and one SGD (the LA scripts' SGD set-up).
 * - Prediction: mean of the two softmaxes (or net 1 only).
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import type { BuildContext, MethodDefinition, StepInfo, StepLosses, TrainBatch } from "./types.ts";
import { deriveSeed, Rng } from "./nn/rng.ts";
import { segHeads, VNet } from "./nn/vnet.ts";
import { diceLoss } from "./nn/losses.ts";
import { MethodBase, VNET_DEFAULTS, type VNetHp } from "./nn/method_base.ts";
import { laRamp, rampedWeight, type RampHp } from "./nn/ramps.ts";
import { mcEntropy, type McHp, mcOptions } from "./nn/uncertainty.ts";
import {
  channel,
  fullBatch,
  readLosses,
  rows,
  SGD_CHOICES,
  sgdOptimizer,
  sgdSchedule,
} from "./nn/training.ts";

/** How the supervised voxel weight grows with the network's own normalised uncertainty U. */
export type SupWeighting = "linear" | "none";
/** How the pseudo-label voxel weight shrinks with the OTHER network's normalised uncertainty. */
export type PseudoWeighting = "linear" | "exp" | "none";

/**
 * Hyper-parameters of {@link uaCotraining}: `consistency` is the weight C of the cross
 * pseudo-label term; T = `mcPasses` MC passes per network, a multiple of `mcRepeats`.
 */
export type UaCotrainingHp = VNetHp & RampHp & McHp & {
  /** Supervised voxel weight: "linear" = `1 + U`, "none" = 1. */
  supWeighting: SupWeighting;
  /** Pseudo-label voxel weight: "linear" = `1 - U`, "exp" = `exp(-U)`, "none" = 1. */
  pseudoWeighting: PseudoWeighting;
  /** "mean" = average of both networks' softmax; "net1" = network 1 only. */
  prediction: "mean" | "net1";
};

/** Defaults: the reconstruction above on the LA scripts' SGD set-up. */
export const UA_COTRAINING_DEFAULTS: UaCotrainingHp = {
  ...VNET_DEFAULTS,
  ...laRamp(0.1),
  mcPasses: 8,
  mcRepeats: 2,
  noiseStd: 0.1,
  noiseClip: 0.2,
  supWeighting: "linear",
  pseudoWeighting: "linear",
  prediction: "mean",
};

/** Entropy `H` (nats) -> normalised uncertainty `clip(H / ln C, 0, 1)`. */
export function normalisedUncertainty(entropy: tf.Tensor, nClasses: number): tf.Tensor {
  return tf.tidy(() => tf.clipByValue(tf.div(entropy, Math.log(nClasses)), 0, 1));
}

/** Supervised voxel weights from normalised uncertainty `u`: `1 + u` ("linear") or 1. */
export function supervisedWeights(u: tf.Tensor, form: SupWeighting): tf.Tensor {
  return tf.tidy(() => (form === "linear" ? tf.add(1, u) : tf.onesLike(u)));
}

/**
 * Pseudo-label voxel weights from the OTHER network's normalised uncertainty `u`:
 * `1 - u` ("linear"), `exp(-u)` ("exp") or 1 ("none").
 */
export function pseudoWeights(u: tf.Tensor, form: PseudoWeighting): tf.Tensor {
  return tf.tidy(() =>
    form === "linear" ? tf.sub(1, u) : form === "exp" ? tf.exp(tf.neg(u)) : tf.onesLike(u)
  );
}

/** Per-voxel cross entropy `-log softmax(logits)[label]`: [..., C] x [...] -> [...]. */
export function voxelCrossEntropy(logits: tf.Tensor, labels: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const c = logits.shape[logits.shape.length - 1]!;
    const onehot = tf.oneHot(tf.cast(labels, "int32"), c);
    return tf.neg(tf.sum(tf.mul(tf.logSoftmax(logits, -1), onehot), -1));
  });
}

/**
 * Hard pseudo-labels `argmax(logits)` over the last axis as a NEW int32 tensor with no link to
 * `logits` (the `.detach()` of the reference style: no gradient flows into the labeller).
 * The argmax runs inside a custom op that takes no inputs (`logits` is captured, not passed):
 * ops inside a custom op's forward are not taped, and a tape node with no inputs is on no path
 * from the parameters, so backprop never visits it (no zero gradient is even added). No
 * host readback: it runs on any backend.
 */
export function pseudoLabels(logits: tf.Tensor): tf.Tensor {
  return tf.customGrad(() => ({ value: tf.argMax(logits, -1), gradFunc: () => [] }))();
}

/**
 * Uncertainty-weighted LA supervised loss `0.5 * (mean(w * CE) + Dice(softmax[..., 1], y == 1))`
 * (w = 1 everywhere gives exactly the UA-MT `0.5 (CE + Dice)`).
 */
export function weightedSupervisedLoss(
  logits: tf.Tensor,
  labels: tf.Tensor,
  weights: tf.Tensor,
): { loss: tf.Scalar; ce: tf.Scalar; dice: tf.Scalar } {
  return tf.tidy(() => {
    const ce = tf.mean(tf.mul(weights, voxelCrossEntropy(logits, labels))) as tf.Scalar;
    const p1 = channel(tf.softmax(logits, -1), 1);
    const dice = diceLoss(p1, tf.equal(labels, 1));
    return { loss: tf.mul(0.5, tf.add(ce, dice)) as tf.Scalar, ce, dice };
  });
}

/** Certainty-weighted pseudo-label CE `sum(w * CE(logits, targets)) / (sum(w) + 1e-16)`. */
export function pseudoLabelLoss(
  logits: tf.Tensor,
  targets: tf.Tensor,
  weights: tf.Tensor,
): tf.Scalar {
  return tf.tidy(() =>
    tf.div(
      tf.sum(tf.mul(weights, voxelCrossEntropy(logits, targets))),
      tf.add(tf.sum(weights), 1e-16),
    ) as tf.Scalar
  );
}

/** Inputs of {@link coTrainingLoss}: full-batch (labeled rows first) tensors of both nets. */
export interface CoTrainingInputs {
  /** Training-mode logits of net 1 and net 2, [B, D, H, W, C]. */
  logits: [tf.Tensor, tf.Tensor];
  /** Normalised MC uncertainty of net 1 and net 2, [B, D, H, W], in [0, 1]. */
  uncertainty: [tf.Tensor, tf.Tensor];
  /** Labels of the first `labels.shape[0]` rows. */
  labels: tf.Tensor;
  /** Ramped weight of the pseudo-label terms. */
  lambda: number;
  supWeighting: SupWeighting;
  pseudoWeighting: PseudoWeighting;
}

/** Every scalar of one co-training loss; `loss` is the total. */
export type CoTrainingTerms =
  & Record<
    "loss" | "sup1" | "sup2" | "ce1" | "ce2" | "dice1" | "dice2",
    tf.Scalar
  >
  & { pseudo1?: tf.Scalar; pseudo2?: tf.Scalar };

/**
 * The joint objective `sum_k [L_sup^k + lambda L_ps^k]`: labeled rows get the uncertainty-
 * up-weighted supervised loss of each net with its OWN uncertainty; unlabeled rows (if any)
 * give each net the other's argmax as targets, weighted down by the OTHER's uncertainty.
 */
export function coTrainingLoss(inp: CoTrainingInputs): CoTrainingTerms {
  return tf.tidy(() => {
    const bl = inp.labels.shape[0]!;
    const b = inp.logits[0].shape[0]!;
    const out: Record<string, tf.Scalar> = {};
    const parts: tf.Scalar[] = [];
    const targets = b > bl ? inp.logits.map((l) => pseudoLabels(rows(l, bl, b))) : null;
    for (const k of [0, 1] as const) {
      const j = k === 0 ? 1 : 0;
      const n = k + 1;
      const sup = weightedSupervisedLoss(
        rows(inp.logits[k], 0, bl),
        inp.labels,
        supervisedWeights(rows(inp.uncertainty[k], 0, bl), inp.supWeighting),
      );
      out[`sup${n}`] = sup.loss;
      out[`ce${n}`] = sup.ce;
      out[`dice${n}`] = sup.dice;
      parts.push(sup.loss);
      if (targets !== null) {
        const ps = pseudoLabelLoss(
          rows(inp.logits[k], bl, b),
          targets[j]!,
          pseudoWeights(rows(inp.uncertainty[j], bl, b), inp.pseudoWeighting),
        );
        out[`pseudo${n}`] = ps;
        parts.push(tf.mul(inp.lambda, ps) as tf.Scalar);
      }
    }
    // Sequential adds (the gradient registry has no AddN).
    out.loss = parts.reduce((a, t) => tf.add(a, t) as tf.Scalar);
    return out as CoTrainingTerms;
  });
}

/** Two V-Nets (`net1.`, `net2.`) and one SGD over both (`optim`, keys `net1.*`, `net2.*`). */
class UaCotraining extends MethodBase<UaCotrainingHp> {
  readonly #nets: [VNet, VNet];

  constructor(hp: UaCotrainingHp, ctx: BuildContext) {
    super(hp, ctx);
    const opts = {
      inChannels: ctx.inChannels,
      nFilters: hp.nFilters,
      heads: segHeads(ctx.nClasses),
      dropoutP: hp.dropout,
    };
    this.#nets = [
      this.network("net1.", new VNet(opts, new Rng(ctx.initSeed))),
      this.network("net2.", new VNet(opts, new Rng(deriveSeed(ctx.initSeed, "net2")))),
    ];
    // One optimizer over both networks: `SGD(list(net1.parameters()) + list(net2.parameters()))`.
    const params = new Map<string, tf.Variable>();
    this.#nets.forEach((net, i) => {
      for (const [k, v] of net.params) params.set(`net${i + 1}.${k}`, v);
    });
    this.optimizer("optim", params, sgdOptimizer(params, hp), sgdSchedule(hp));
  }

  trainStep(batch: TrainBatch, step: StepInfo): Promise<StepLosses> {
    const hp = this.hp;
    const x = fullBatch(batch);
    // MC uncertainty of each network on the whole batch (no gradient; train mode as PyTorch).
    const uncertainty = this.#nets.map((net) =>
      tf.tidy(() =>
        normalisedUncertainty(
          mcEntropy(net, x, mcOptions(hp, step)),
          this.ctx.nClasses,
        )
      )
    ) as [tf.Tensor, tf.Tensor];
    const lambda = rampedWeight(hp, step.iteration);
    const aux: Record<string, tf.Tensor> = {};
    const { loss, lr } = this.minimise(() => {
      const logits = this.#nets.map((net) =>
        net.forward(x, { training: true, dropoutRng: step.random.dropout })[0]!
      ) as [tf.Tensor5D, tf.Tensor5D];
      const terms = coTrainingLoss({
        logits,
        uncertainty,
        labels: batch.labels,
        lambda,
        supWeighting: hp.supWeighting,
        pseudoWeighting: hp.pseudoWeighting,
      });
      for (const [k, t] of Object.entries(terms)) if (k !== "loss") aux[k] = tf.keep(t!);
      return terms.loss;
    }, step);
    x.dispose();
    const meanU = tf.tidy(() => tf.mean(tf.stack(uncertainty)));
    uncertainty.forEach((u) => u.dispose());
    return readLosses({ loss, ...aux, meanUncertainty: meanU }, { lr, consistencyWeight: lambda });
  }

  /** Mean of the two networks' softmax, or network 1's ("net1"), in eval mode. */
  predict(patch: tf.Tensor5D): tf.Tensor5D {
    return tf.tidy(() => {
      const p1 = tf.softmax(this.#nets[0].forward(patch, { training: false })[0]!, -1);
      if (this.hp.prediction === "net1") return p1 as tf.Tensor5D;
      const p2 = tf.softmax(this.#nets[1].forward(patch, { training: false })[0]!, -1);
      return tf.div(tf.add(p1, p2), 2) as tf.Tensor5D;
    });
  }
}

/** Registry entry: Uncertainty-Aware Deep Co-training (reconstructed from the abstract). */
export const uaCotraining: MethodDefinition<UaCotrainingHp> = {
  id: "ua-cotraining",
  meta: {
    title: "UA Deep Co-training",
    paper:
      "Zheng et al., Uncertainty-Aware Deep Co-training for Semi-supervised Medical Image Segmentation, arXiv 2111.11629 (2021)",
    referenceCode:
      "none (no public code; reconstructed from the abstract, see methods/ua_cotraining.ts)",
    role: "proposed",
    reconstructed: true,
    notes: "RECONSTRUCTED from the abstract only (no full text, no code, paper numbers n/a). " +
      "Two V-Nets (net 2 init seed = deriveSeed(initSeed, 'net2')); T MC-dropout passes per net " +
      "(UA-MT recipe, input noise, train mode: BN running stats are updated by the MC passes); " +
      "U = entropy / ln C clipped to [0, 1]; supervised 0.5 (mean((1 + U_k) CE) + Dice) " +
      "((1+U) CE + Dice, halved as the LA loss); cross pseudo-labels = the other " +
      "net's argmax of its training forward, weighted 1 - U_j (or exp(-U_j)), normalised by the " +
      "weight sum; lambda = 0.1 sigmoid_rampup(iter // 150, 40); one backward and one SGD over " +
      "both nets; prediction = mean softmax of both nets (option: net1).",
  },
  defaults: UA_COTRAINING_DEFAULTS,
  choices: {
    ...SGD_CHOICES,
    supWeighting: ["linear", "none"],
    pseudoWeighting: ["linear", "exp", "none"],
    prediction: ["mean", "net1"],
  },
  validate: (hp) => {
    if (hp.mcPasses < 1 || hp.mcPasses % hp.mcRepeats !== 0) {
      throw new Error(
        `method ua-cotraining: mcPasses ${hp.mcPasses} must be a positive multiple of mcRepeats ${hp.mcRepeats}`,
      );
    }
  },
  create: (hp, ctx) => new UaCotraining(hp, ctx),
};
