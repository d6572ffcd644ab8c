/** Param schemas shared by several nodes, so the editor shows the same choices everywhere. */
import { z } from 'zod';
import type { NodeProblemSpec } from '../src/graph/node.ts';
import { parseDType, type DType } from '../src/tensor/dtype.ts';

/** Storage precisions a user picks for written tensors (`keep`: as they are). */
export const DTYPE_CHOICES = ['keep', 'fp32', 'fp16', 'bf16', 'fp8_e4m3fn', 'fp8_e5m2'] as const;
export type DTypeChoice = (typeof DTYPE_CHOICES)[number];

export const dtypeParam = (description: string) => z.enum(DTYPE_CHOICES).default('keep').describe(description);

export function dtypeOf(choice: DTypeChoice): DType | undefined {
  return choice === 'keep' ? undefined : parseDType(choice);
}

/** Containers a checkpoint is written in (`keep`: the input's): one safetensors file, a diffusers model folder, GGUF (from a GGUF input). */
export const MODEL_FORMATS = ['keep', 'safetensors', 'diffusers', 'gguf'] as const;
export const modelFormatParam = z.enum(MODEL_FORMATS).default('keep').describe("Output container: keep (the input's), safetensors (one file), diffusers (a model folder: shards + index, written whole then renamed), gguf (a GGUF input's own quant types).");

/** Key names a checkpoint is written with (`keep`: the input's). */
export const MODEL_LAYOUTS = ['keep', 'original', 'diffusers'] as const;
export const modelLayoutParam = z.enum(MODEL_LAYOUTS).default('keep').describe("Output key names: keep (the input's), original (BFL / ComfyUI names, fused q/k/v), diffusers (split q/k/v, from the family's module table).");

/** LoRA layouts loraflow writes. */
export const LORA_FORMATS = ['kohya', 'diffusers', 'comfyui'] as const;
export type LoraFormatChoice = (typeof LORA_FORMATS)[number];

export const rankParam = z.number().int().min(1).max(4096).optional().describe('Target rank (an upper bound when energy is also given).');
export const energyParam = z.number().gt(0).max(1).optional().describe('Keep the smallest rank holding this fraction of ‖ΔW‖² (e.g. 0.9).');

/** Per-link weights of a list input: one number per linked LoRA, in link order (default: all 1). */
export const weightsParam = z.array(z.number().finite()).optional().describe('Strength of each linked LoRA, in link order (default 1 each; negative subtracts).');

export function weightsCheck(weights: readonly number[] | undefined, links: number, input: string): NodeProblemSpec[] {
  return weights !== undefined && weights.length !== links
    ? [{ param: 'weights', message: `${weights.length} weight${weights.length === 1 ? '' : 's'} for ${links} linked ${input}` }]
    : [];
}

/** A user spelling (`BF16`, `bfloat16`, `fp8`, `keep`) → the param's choice name; throws naming the value. */
export function dtypeChoice(text: string): DTypeChoice {
  if (text.trim().toLowerCase() === 'keep') return 'keep';
  const want = parseDType(text);
  const found = DTYPE_CHOICES.find((c) => c !== 'keep' && parseDType(c) === want);
  if (!found) throw new Error(`dtype "${text}" cannot be written here (choose ${DTYPE_CHOICES.join(', ')})`);
  return found;
}
