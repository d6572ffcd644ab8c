/**
 * A model family (FLUX.1, SDXL, Wan, …) as one data object with the same shape for all: how its
 * LoRAs and checkpoints are recognised, where a LoRA module lands on its base weights, how each
 * writable layout names its modules, its block ids. Readers, writers, detection, apply, extract
 * and block weights ask the family object; none of them names a family. A family lives in its own
 * folder under `src/formats/` and is registered in `families.ts`.
 */
import type { Component, Patch, RowSlice } from '../adapter/model.ts';
import type { KeyGroups, KeyInfo } from './keys/group.ts';
import type { ResolvedModule, UnresolvedModule } from './keys/resolve.ts';
import type { ModuleTable, TableHit } from './table/module-table.ts';
import type { Spelling } from './table/template.ts';

export interface ArchitectureGuess {
  architecture: string;
  confidence: number;
  evidence: string[];
}

/** A key pattern that only this family's LoRAs have, counted over the whole key set. */
export interface KeySignal {
  re: RegExp;
  what: string;
}

/** A metadata value that says the family (`ss_base_model_version`, `modelspec.architecture`). */
export interface MetadataHint {
  key: string;
  re: RegExp;
}

/** What detection rules see: the keys, signal counts per family, the metadata's family. */
export interface DetectionContext {
  tensors: readonly KeyInfo[];
  metadata?: Readonly<Record<string, string>>;
  /** Signal hits per family id. */
  count(family: string): number;
  /** The family with the most signal hits. */
  top?: string;
  /** The family the metadata names, with the evidence line. */
  metadataFamily?: { family: string; evidence: string };
  /** Keys named like the denoiser of families with this kind of denoiser (`unet`: UNet block names). */
  denoiserKeys(kind: Family['denoiser']): number;
  /** Signal hits of the other families with this kind of denoiser. */
  othersOfKind(family: string, kind: Family['denoiser']): number;
  evidence: string[];
  finish(architecture: string, confidence: number): ArchitectureGuess;
}

/** One step of deciding a LoRA's family; all families' rules run by `order`, the first answer wins. */
export interface DetectionRule {
  order: number;
  decide(ctx: DetectionContext): ArchitectureGuess | undefined;
}

/** A base checkpoint's family from its key names (and a few shapes). */
export interface CheckpointSignal {
  re: RegExp;
  what: string;
}

/** Where a LoRA module lands on a base weight (reading). */
export interface Place {
  component: Component;
  /** Canonical module path (target without `.weight` / `.bias` / `.scale`). */
  module: string;
  kind: 'linear' | 'norm';
  /** Rows of the target covered, in units of the hidden width. */
  part?: TableHit['part'];
  swapHalves: boolean;
  /** The family's module table entry, where the target is in one. */
  entry?: TableEntry;
}

export interface TableEntry {
  group: string;
  block?: number;
  module: TableHit['module'];
}

/** A denoiser module name resolved against a family's names. */
export interface DenoiserHit {
  module: string;
  kind: 'linear' | 'norm';
  part?: TableHit['part'];
  swapHalves?: boolean;
  entry?: TableEntry;
  /** The layout this spelling belongs to, where the name says more than its prefix (aliases). */
  layout?: string;
  diffusersName?: boolean;
}

/** Block ids for block weights and filters (LoRA Block Weight / supermerger ids). */
export interface BlockScheme {
  /** Every id, in vector order. */
  ids: readonly string[];
  blockOf(patch: Pick<Patch, 'component' | 'target'>): string | undefined;
  /** A weight vector or ID=value pairs → one weight per id; throws an input error saying why not. */
  parse(spec: string | readonly number[] | Readonly<Record<string, number>>): Map<string, number>;
  /** How messages and the editor name the scheme ("FLUX (61: CLIP, T5, IN, D00–D18, S00–S37, OUT)"). */
  describe: string;
}

/** Writable layouts' module names for this family. */
export interface FamilyNaming {
  /** Module name of a canonical module path in a fused layout (kohya, comfyui). */
  fused(format: 'kohya' | 'comfyui', component: Component, path: string): string;
  /** Module name of a module path in diffusers/PEFT layout (after the table's fused → split mapping). */
  peft(component: Component, path: string): string;
  /** What sd-scripts / SAI model spec call this family's LoRAs. */
  metadata: { modelspec: string; networkModule: string; baseModel?: string };
}

/** How a base checkpoint of the family holds weights not under the plain canonical name (OpenCLIP's fused in_proj). */
export interface CheckpointLocator {
  locate<P extends Pick<Patch, 'component' | 'target' | 'rows'>>(file: { has(key: string): boolean; info(key: string): { shape: readonly number[] } }, patch: P): { key: string; patch: P } | undefined;
}

