/**
 * The checks and routing of applyToBase, from headers only: which file each patch goes to, which key
 * of that file it hits, and that its ΔW fits that weight. Every problem is collected and reported
 * together, naming the module, before a single byte is written.
 */
import { resolve } from 'node:path';
import type { AdapterSet, Component, Patch } from '../adapter/model.ts';
import { CanonicalView, type CanonicalTensor } from '../checkpoint/canonical.ts';
import { isPatchable } from '../checkpoint/encoding.ts';
import { numel } from '../tensor/lazy.ts';
import { adapterGeometry, matrixOf } from './geometry.ts';
import { crossArchitectureProblem } from '../formats/checkpoint-family.ts';
import { familyOf } from '../formats/families.ts';
import { commonVariant, variantOf } from '../formats/variants.ts';
import { loraAsCheckpointProblem } from '../formats/not-a-checkpoint.ts';
import { inputError, type LoraflowError } from '../errors.ts';

export type FileRole = 'base' | 'clip_l' | 't5';

export interface PlannedPatch {
  patch: Patch;
  weight: number;
  /** Index of the LoRA it came from (patches apply in LoRA order). */
  input: number;
  rowStart: number;
  rowLen: number;
}

export interface FilePlan {
  role: FileRole;
  in: string;
  out: string;
  /** The input under its canonical names, whatever its form (a single file, a diffusers folder, GGUF, scaled fp8). */
  file: CanonicalView;
  /** Prefix per component that made its targets resolve in this file. */
  prefixes: Partial<Record<Component, string>>;
  /** Patches per key of this file, in LoRA order. */
  byKey: Map<string, PlannedPatch[]>;
}

/** Where the LoRA's family says a patch's target sits in a checkpoint that does not name it plainly. */
function locateIn<P extends Pick<Patch, 'component' | 'target' | 'rows'>>(architecture: string, file: { has(key: string): boolean; info(key: string): { shape: readonly number[] } }, patch: P) {
  return familyOf(architecture)?.checkpoint.locator?.locate(file, patch);
}

export function applyError(message: string): LoraflowError {
  return inputError('APPLY', `apply: ${message}`);
}

/** Where a component's weights sit inside a checkpoint file (ComfyUI full checkpoints prefix them). */
const KEY_PREFIXES: Record<Component, readonly string[]> = {
  transformer: ['', 'model.diffusion_model.', 'diffusion_model.'],
  unet: ['', 'model.diffusion_model.', 'diffusion_model.'],
  clip_l: ['', 'text_encoders.clip_l.transformer.', 'clip_l.transformer.', 'cond_stage_model.transformer.', 'conditioner.embedders.0.transformer.'],
  clip_g: ['', 'text_encoders.clip_g.transformer.', 'clip_g.transformer.'],
  t5: ['', 'text_encoders.t5xxl.transformer.', 't5xxl.transformer.'],
};

/** The separate file a text-encoder component goes to when the caller names one. */
const COMPONENT_FILE: Partial<Record<Component, FileRole>> = { clip_l: 'clip_l', t5: 't5' };

/** A LoRA to apply; `path`: the file it was read from, named in messages and the report. */
export interface ApplyLora {
  set: AdapterSet;
  weight: number;
  path?: string;
}

export interface PlanInput {
  base: string;
  out: string;
  loras: readonly ApplyLora[];
  clipL?: { in: string; out: string };
  t5?: { in: string; out: string };
  ignoreTextEncoders?: boolean;
}

export interface Plan {
  files: FilePlan[];
  /** Text-encoder modules left out because ignoreTextEncoders was given. */
  ignored: string[];
  /** Modules of LoRAs with weight 0. */
  omitted: string[];
}

function listNames(names: readonly string[], max = 12): string {
  return names.length <= max ? names.join('; ') : `${names.slice(0, max).join('; ')}; and ${names.length - max} more`;
}

/** ` [from PATH]` for a LoRA read from a file (messages name the file the module is in). */
function fromFile(lora: ApplyLora): string {
  return lora.path ? ` [from ${lora.path}]` : '';
}

/**
 * For a target in a numbered block the base does not have (double_blocks.30 on a base with 19):
 * how many such blocks the base has, so the message says the LoRA is for a bigger model.
 */
function blockHint(plan: FilePlan, prefix: string, target: string): string {
  const m = /^(.*?)\.(\d+)\./.exec(target);
  if (!m) return '';
  const [, group, index] = m as unknown as [string, string, string];
  const head = `${prefix}${group}.`;
  let count = 0;
  for (const { name: t } of plan.file.tensors) {
    if (!t.startsWith(head)) continue;
    const n = Number.parseInt(t.slice(head.length), 10);
    if (Number.isInteger(n) && n + 1 > count) count = n + 1;
  }
  if (Number(index) < count) return '';
  return count === 0 ? `; the base has no ${group} at all` : `; the base has ${count} ${group} (0–${count - 1}), so this LoRA is for a model with more blocks`;
}

