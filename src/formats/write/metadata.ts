/**
 * Header metadata of a written LoRA: the source's, carried over, with what the conversion changed
 * brought up to date (sd-scripts' ss_network_dim/alpha, modelspec.architecture), stale keys that
 * would now mislead a loader removed, and a `loraflow` provenance entry.
 */
import { readFileSync } from 'node:fs';
import type { AdapterSet } from '../../adapter/model.ts';
import type { WriteFormat } from './names.ts';
import { familyOf } from '../families.ts';
import { VARIANT_METADATA } from '../variants.ts';

let version: string | undefined;
export function loraflowVersion(): string {
  version ??= (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  return version;
}

/** The `software` entry of every file loraflow writes (ai-toolkit writes the same shape). */
export function loraflowSoftware(): string {
  return JSON.stringify({ name: 'loraflow', version: loraflowVersion() });
}

/** Whether a `software` metadata value names loraflow. */
export function isLoraflowSoftware(value: string): boolean {
  try {
    const parsed = JSON.parse(value) as unknown;
    if (parsed && typeof parsed === 'object' && 'name' in parsed) return (parsed as { name: unknown }).name === 'loraflow';
  } catch {
    // a plain string
  }
  return /^loraflow\b/i.test(value.trim());
}

/**
 * What made the files a written LoRA came from: a source's `source_software` when it was itself
 * written by loraflow, else its `software` (ai-toolkit, OneTrainer, …). Kept beside loraflow's own
 * `software` entry, so a converted or merged file does not claim to be the trainer's output.
 */
export function originSoftware(metadata: Readonly<Record<string, string>>): string | undefined {
  if (metadata.source_software !== undefined) return metadata.source_software;
  const sw = metadata.software;
  return sw !== undefined && !isLoraflowSoftware(sw) ? sw : undefined;
}

/** sd-scripts writes one number when every module agrees and "Dynamic" otherwise. */
function uniform(values: readonly number[]): string | undefined {
  if (values.length === 0) return undefined;
  return values.every((v) => v === values[0]) ? String(values[0]) : 'Dynamic';
}

export interface MetadataInput {
  set: AdapterSet;
  format: WriteFormat;
  ranks: number[];
  alphas: number[];
  lycoris: boolean;
  operation: string;
  extra?: Record<string, string>;
}

export function outputMetadata(m: MetadataInput): Record<string, string> {
  const out: Record<string, string> = { ...m.set.metadata };
  // diffusers' PEFT config states lora_alpha/r; the written alphas (or folded factors) now say the scale
  delete out.lora_adapter_metadata;
  const dim = uniform(m.ranks);
  if (dim !== undefined) {
    out.ss_network_dim = dim;
    out.ss_network_alpha = uniform(m.alphas)!;
  }
  const defaults = familyOf(m.set.architecture)!.naming!.metadata;
  const arch = out['modelspec.architecture'];
  if (arch === undefined) out['modelspec.architecture'] = defaults.modelspec;
  else if (!arch.endsWith('/lora')) out['modelspec.architecture'] = `${arch}/lora`;
  if (m.format === 'kohya') {
    const module = out.ss_network_module;
    if (m.lycoris) out.ss_network_module = 'lycoris.kohya';
    else if (module === undefined || !module.startsWith('networks.lora')) out.ss_network_module = defaults.networkModule;
  }
  if (m.format === 'diffusers') out.format ??= 'pt';
  if (m.set.variant) out[VARIANT_METADATA] = m.set.variant;
  // the file is loraflow's output now; where its contents came from stays in source_software
  const origin = originSoftware(out);
  if (origin !== undefined) out.source_software = origin;
  out.software = loraflowSoftware();
  const previous = out.loraflow;
  const provenance: Record<string, unknown> = { version: loraflowVersion(), operation: m.operation, source: { format: m.set.format }, format: m.format };
  if (previous !== undefined) {
    try {
      provenance.previous = JSON.parse(previous);
    } catch {
      provenance.previous = previous;
    }
  }
  out.loraflow = JSON.stringify(provenance);
  return { ...out, ...m.extra };
}
