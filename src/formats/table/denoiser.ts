/**
 * Name resolution and placement for a family whose denoiser is described by a module table:
 * a module name resolves when the table knows it (either naming, either spelling), and only
 * table or text-encoder names have a place.
 */
import type { Component } from '../model.ts';
import type { BlockScheme, DenoiserHit, Family, FamilyNaming } from '../family.ts';
import { LoraFormatError } from '../errors.ts';
import type { ModuleTable } from './module-table.ts';
import { fillIndex, type Spelling } from './template.ts';

export function tableDenoiser(table: ModuleTable): (rest: string, spelling: Spelling) => DenoiserHit | undefined {
  return (rest, spelling) => {
    const hit = table.match(rest, spelling);
    if (!hit) return undefined;
    return {
      module: fillIndex(hit.module.original, hit.block),
      kind: hit.module.kind,
      part: hit.part,
      swapHalves: hit.swapHalves,
      entry: { group: hit.module.group, block: hit.block, module: hit.module },
      layout: hit.layout,
      diffusersName: hit.diffusersName,
    };
  };
}

/** A module neither the table nor a text encoder knows has no place (its keys are reported). */
export const placeKnown: NonNullable<Family['place']> = (r) =>
  'module' in r ? { component: r.component, module: r.module, kind: r.kind, part: r.part, swapHalves: r.swapHalves, entry: r.entry } : undefined;

/** Inspect's coverage for a family with one numbered block kind (Wan, Qwen-Image): block ids patched, then a `blocks N (…)` line. */
export function blockCoverage(scheme: () => BlockScheme): Pick<Family, 'coverage' | 'coverageLines'> {
  return {
    coverage: (spec, c) => {
      if (spec.component !== 'transformer') return false;
      const id = scheme().blockOf(spec);
      if (id && !(c.blocks ??= []).includes(id)) c.blocks.push(id);
      return true;
    },
    coverageLines: (c, span) => {
      const numbered = (c.blocks ?? []).filter((id) => /^B\d+$/.test(id));
      const blocks = numbered.map((id) => Number(id.slice(1))).sort((a, b) => a - b);
      const other = (c.blocks ?? []).filter((id) => !numbered.includes(id));
      return [`coverage:     blocks ${span(blocks)}${other.length ? `; ${other.join(', ')}` : ''}`];
    },
  };
}

/**
 * The writable layouts of a family whose LoRAs name the transformer only (its text encoders are
 * not trained by the trainers in circulation): kohya `lora_unet_` + original names with `.` → `_`,
 * comfyui `diffusion_model.` + original names, diffusers `transformer.` + diffusers names.
 */
export function transformerNaming(label: string, metadata: FamilyNaming['metadata']): FamilyNaming {
  const only = (format: string, component: Component, path: string) => {
    if (component !== 'transformer') throw new LoraFormatError('INEXPRESSIBLE', `${path}: ${format} ${label} LoRAs have no place for the ${component} component`, path);
  };
  return {
    fused: (format, component, path) => {
      only(format, component, path);
      return format === 'kohya' ? `lora_unet_${path.replaceAll('.', '_')}` : `diffusion_model.${path}`;
    },
    peft: (component, path) => {
      only('diffusers', component, path);
      return `transformer.${path}`;
    },
    metadata,
  };
}