export interface Family {
  /** The id AdapterSet.architecture holds (`flux`, `sdxl`, `wan`, …). */
  id: string;
  /** How messages name it (`FLUX.1`, `SDXL`). */
  label: string;
  /** The component its diffusion model is. */
  denoiser: 'transformer' | 'unet';
  detection: {
    signals: readonly KeySignal[];
    metadata: readonly MetadataHint[];
    rules?: readonly DetectionRule[];
    /** Names any denoiser of this kind has (UNet block names), for `DetectionContext.denoiserKeys`. */
    denoiserNames?: RegExp;
    /** Refines a guess of this family with the whole grouped key set (SD1 / SD2 / SDXL by block layout and shapes). */
    refine?(groups: KeyGroups, guess: ArchitectureGuess, metadata?: Readonly<Record<string, string>>): ArchitectureGuess & { legacyNames?: boolean };
  };
  checkpoint: {
    signals: readonly CheckpointSignal[];
    /** When no family's signal matched: this family's own look at the keys and shapes. */
    fallback?(keys: readonly KeyInfo[]): { evidence: string; architecture: string } | undefined;
    locator?: CheckpointLocator;
    /** Denoiser key patterns that tell an extraction which family a checkpoint pair is. */
    extractionSignal?: { component: Component; pattern: RegExp };
    /** Canonical patches of an extraction from checkpoint names (text encoders under their own names). */
    canonicalExtraction?(patches: readonly Patch[], shapeOf: (name: string) => readonly number[]): { patches: Patch[]; skipped: { key: string; reason: string }[] };
  };
  /** The base-weight module table (transformer families). */
  table?: ModuleTable;
  /** Rewrites a module name of an older layout to the one it patches (old diffusers processor names). */
  renameModule?(name: string): string;
  /** Resolves a denoiser module name (prefix removed) to its canonical module. */
  resolveDenoiser?(rest: string, spelling: Spelling): DenoiserHit | undefined;
  /** Where a module lands; undefined = it has no place in this family (its keys are reported). */
  place?(r: ResolvedModule | UnresolvedModule): Omit<Place, 'swapHalves'> & { swapHalves?: boolean } | undefined;
  /** A control LoRA widens this module's base weight (BFL `img_in`). */
  controlReshape?: string;
  /** Fused modules of sd-scripts' split_qkv: rank n × the sibling's. */
  splitQkv?: Readonly<Record<string, { n: number; sibling: string }>>;
  /** Writable layouts; absent = the family is recognised but not written. */
  naming?: FamilyNaming;
  blocks?: BlockScheme;
  /** Adds a module to inspect's coverage; true when it did. */
  coverage?(spec: { component: Component; target: string; rows?: RowSlice; entry?: TableEntry }, coverage: Coverage): boolean;
  /** Lines of inspect's coverage summary. */
  coverageLines?(coverage: Coverage, span: (xs: number[]) => string): string[];
  /**
   * Models the family ships as a pair of files with one key set (Wan 2.2's high- and low-noise
   * experts): which member a LoRA or checkpoint is for, from its file name or metadata; never from keys.
   */
  variantOf?(source: { path?: string; metadata?: Readonly<Record<string, string>> }): string | undefined;
  /**
   * The key infix of each member in files that hold both members' LoRAs (ai-toolkit's
   * `diffusion_model.transformer_1.…` / `transformer_2.…`): a reader takes one member's keys, by choice.
   */
  memberInfixes?: Readonly<Record<string, string>>;
  /** Built-in sample data of a table family: its widths shrunk, its real block count. */
  samples?: SampleSpec;
  /** Writes the family's own sample files (families without a sample spec: FLUX.1, SDXL). */
  writeSamples?(dir: string): Promise<SampleFile[]>;
}

/** A file `loraflow samples` wrote, and what it is. */
export interface SampleFile {
  file: string;
  what: string;
}

/** What `loraflow samples` writes for a table family: widths (the table's width names), block count, the modules trainers target. */
export interface SampleSpec {
  widths: Readonly<Record<string, number>>;
  /** Block count, or per table group for families with two block kinds (FLUX.2: double, single). */
  blocks: number | Readonly<Record<string, number>>;
  /** The model's linears carry biases (default true; FLUX.2 has none). */
  biases?: boolean;
  /** Original module templates a sample LoRA patches (the trainers' default targets). */
  targets: readonly string[];
}

/** Which blocks a LoRA covers, as inspect reports it. */
export interface Coverage {
  doubleBlocks: number[];
  singleBlocks: number[];
  embedders: string[];
  finalLayer: string[];
  /** Layers / blocks patched per text encoder. */
  textEncoders: Partial<Record<'clip_l' | 'clip_g' | 't5', number[]>>;
  /** Stable Diffusion: UNet blocks patched, by LoRA Block Weight id (IN04, MID, OUT00, …). */
  unetBlocks?: string[];
  /** Block ids patched (every family with block ids). */
  blocks?: string[];
}

