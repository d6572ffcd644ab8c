/**
 * One pass over a file's key set that both detection and reading build on: architecture, how the
 * keys group into modules and patches, which layout (format) they form, and the `split_qkv` case.
 * Pure: names, shapes, metadata and (optionally) the values of 0-d tensors such as alphas.
 */
import type { Architecture } from '../adapter/model.ts';
import type { Family } from './family.ts';
import { guessArchitecture } from './architecture.ts';
import { checkpointArchitecture } from './checkpoint-family.ts';
import { familyOf } from './families.ts';
import { groupKeys, layoutCounts, type KeyGroups, type KeyInfo } from './keys/group.ts';
import { planPatches, type PatchPlan, type PatchSpec } from './keys/plan.ts';
import type { Layout } from './keys/resolve.ts';

export interface SplitQkv {
  /** The fused modules whose rank is n × the rank of their block's other modules. */
  modules: string[];
  /** `metadata`: ss_network_args says split_qkv; `alpha`: the rank pattern with an alpha that was not rescaled. */
  by: 'metadata' | 'alpha';
}

export interface Analysis {
  architecture: Architecture;
  architectureConfidence: number;
  format: string;
  evidence: string[];
  layouts: Partial<Record<Layout, number>>;
  groups: KeyGroups;
  plan: PatchPlan;
  control: boolean;
  splitQkv?: SplitQkv;
  notes: string[];
}

/** Format ids (what `AdapterSet.format` holds) for the key layouts. */
const LAYOUT_FORMAT: Record<Layout, string> = {
  kohya: 'kohya',
  diffusers: 'diffusers',
  comfyui: 'comfyui',
  onetrainer: 'onetrainer',
  lycoris: 'lycoris',
  xlabs: 'xlabs',
  bfl: 'bfl',
};

const LAYOUT_EVIDENCE: Record<Layout, string> = {
  kohya: 'kohya/sd-scripts names (lora_unet_ / lora_te*_ with lora_down/lora_up)',
  diffusers: 'diffusers/PEFT names (transformer. / base_model.model. / text_encoder. with lora_A/lora_B)',
  comfyui: 'ComfyUI-native names (diffusion_model. / text_encoders. + BFL or Hugging Face paths)',
  onetrainer: 'OneTrainer names (lora_transformer_ / lora_te2_ = T5)',
  lycoris: 'LyCORIS standalone names (lycoris_ + diffusers paths)',
  xlabs: 'XLabs x-flux processor names (processor.qkv_lora / proj_lora)',
  bfl: 'bare BFL checkpoint names',
};

/** Layouts that belong together: OneTrainer and LyCORIS use kohya's text-encoder prefixes, ComfyUI files hold bare BFL names. */
const FAMILY: Record<Layout, string> = { kohya: 'underscore', onetrainer: 'underscore', lycoris: 'underscore', diffusers: 'peft', comfyui: 'bfl', bfl: 'bfl', xlabs: 'bfl' };

/** A file is mixed when its keys come from different families, or its transformer keys from different layouts. */
function isMixed(groups: KeyGroups): boolean {
  const families = new Set(groups.modules.map((m) => FAMILY[m.resolved.layout]));
  const transformer = new Set(groups.modules.filter((m) => !('component' in m.resolved) || m.resolved.component === 'transformer').map((m) => m.resolved.layout));
  return families.size > 1 || transformer.size > 1;
}

function isControl(groups: KeyGroups): boolean {
  const bare = groups.modules.filter((m) => m.resolved.layout === 'bfl');
  return bare.some((m) => m.keys.has('set')) && bare.some((m) => m.keys.has('down'));
}

function truthy(v: unknown): boolean {
  return v === true || (typeof v === 'string' && /^(true|1|yes)$/i.test(v));
}

function metadataSplitQkv(metadata?: Readonly<Record<string, string>>): boolean {
  const raw = metadata?.ss_network_args;
  if (!raw) return false;
  try {
    return truthy((JSON.parse(raw) as Record<string, unknown>).split_qkv);
  } catch {
    return /["']?split_qkv["']?\s*[:=]\s*["']?true/i.test(raw);
  }
}

/** Fused LoRA modules whose rank is n (3 for qkv, 4 for linear1) times the rank of a sibling in the same block (the family's split_qkv table). */
function refusedSplitModules(specs: readonly PatchSpec[], family: Family | undefined): { spec: PatchSpec; sibling: PatchSpec; n: number }[] {
  const fused = family?.splitQkv;
  if (!fused) return [];
  const byTarget = new Map(specs.filter((s) => s.kind === 'lora' && !s.rows).map((s) => [s.target, s]));
  const out: { spec: PatchSpec; sibling: PatchSpec; n: number }[] = [];
  for (const spec of byTarget.values()) {
    const f = spec.entry && fused[spec.entry.module.original];
    if (!f || spec.layout !== 'kohya') continue;
    const sibling = byTarget.get(`${f.sibling.replace('{i}', String(spec.entry!.block))}.weight`);
    if (sibling && spec.rank === f.n * sibling.rank!) out.push({ spec, sibling, n: f.n });
  }
  return out;
}