function bestPrefix(file: CanonicalView, component: Component, targets: readonly string[]): string {
  let best = '';
  let hits = -1;
  for (const prefix of KEY_PREFIXES[component]) {
    const n = targets.filter((t) => file.has(prefix + t)).length;
    if (n > hits) [best, hits] = [prefix, n];
  }
  return best;
}

/** Why `planned` does not fit weight `info`, or undefined when it does. */
function misfit(planned: Omit<PlannedPatch, 'rowStart' | 'rowLen'>, info: CanonicalTensor): { problem?: string; rowStart: number; rowLen: number } {
  const { patch } = planned;
  const target = matrixOf(info.shape);
  const rowStart = patch.rows?.[0] ?? 0;
  const rowLen = patch.rows?.[1] ?? target.rows;
  const fail = (problem: string) => ({ problem: `${patch.source.module} → ${info.name} [${info.shape}]: ${problem}`, rowStart, rowLen });
  if (!isPatchable(info.dtype)) return fail(`the weight is ${info.dtype}, not a floating-point dtype loraflow can patch`);
  if (rowStart < 0 || rowLen < 0 || rowStart + rowLen > target.rows) return fail(`rows ${rowStart}..${rowStart + rowLen} are outside the weight's ${target.rows} rows`);
  let g;
  try {
    g = adapterGeometry(patch.adapter, patch.source.module);
  } catch (e) {
    return fail((e as Error).message);
  }
  if (g.rows !== rowLen || g.cols !== target.cols) {
    return fail(`the ${patch.adapter.kind} ΔW is [${g.rows}, ${g.cols}] but ${patch.rows ? `rows ${rowStart}..${rowStart + rowLen} of ` : ''}the weight are [${rowLen}, ${target.cols}]`);
  }
  if (patch.dora) {
    const want = patch.dora.axis === 'out' ? rowLen : target.cols;
    const got = numel(patch.dora.magnitude.shape);
    if (got !== want) return fail(`the DoRA magnitude has ${got} values but needs one per ${patch.dora.axis === 'out' ? 'output row' : 'input column'} (${want})`);
  }
  return { rowStart, rowLen };
}

async function openFile(path: string, opened: CanonicalView[]): Promise<CanonicalView> {
  const f = await CanonicalView.open(path);
  opened.push(f);
  return f;
}

type Output = { role: FileRole; in: string; out: string };
type Routed = Map<FilePlan, Omit<PlannedPatch, 'rowStart' | 'rowLen'>[]>;

/** The files written, each a new path (inputs are never modified), no two the same; the weights finite. */
function checkOutputs(input: PlanInput): Output[] {
  const outputs: Output[] = [
    { role: 'base', in: input.base, out: input.out },
    ...(input.clipL ? [{ role: 'clip_l' as const, ...input.clipL }] : []),
    ...(input.t5 ? [{ role: 't5' as const, ...input.t5 }] : []),
  ];
  const inputPaths = new Set(outputs.map((o) => resolve(o.in)));
  const outputPaths = new Set<string>();
  for (const o of outputs) {
    const out = resolve(o.out);
    if (inputPaths.has(out)) throw applyError(`${o.role}: the output ${o.out} is an input file; write to a new file (inputs are never modified)`);
    if (outputPaths.has(out)) throw applyError(`${o.out} is named as the output of two files`);
    outputPaths.add(out);
  }
  input.loras.forEach(({ weight }, i) => {
    if (!Number.isFinite(weight)) throw applyError(`LoRA ${i + 1}: weight ${weight} is not a finite number`);
  });
  return outputs;
}

const WHAT: Record<FileRole, string> = { base: 'base checkpoint', clip_l: 'CLIP-L text encoder checkpoint', t5: 'T5 text encoder checkpoint' };

/** Opens every input; refuses a LoRA given as a checkpoint, a base of another family, and a LoRA for the other member of a pair. */
async function openInputs(input: PlanInput, outputs: readonly Output[], opened: CanonicalView[]): Promise<FilePlan[]> {
  const files: FilePlan[] = [];
  for (const o of outputs) {
    const file = await openFile(o.in, opened);
    const lora = loraAsCheckpointProblem(o.in, file.tensors.map((t) => t.name), WHAT[o.role]);
    if (lora) throw applyError(lora);
    files.push({ ...o, file, prefixes: {}, byKey: new Map() });
  }
  const baseFile = files[0]!;
  const foreign = crossArchitectureProblem({ path: input.base, keys: baseFile.file.tensors }, input.loras.map((l) => ({ ...l.set, path: l.path })));
  if (foreign) throw applyError(foreign);
  const pair = commonVariant([
    { what: input.base, variant: variantOf(input.loras[0]?.set.architecture ?? 'unknown', { path: input.base, metadata: baseFile.file.metadata }) },
    ...input.loras.map(({ set, path }, i) => ({ what: `LoRA ${i + 1}${path ? ` (${path})` : ''}`, variant: set.variant })),
  ]);
  if ('problem' in pair) throw applyError(pair.problem);
  return files;
}

