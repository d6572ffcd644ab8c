/**
 * SD1.5, SD2 and SDXL as family objects: LDM/sgm UNet names canonical (either naming and spelling
 * read through the UNet table), CLIP text encoders under Hugging Face names, LoRA Block Weight ids.
 */
import type { BlockScheme, Family } from '../family.ts';
import { blockWeightError } from '../block-scheme.ts';
import { parseSdBlockWeights, sdBlockIds, sdBlockOf } from './blocks.ts';
import { locateOpenClipPatch } from './checkpoint.ts';
import { SD_CHECKPOINT_SIGNALS, SD_METADATA, SD_RULES, SD_SIGNALS, UNET_NAMES, unetCheckpointFamily } from './detection.ts';
import { classifyStableDiffusion } from './architecture.ts';
import { canonicalExtraction } from './extracted.ts';
import { SD_LORA_METADATA, sdModuleName } from './names.ts';
import { sdPlace } from './place.ts';
import type { SdArchitecture } from './unet.ts';

const LABELS: Record<SdArchitecture, string> = { sd1: 'SD1.5', sd2: 'SD2', sdxl: 'SDXL' };

function blockScheme(arch: SdArchitecture, describe: string): BlockScheme {
  return {
    ids: sdBlockIds(arch),
    blockOf: (patch) => sdBlockOf(patch, arch),
    parse: (spec) => {
      const r = parseSdBlockWeights(arch, spec);
      if ('error' in r) throw blockWeightError(r.error);
      return r.weights;
    },
    describe,
  };
}

// SD1.5 and SD2 share one scheme (the same UNet blocks)
const SD1_BLOCKS = blockScheme('sd1', 'SD1.5/SD2 (26 or 17: BASE, IN00–IN11, MID, OUT00–OUT11)');
const SCHEMES: Record<SdArchitecture, BlockScheme> = { sd1: SD1_BLOCKS, sd2: SD1_BLOCKS, sdxl: blockScheme('sdxl', 'SDXL (20 or 12: BASE, IN00–IN08, MID, OUT00–OUT08)') };

function sdFamily(arch: SdArchitecture): Family {
  return {
    id: arch,
    label: LABELS[arch],
    denoiser: 'unet',
    detection: {
      signals: SD_SIGNALS[arch],
      metadata: SD_METADATA[arch],
      rules: SD_RULES,
      denoiserNames: UNET_NAMES,
      refine: (groups, guess, metadata) => {
        const c = classifyStableDiffusion(groups, guess, metadata);
        return { architecture: c.architecture, confidence: c.confidence, evidence: c.evidence, legacyNames: c.legacy };
      },
    },
    checkpoint: {
      signals: SD_CHECKPOINT_SIGNALS[arch],
      fallback: unetCheckpointFamily,
      locator: { locate: locateOpenClipPatch },
      extractionSignal: arch === 'sdxl' ? { component: 'unet', pattern: /^label_emb\./ } : undefined,
      canonicalExtraction: (patches, shapeOf) => canonicalExtraction(arch, patches, shapeOf),
    },
    place: (r) => sdPlace(r, arch),
    naming: {
      fused: (format, component, path) => sdModuleName(format, arch, component, path),
      peft: (component, path) => sdModuleName('diffusers', arch, component, path),
      metadata: SD_LORA_METADATA[arch],
    },
    blocks: SCHEMES[arch],
    coverage: (spec, c) => {
      if (spec.component !== 'unet') return false;
      const id = sdBlockOf(spec, arch) ?? spec.target.split('.')[0]!;
      if (!(c.unetBlocks ??= []).includes(id)) c.unetBlocks.push(id);
      return true;
    },
    coverageLines: (c) => [`coverage:     UNet blocks ${c.unetBlocks?.join(', ') ?? 'none'}`],
  };
}

export const SD1 = sdFamily('sd1');
export const SD2 = sdFamily('sd2');
// imported when asked for: the sample writers import the formats layer this object is part of
export const SDXL: Family = { ...sdFamily('sdxl'), writeSamples: async (dir) => (await import('../../samples/sd-samples.ts')).writeSdSamples(dir) };