export function analyzeKeys(
  tensors: readonly KeyInfo[],
  metadata?: Readonly<Record<string, string>>,
  scalars?: ReadonlyMap<string, number>,
): Analysis {
  const guessed = guessArchitecture(tensors, metadata);
  const guessedFamily = familyOf(guessed.architecture);
  let groups = groupKeys(tensors, guessedFamily);
  // names place a file in a family group (Stable Diffusion); which member it is takes the whole grouped key set
  const refined = guessedFamily?.detection.refine?.(groups, guessed, metadata);
  // no key has any adapter role: a model checkpoint, whose architecture its own key names tell
  const ckpt = groups.modules.length === 0 && tensors.length > 0 ? checkpointArchitecture(tensors) : undefined;
  const knownCheckpoint = ckpt !== undefined && ckpt.architecture !== 'unknown';
  const arch = knownCheckpoint ? { architecture: ckpt.architecture, confidence: 1, evidence: [ckpt.evidence] } : (refined ?? guessed);
  const family = familyOf(arch.architecture);
  if (family !== guessedFamily) groups = groupKeys(tensors, family);
  const control = isControl(groups);
  const plan = planPatches(groups, family, { control });
  const layouts = layoutCounts(groups);
  const evidence = [...arch.evidence];
  const notes: string[] = [];

  const ranked = (Object.entries(layouts) as [Layout, number][]).sort((a, b) => b[1] - a[1]);
  for (const [layout, n] of ranked) evidence.push(`${n} keys in ${LAYOUT_EVIDENCE[layout]}`);
  let format = ranked.length === 0 ? 'unknown' : LAYOUT_FORMAT[ranked[0]![0]];
  const kinds = new Set(plan.specs.map((s) => s.kind));
  const adapterKeys = groups.modules.some((m) => [...m.keys.keys()].some((role) => role !== 'set'));
  if (tensors.length > 0 && !adapterKeys && (knownCheckpoint || tensors.every((t) => /\.(?:weight|bias|scale)$/.test(t.name)))) {
    // a base model, not an adapter: its keys are weights (its norm scales look like BFL control
    // replacements, but without any LoRA beside them they are just the model's own)
    format = 'checkpoint';
    evidence.push('no adapter tensors; every key is a plain weight, bias or scale: a model checkpoint');
    plan.unknownKeys.length = 0;
    plan.specs.length = 0;
  } else if (control) {
    format = 'bfl-control';
    evidence.push('BFL control LoRA: lora_A/lora_B on bare BFL names with replacement norm scales');
  } else if (kinds.has('loha') || kinds.has('lokr')) {
    format = 'lycoris';
    evidence.push(`LyCORIS ${[...kinds].filter((k) => k === 'loha' || k === 'lokr').join('/')} tensors`);
  }
  if (isMixed(groups)) notes.push(`mixed layouts (${ranked.map(([l, n]) => `${l}: ${n} keys`).join(', ')}): each key read by its own naming`);
  if (refined?.legacyNames && format === 'bfl') format = 'diffusers';
  if (family && !family.place) {
    notes.push(`${family.label} LoRA: recognised, but loraflow has no module map for it yet; targets keep the file's module names and writers and merges into a base refuse it`);
  }
  if ((layouts.xlabs ?? 0) > 0) notes.push("x-flux's own pipeline multiplies both factors by lora_weight (strength²); loraflow reads the file at scale 1 like ComfyUI and diffusers");

  let splitQkv: SplitQkv | undefined;
  const refused = refusedSplitModules(plan.specs, family);
  if (refused.length > 0) {
    const alphaOf = (s: PatchSpec) => (s.tensors.alpha ? scalars?.get(s.tensors.alpha.name) : undefined);
    const unscaled = refused.filter(({ spec, sibling }) => {
      const a = alphaOf(spec);
      const b = alphaOf(sibling);
      return a !== undefined && b !== undefined && a === b;
    });
    const modules = refused.map((r) => r.spec.source.module);
    if (metadataSplitQkv(metadata)) splitQkv = { modules, by: 'metadata' };
    else if (unscaled.length > 0) splitQkv = { modules: unscaled.map((r) => r.spec.source.module), by: 'alpha' };
    evidence.push(
      splitQkv
        ? `split_qkv: ${splitQkv.modules.length} fused qkv/linear1 modules have 3×/4× the rank of their block (${splitQkv.by === 'metadata' ? 'ss_network_args split_qkv=True' : 'alpha not rescaled'})`
        : `${refused.length} fused qkv/linear1 modules have 3×/4× the rank of their block (a split layout re-fused with rescaled alpha)`,
    );
    if (splitQkv) {
      notes.push(
        'split_qkv file: sd-scripts saved the fused qkv/linear1 with rank n·r but kept the training alpha (sd-scripts#2204); ' +
          'read exactly as stored, so these modules apply at 1/3 (qkv) and 1/4 (linear1) of the strength they were trained at',
      );
    }
  }
  if (plan.problems.length > 0) notes.push(...plan.problems.map((p) => `unreadable module: ${p.message}`));

  return {
    architecture: arch.architecture,
    architectureConfidence: arch.confidence,
    format,
    evidence,
    layouts,
    groups,
    plan,
    control,
    splitQkv,
    notes,
  };
}
