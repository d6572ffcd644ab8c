import { checkpointArchitecture } from '../src/formats/checkpoint-family.ts';
import { detectFormat } from '../src/formats/detect.ts';
import { adapterOnlyKeys } from '../src/formats/keys/roles.ts';

/** What a safetensors header says a file is, from its tensor names and metadata alone. */
export interface ModelKind {
  /** lora: adapter tensors; checkpoint: a model's weights; other: neither that loraflow recognises. */
  kind: 'lora' | 'checkpoint' | 'other';
  /** The adapter layout (kohya, diffusers, ai-toolkit, …), for LoRAs. */
  format?: string;
  /** The model family (flux, sdxl, …), or "unknown". */
  architecture: string;
}

/**
 * Header only: alpha values (tensor data) are not read, which the layout and family never need.
 * Shared by the drop route and the file listing, so both name a file alike.
 */
export function modelKind(tensors: readonly { name: string; shape: readonly number[] }[], metadata?: Readonly<Record<string, unknown>>): ModelKind {
  if (adapterOnlyKeys(tensors.map((t) => t.name)).length > 0) {
    const d = detectFormat(tensors, metadata);
    return { kind: 'lora', format: d.format, architecture: d.architecture };
  }
  const { architecture } = checkpointArchitecture(tensors);
  return { kind: architecture !== 'unknown' ? 'checkpoint' : 'other', architecture };
}

/** `kohya · flux`, `checkpoint · sdxl`: what a file widget shows beside a name. */
export function kindLabel(k: ModelKind): string {
  if (k.kind === 'lora') return [k.format, k.architecture].filter((x) => x && x !== 'unknown').join(' · ') || 'LoRA';
  if (k.kind === 'checkpoint') return `checkpoint · ${k.architecture}`;
  return 'not a model loraflow recognises';
}