/** Which file each patch goes to (a text encoder to its own file, or to the base that holds it), and what is left out. */
function routePatches(input: PlanInput, files: readonly FilePlan[]): { routed: Routed; ignored: string[]; omitted: string[] } {
  const fileFor = (role: FileRole) => files.find((f) => f.role === role);
  const baseFile = files[0]!;
  const routed: Routed = new Map();
  const ignored: string[] = [];
  const omitted: string[] = [];
  const homeless: string[] = [];
  input.loras.forEach(({ set, weight }, index) => {
    for (const patch of set.patches) {
      const name = `${patch.source.module} (LoRA ${index + 1}, ${patch.component})`;
      if (weight === 0) {
        omitted.push(name);
        continue;
      }
      const own = COMPONENT_FILE[patch.component];
      let dest = own ? fileFor(own) : baseFile;
      // A text encoder without its own file may still live in the base (full checkpoints hold them).
      if (!dest && (KEY_PREFIXES[patch.component].some((p) => baseFile.file.has(p + patch.target)) || locateIn(set.architecture, baseFile.file, patch))) dest = baseFile;
      if (!dest) {
        (input.ignoreTextEncoders ? ignored : homeless).push(name);
        continue;
      }
      const list = routed.get(dest) ?? [];
      list.push({ patch, weight, input: index });
      routed.set(dest, list);
    }
  });
  // a LoRA that would change nothing (every module left out) is refused, not merged as a plain copy
  input.loras.forEach(({ set, weight, path: file }, index) => {
    if (weight === 0) return;
    const applied = [...routed.values()].reduce((n, list) => n + list.filter((p) => p.input === index).length, 0);
    const left = set.patches.length;
    if (applied > 0 || homeless.some((h) => h.includes(`(LoRA ${index + 1},`))) return;
    const why = left === 0 ? 'it has no modules at all' : `all ${left} of its modules are text-encoder modules left out by ignoreTextEncoders`;
    const path = file ? ` (${file})` : '';
    throw applyError(`LoRA ${index + 1}${path} changes nothing in ${input.base}: ${why}; nothing was written`);
  });
  if (homeless.length) {
    throw applyError(`${homeless.length} text-encoder modules have no file to go to (give clipL / t5 files, or ignoreTextEncoders to leave them out): ${listNames(homeless)}`);
  }
  return { routed, ignored, omitted };
}

/** Each routed patch onto the key of its file that it fits (prefix, family locator), or a problem naming the module. */
function placePatches(input: PlanInput, routed: Routed, problems: string[]): void {
  for (const [plan, list] of routed) {
    const components = [...new Set(list.map((p) => p.patch.component))];
    for (const c of components) plan.prefixes[c] = bestPrefix(plan.file, c, list.filter((p) => p.patch.component === c).map((p) => p.patch.target));
    for (const listed of list) {
      let planned = listed;
      let key = plan.prefixes[planned.patch.component]! + planned.patch.target;
      // a family's checkpoints may hold a target under another name (OpenCLIP's q, k and v as row thirds of one in_proj weight)
      const located = plan.file.has(key) ? undefined : locateIn(input.loras[planned.input]!.set.architecture, plan.file, planned.patch);
      if (located) [key, planned] = [located.key, { ...planned, patch: located.patch }];
      const { patch } = planned;
      const from = fromFile(input.loras[planned.input]!);
      if (!plan.file.has(key)) {
        const blocks = blockHint(plan, plan.prefixes[patch.component]!, patch.target);
        problems.push(`${patch.source.module} (LoRA ${planned.input + 1}): ${plan.in} has no weight ${patch.target}${plan.prefixes[patch.component] ? ` (looked for ${key})` : ''}${blocks}${from}`);
        continue;
      }
      const { problem, rowStart, rowLen } = misfit(planned, plan.file.info(key));
      if (problem) {
        problems.push(`${problem} (LoRA ${planned.input + 1})${from}`);
        continue;
      }
      const onKey = plan.byKey.get(key) ?? [];
      onKey.push({ ...planned, rowStart, rowLen });
      plan.byKey.set(key, onKey);
    }
  }
}

/** Opens every input file and checks every patch. On failure the files are closed and nothing exists yet. */
export async function planApply(input: PlanInput): Promise<Plan> {
  const outputs = checkOutputs(input);
  const opened: CanonicalView[] = [];
  try {
    const files = await openInputs(input, outputs, opened);
    const { routed, ignored, omitted } = routePatches(input, files);
    const problems: string[] = [];
    placePatches(input, routed, problems);
    for (const plan of files)
      for (const [key, list] of plan.byKey) {
        const sets = list.filter((p) => p.patch.adapter.kind === 'set');
        if (sets.length > 1) problems.push(`${key}: replaced outright by ${sets.length} patches (${sets.map((p) => `${p.patch.source.module}, LoRA ${p.input + 1}`).join('; ')}); only one replacement per weight makes sense`);
      }
    if (problems.length) throw applyError(`${problems.length} patches do not fit the base (nothing was written):\n  ${problems.slice(0, 40).join('\n  ')}${problems.length > 40 ? `\n  … and ${problems.length - 40} more` : ''}`);
    return { files, ignored, omitted };
  } catch (e) {
    await Promise.all(opened.map((f) => f.close()));
    throw e;
  }
}
