/**
 * Name resolution and placement for a family whose denoiser is described by a module table:
 * a module name resolves when the table knows it (either naming, either spelling), and only
 * table or text-encoder names have a place.
 */
import type { Component } from '../../adapter/model.ts';
import type { BlockScheme, Coverage, DenoiserHit, Family, FamilyNaming } from '../family.ts';
import { LoraFormatError } from '../../adapter/errors.ts';
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

/** Counts one table module in inspect's coverage (its block index, its canonical module name). */
export type CoverageAt = (c: Coverage, block: number | undefined, module: string) => void;

const add = <T>(list: T[], v: T) => {
  if (!list.includes(v)) list.push(v);
};

/** Counts a module with the embedders under its own name (also FLUX.2's shared modulations). */
export const countAsEmbedder: CoverageAt = (c, _, module) => add(c.embedders, module);

/** Counts a module with the embedders under a fixed name (HunyuanVideo's token refiner, as `txt_in.individual_token_refiner`). */
export const countAsEmbedderNamed = (name: string): CoverageAt => (c) => add(c.embedders, name);

/** Where the table groups of a double / single block family count: blocks by index, embedders and final layer by name. */
const DOUBLE_SINGLE: Readonly<Record<string, CoverageAt>> = {
  double: (c, block) => add(c.doubleBlocks, block!),
  single: (c, block) => add(c.singleBlocks, block!),
  embedder: countAsEmbedder,
  final: (c, _, module) => add(c.finalLayer, module),
};

/**
 * Inspect's coverage for a family with double and single blocks (FLUX.1, FLUX.2, HunyuanVideo):
 * its table groups counted as FLUX.1's are, `extra` groups where the family says; with `scheme`,
 * transformer modules only and their block ids too. Then one `double blocks …; single blocks …` line.
 */
export function doubleSingleCoverage(extra: Readonly<Record<string, CoverageAt>> = {}, scheme?: () => BlockScheme): Pick<Family, 'coverage' | 'coverageLines'> {
  const groups = { ...DOUBLE_SINGLE, ...extra };
  return {
    coverage: (spec, c) => {
      if (scheme && spec.component !== 'transformer') return false;
      const e = spec.entry;
      const at = e && groups[e.group];
      if (!e || !at) return false;
      at(c, e.block, e.module.original);
      const id = scheme?.().blockOf(spec);
      if (id && !(c.blocks ??= []).includes(id)) c.blocks.push(id);
      return true;
    },
    coverageLines: (c, span) => [`coverage:     double blocks ${span(c.doubleBlocks)}; single blocks ${span(c.singleBlocks)}`],
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
