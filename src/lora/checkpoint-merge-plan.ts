/**
 * The checks of a checkpoint merge, from the headers only: every input is a checkpoint (not a LoRA)
 * of one family, holds the same tensors (matched by name with or without the
 * `model.diffusion_model.` prefix) with the same shapes and compatible dtypes. Every problem is
 * collected and reported together, naming the file and the tensor, before a byte is written.
 */
import { resolve } from 'node:path';
import { loraAsCheckpointProblem } from '../formats/not-a-checkpoint.ts';
import { checkpointArchitecture, labelOf } from '../formats/index.ts';
import { SafetensorsFile, type TensorInfo } from '../safetensors/reader.ts';
import { isCodecDType, isFloatDType } from '../tensor/dtype.ts';
import { stripDiffusionPrefix } from './checkpoint-blocks.ts';
import { checkpointMergeError } from './checkpoint-methods.ts';

export interface CheckpointInput {
  /** `A`, `B`, `C` or `base`: how messages name it. */
  role: string;
  path: string;
  file: SafetensorsFile;
}

export interface PlannedTensor {
  /** The name in the first model, which the output keeps. */
  name: string;
  /** The same tensor in every input, in input order (models, then the base). */
  infos: TensorInfo[];
  /** Float in every input (decoded and merged); else copied from the first model. */
  float: boolean;
}

export interface CheckpointPlan {
  inputs: CheckpointInput[];
  /** The family id (`flux`, `sdxl`, `sd1`, …; `unknown` when no family's keys are there). */
  architecture: string;
  tensors: PlannedTensor[];
}

const isFloat = (dtype: string) => isCodecDType(dtype) && isFloatDType(dtype);

function listed(problems: readonly string[], max = 30): string {
  return `${problems.slice(0, max).join('\n  ')}${problems.length > max ? `\n  … and ${problems.length - max} more` : ''}`;
}

/** Key without prefix → tensor, per file; two names of one key in a file are a problem. */
function byKey(input: CheckpointInput, problems: string[]): Map<string, TensorInfo> {
  const map = new Map<string, TensorInfo>();
  for (const t of input.file.tensors) {
    const { key } = stripDiffusionPrefix(t.name);
    const other = map.get(key);
    if (other) problems.push(`${input.path}: tensors ${other.name} and ${t.name} are the same weight under two prefixes`);
    else map.set(key, t);
  }
  return map;
}

/** Opens and checks every input; on failure the files are closed again and nothing exists yet. */
export async function planCheckpointMerge(models: readonly string[], base: string | undefined, out: string): Promise<CheckpointPlan> {
  const named = [...models.map((path, i) => ({ role: 'ABC'[i] ?? `model ${i + 1}`, path })), ...(base !== undefined ? [{ role: 'base', path: base }] : [])];
  const target = resolve(out);
  for (const n of named) {
    if (resolve(n.path) === target) throw checkpointMergeError(`the output ${out} is input ${n.role}; write to a new file (inputs are never modified)`);
  }
  const inputs: CheckpointInput[] = [];
  try {
    for (const n of named) inputs.push({ ...n, file: await SafetensorsFile.open(n.path) });
    for (const i of inputs) {
      const lora = loraAsCheckpointProblem(i.path, i.file.tensors.map((t) => t.name), `checkpoint (input ${i.role})`);
      if (lora) throw checkpointMergeError(lora);
    }
    const guesses = inputs.map((i) => ({ input: i, guess: checkpointArchitecture(i.file.tensors) }));
    const architecture = guesses[0]!.guess.architecture;
    const foreign = guesses.filter((g) => g.guess.architecture !== architecture);
    if (foreign.length) {
      const say = (g: (typeof guesses)[number]) => `${g.input.role} ${g.input.path} is ${labelOf(g.guess.architecture)} (${g.guess.evidence})`;
      throw checkpointMergeError(`the checkpoints are of different model families: ${[guesses[0]!, ...foreign].map(say).join('; ')}`);
    }

    const problems: string[] = [];
    const maps = inputs.map((i) => byKey(i, problems));
    const first = inputs[0]!;
    const tensors: PlannedTensor[] = [];
    for (const t of first.file.tensors) {
      const { key } = stripDiffusionPrefix(t.name);
      const infos: TensorInfo[] = [];
      for (const [k, input] of inputs.entries()) {
        const info = maps[k]!.get(key);
        if (!info) problems.push(`${input.path} (${input.role}) has no tensor ${t.name}${key !== t.name ? ` (nor ${key} under another prefix)` : ''}, which ${first.path} (A) has`);
        else infos.push(info);
      }
      if (infos.length !== inputs.length) continue;
      const odd = infos.findIndex((x) => x.shape.length !== t.shape.length || x.shape.some((d, j) => d !== t.shape[j]));
      if (odd >= 0) {
        problems.push(`tensor ${t.name}: shape [${t.shape}] in ${first.path} (A) but [${infos[odd]!.shape}] in ${inputs[odd]!.path} (${inputs[odd]!.role})`);
        continue;
      }
      const float = infos.map((x) => isFloat(x.dtype));
      if (float.some((f) => f !== float[0]) || (!float[0] && infos.some((x) => x.dtype !== t.dtype))) {
        problems.push(`tensor ${t.name}: dtypes cannot be merged (${infos.map((x, j) => `${x.dtype} in ${inputs[j]!.path} (${inputs[j]!.role})`).join(', ')}); float tensors merge with float tensors, others must have one dtype`);
        continue;
      }
      tensors.push({ name: t.name, infos, float: float[0]! });
    }
    for (const [k, input] of inputs.entries()) {
      if (k === 0) continue;
      for (const t of input.file.tensors) {
        if (!maps[0]!.has(stripDiffusionPrefix(t.name).key)) problems.push(`${first.path} (A) has no tensor ${t.name}, which ${input.path} (${input.role}) has`);
      }
    }
    if (problems.length) throw checkpointMergeError(`${problems.length} problem${problems.length === 1 ? '' : 's'} with the inputs (nothing was written):\n  ${listed(problems)}`);
    return { inputs, architecture, tensors };
  } catch (e) {
    await Promise.all(inputs.map((i) => i.file.close()));
    throw e;
  }
}
