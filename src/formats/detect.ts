/**
 * `detectFormat`: what a LoRA file is, from its key set alone (names, shapes, metadata; optionally
 * the values of its 0-d alphas): layout, architecture, evidence, per-module ranks and alphas, which
 * blocks it covers, and every key it could not place. `assertWritable` is the guard writers
 * use.
 */
import type { AdapterKind, AdapterSet, Architecture, Component, RowSlice } from '../adapter/model.ts';
import type { Coverage } from './family.ts';
import { analyzeKeys } from './analyze.ts';
import { LoraFormatError } from '../adapter/errors.ts';
import { familyOf, labelOf } from './families.ts';
import type { Layout } from './keys/resolve.ts';

export interface ModuleSummary {
  /** The module as the file spells it. */
  module: string;
  component: Component;
  target: string;
  rows?: RowSlice;
  kind: AdapterKind;
  rank?: number;
  alpha?: number;
  dora?: 'in' | 'out';
}

export interface Detection {
  format: string;
  architecture: Architecture;
  /** 0…1: how sure the architecture and layout are, lowered by keys that could not be placed. */
  confidence: number;
  evidence: string[];
  /** Keys per naming layout (more than one: a mixed file). */
  layouts: Partial<Record<Layout, number>>;
  /** Adapter kinds present (`dora` when any module carries a DoRA magnitude). */
  algorithms: string[];
  /** A kohya file trained with sd-scripts' split_qkv (fused rank n·r, alpha not rescaled). */
  splitQkv: boolean;
  modules: ModuleSummary[];
  /** Rank per module (as the file spells it). */
  ranks: Record<string, number>;
  /** Alpha per module, where the file stores one and its value was given. */
  alphas: Record<string, number>;
  coverage: Coverage;
  unknownKeys: string[];
  notes: string[];
}

const TE_INDEX = /(?:layers|block)\.(\d+)\./;

/** Header metadata may arrive with JSON values already expanded (the inspect summary does that). */
function stringMetadata(metadata: Readonly<Record<string, unknown>> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(metadata ?? {})) out[k] = typeof v === 'string' ? v : JSON.stringify(v);
  return out;
}

export function detectFormat(
  tensors: readonly { name: string; shape: readonly number[] }[],
  metadata?: Readonly<Record<string, unknown>>,
  scalars?: ReadonlyMap<string, number>,
): Detection {
  const a = analyzeKeys(tensors, stringMetadata(metadata), scalars);
  const modules: ModuleSummary[] = [];
  const ranks: Record<string, number> = {};
  const alphas: Record<string, number> = {};
  const coverage: Coverage = { doubleBlocks: [], singleBlocks: [], embedders: [], finalLayer: [], textEncoders: {} };
  const add = <T>(list: T[], v: T) => {
    if (!list.includes(v)) list.push(v);
  };
  const kinds = new Set<string>();
  const family = familyOf(a.architecture);
  for (const s of a.plan.specs) {
    const alpha = s.tensors.alpha ? scalars?.get(s.tensors.alpha.name) : undefined;
    const m: ModuleSummary = { module: s.source.module, component: s.component, target: s.target, kind: s.kind };
    if (s.rows) m.rows = s.rows;
    if (s.rank !== undefined) {
      m.rank = s.rank;
      ranks[s.source.module] = s.rank;
    }
    if (alpha !== undefined) {
      m.alpha = alpha;
      alphas[s.source.module] = alpha;
    }
    if (s.doraAxis) {
      m.dora = s.doraAxis;
      kinds.add('dora');
    }
    kinds.add(s.kind);
    modules.push(m);
    if (family?.coverage?.(s, coverage)) continue;
    if (s.component === 'clip_l' || s.component === 'clip_g' || s.component === 't5') {
      const i = TE_INDEX.exec(s.target);
      const list = (coverage.textEncoders[s.component] ??= []);
      if (i) add(list, Number(i[1]));
    }
  }
  coverage.doubleBlocks.sort((x, y) => x - y);
  coverage.singleBlocks.sort((x, y) => x - y);
  for (const list of Object.values(coverage.textEncoders)) list.sort((x, y) => x - y);
  const placed = tensors.length === 0 ? 0 : 1 - a.plan.unknownKeys.length / tensors.length;
  return {
    format: a.format,
    architecture: a.architecture,
    confidence: Math.round(a.architectureConfidence * placed * 100) / 100,
    evidence: a.evidence,
    layouts: a.layouts,
    algorithms: [...kinds].sort(),
    splitQkv: a.splitQkv !== undefined,
    modules,
    ranks,
    alphas,
    coverage,
    unknownKeys: a.plan.unknownKeys,
    notes: a.notes,
  };
}

/** Refuses a set whose family loraflow recognises but cannot write (no module map), or does not recognise. */
export function assertWritable(set: Pick<AdapterSet, 'architecture' | 'format'> & { path?: string }, what: string): void {
  if (familyOf(set.architecture)?.naming) return;
  throw new LoraFormatError(
    'NOT_FLUX',
    `${set.path ? `${set.path}: ` : ''}${what} works on LoRAs of a model loraflow has a module map for; this is a ${set.format} LoRA for ${set.architecture === 'unknown' ? 'an unrecognised model' : `${labelOf(set.architecture)} (recognised, not yet mapped)`}`,
  );
}

/** A short human summary of a detection (what `loraflow inspect` prints). */
export function formatDetection(d: Detection): string {
  const lines: string[] = [];
  const ranks = Object.values(d.ranks);
  const rankText = ranks.length === 0 ? '' : Math.min(...ranks) === Math.max(...ranks) ? `rank ${ranks[0]}` : `ranks ${Math.min(...ranks)}–${Math.max(...ranks)}`;
  lines.push(`format:       ${d.format}${d.splitQkv ? ' (split_qkv)' : ''}`);
  lines.push(`architecture: ${d.architecture} (confidence ${d.confidence})`);
  lines.push(`modules:      ${d.modules.length}${rankText ? `, ${rankText}` : ''}; adapters: ${d.algorithms.join(', ') || 'none'}`);
  const alphas = [...new Set(Object.values(d.alphas))];
  if (alphas.length > 0) lines.push(`alphas:       ${alphas.length <= 4 ? alphas.join(', ') : `${alphas.length} distinct values`}`);
  const c = d.coverage;
  const span = (xs: number[]) => (xs.length === 0 ? 'none' : `${xs.length} (${compactRanges(xs)})`);
  lines.push(...(familyOf(d.architecture)?.coverageLines?.(c, span) ?? []));
  if (c.embedders.length + c.finalLayer.length > 0) lines.push(`              ${[...c.embedders, ...c.finalLayer].join(', ')}`);
  for (const [te, layers] of Object.entries(c.textEncoders)) lines.push(`              text encoder ${te}: ${span(layers)}`);
  for (const e of d.evidence) lines.push(`evidence:     ${e}`);
  for (const n of d.notes) lines.push(`note:         ${n}`);
  if (d.unknownKeys.length > 0) {
    lines.push(`unplaced keys: ${d.unknownKeys.length}`);
    for (const k of d.unknownKeys.slice(0, 20)) lines.push(`  ${k}`);
    if (d.unknownKeys.length > 20) lines.push(`  … ${d.unknownKeys.length - 20} more (see --json)`);
  }
  return lines.join('\n');
}

function compactRanges(xs: readonly number[]): string {
  const out: string[] = [];
  for (let i = 0; i < xs.length; ) {
    let j = i;
    while (j + 1 < xs.length && xs[j + 1] === xs[j]! + 1) j++;
    out.push(i === j ? `${xs[i]}` : `${xs[i]}–${xs[j]}`);
    i = j + 1;
  }
  return out.join(', ');
}
