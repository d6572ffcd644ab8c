/**
 * SD1.5 vs SD2 vs SDXL for a LoRA the name signals already place in the Stable Diffusion family.
 * Every UNet module is looked up in each family's table (block layout: SDXL has no attention at
 * level 0, 2- and 10-deep transformer stacks, three up blocks) and its factor shapes are compared
 * with the table's weight shape up to one common width factor, so real files and width-scaled
 * fixtures are judged alike: SD1's cross-attention reads a 768-wide context and projects with 1×1
 * convs, SD2's reads 1024 with Linear projections, SDXL's reads 2048. Text encoders add CLIP-G
 * (SDXL only), depth (OpenCLIP-H: 23 layers) and width (1024 for SD2).
 */
import type { ArchitectureGuess } from '../architecture.ts';
import type { KeyGroups, KeyInfo } from '../keys/group.ts';
import { isResolved } from '../keys/resolve.ts';
import type { Role } from '../keys/roles.ts';
import { isLegacyModuleName } from '../keys/legacy-names.ts';
import { findUnetModule } from './lookup.ts';
import { SD_TEXT_ENCODERS } from './text-encoders.ts';
import { SD_ARCHITECTURES, type SdArchitecture, type UnetModule } from './unet.ts';

const LABEL: Record<SdArchitecture, string> = { sd1: 'SD1.5', sd2: 'SD2', sdxl: 'SDXL' };

const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

/** [out, in·kernel] of a module's ΔW and whether its factors say conv, from the shapes alone. */
function deltaShape(keys: ReadonlyMap<Role, KeyInfo>): { out: number; inFlat: number; conv?: boolean } | undefined {
  const down = keys.get('down');
  const up = keys.get('up');
  if (down && up && down.shape.length >= 2) {
    const mid = keys.get('mid');
    const kernel = mid ? numel(mid.shape.slice(2)) : numel(down.shape.slice(2));
    return { out: up.shape[0]!, inFlat: (numel(down.shape) / down.shape[0]!) * kernel, conv: down.shape.length === 4 };
  }
  const w1a = keys.get('hada_w1_a');
  const w1b = keys.get('hada_w1_b');
  const t1 = keys.get('hada_t1');
  // LoHa: w1a [out, r] @ w1b [r, in·k]; with a Tucker core w1a is [r, out], w1b [r, in] and the kernel is the core's
  if (w1a && w1b && t1) return { out: w1a.shape[1]!, inFlat: w1b.shape[1]! * numel(t1.shape.slice(2)), conv: true };
  if (w1a && w1b && w1a.shape.length === 2) return { out: w1a.shape[0]!, inFlat: numel(w1b.shape) / w1b.shape[0]! };
  const lokr = lokrShape(keys);
  if (lokr) return lokr;
  const diff = keys.get('diff');
  if (diff && diff.shape.length >= 2) return { out: diff.shape[0]!, inFlat: numel(diff.shape) / diff.shape[0]!, conv: diff.shape.length === 4 };
  return undefined;
}

/** LoKr ΔW = kron(w1, w2): rows multiply, flattened inputs multiply (w2 may be whole, a product, or Tucker with w2_a [r, out]). */
function lokrShape(keys: ReadonlyMap<Role, KeyInfo>): { out: number; inFlat: number; conv?: boolean } | undefined {
  const w1 = keys.get('lokr_w1');
  const w1a = keys.get('lokr_w1_a');
  const w1b = keys.get('lokr_w1_b');
  const a = w1 ? [w1.shape[0]!, w1.shape[1]!] : w1a && w1b ? [w1a.shape[0]!, w1b.shape[1]!] : undefined;
  const w2 = keys.get('lokr_w2');
  const w2a = keys.get('lokr_w2_a');
  const w2b = keys.get('lokr_w2_b');
  const t2 = keys.get('lokr_t2');
  let b: { rows: number; inFlat: number; conv?: boolean } | undefined;
  if (w2) b = { rows: w2.shape[0]!, inFlat: numel(w2.shape) / w2.shape[0]!, conv: w2.shape.length === 4 ? true : undefined };
  else if (w2a && w2b && t2) b = { rows: w2a.shape[1]!, inFlat: w2b.shape[1]! * numel(t2.shape.slice(2)), conv: true };
  else if (w2a && w2b) b = { rows: w2a.shape[0]!, inFlat: numel(w2b.shape) / w2b.shape[0]! };
  if (!a || !b) return undefined;
  return { out: a[0]! * b.rows, inFlat: a[1]! * b.inFlat, conv: b.conv };
}

/** The width factor table/file of one module, or NaN when its shapes fit the table at no single factor. */
function widthFactor(m: UnetModule, keys: ReadonlyMap<Role, KeyInfo>): number | undefined {
  const d = deltaShape(keys);
  if (!d || m.kind === 'norm') return undefined;
  const tableIn = numel(m.shape) / m.shape[0]!;
  if (d.conv !== undefined && d.conv !== (m.kind === 'conv')) return NaN;
  const fo = m.shape[0]! / d.out;
  const fi = tableIn / d.inFlat;
  return fo === fi && Number.isInteger(fo) && fo >= 1 ? fo : NaN;
}

interface FamilyFit {
  arch: SdArchitecture;
  found: number;
  missing: string[];
  shaped: number;
  consistent: number;
  factor?: number;
  /** One cross-attention module's widths, for the evidence line. */
  cross?: { name: string; context: number };
}

function fitFamily(arch: SdArchitecture, unet: readonly { name: string; rest: string; keys: ReadonlyMap<Role, KeyInfo> }[]): FamilyFit {
  const fit: FamilyFit = { arch, found: 0, missing: [], shaped: 0, consistent: 0 };
  const factors: number[] = [];
  const modules: { m: UnetModule; name: string; keys: ReadonlyMap<Role, KeyInfo> }[] = [];
  for (const u of unet) {
    const m = findUnetModule(arch, u.rest);
    if (!m) {
      fit.missing.push(u.name);
      continue;
    }
    fit.found++;
    modules.push({ m, name: u.name, keys: u.keys });
    const f = widthFactor(m, u.keys);
    if (f !== undefined) factors.push(f);
  }
  fit.shaped = factors.length;
  const counts = new Map<number, number>();
  for (const f of factors) if (!Number.isNaN(f)) counts.set(f, (counts.get(f) ?? 0) + 1);
  const best = [...counts].sort((a, b) => b[1] - a[1])[0];
  if (best) {
    fit.factor = best[0];
    fit.consistent = best[1];
  }
  const cross = modules.find(({ m, keys }) => /attn2\.to_k$/.test(m.ldm) && keys.get('down'));
  if (cross) fit.cross = { name: cross.name, context: (numel(cross.keys.get('down')!.shape) / cross.keys.get('down')!.shape[0]!) * (fit.factor ?? 1) };
  return fit;
}

const TE_LAYER = /text_model\.encoder\.layers\.(\d+)\./;

export interface SdClassification extends ArchitectureGuess {
  /** Some names use the old diffusers attention-processor layout. */
  legacy: boolean;
}

/** Refines `guess` (already SD family) to the family the keys and shapes fit. */
export function classifyStableDiffusion(groups: KeyGroups, guess: ArchitectureGuess, metadata?: Readonly<Record<string, string>>): SdClassification {
  const evidence = guess.evidence.filter((e) => !/SD2|SDXL|SD1|first UNet level|single CLIP text encoder|cross-attention input width|text encoder layer beyond/.test(e));
  const unet: { name: string; rest: string; keys: ReadonlyMap<Role, KeyInfo> }[] = [];
  let clipG: string | undefined;
  let deepestTe = -1;
  let teWidth: { name: string; d: number } | undefined;
  for (const mod of groups.modules) {
    const r = mod.resolved;
    if (!isResolved(r)) {
      if (r.generic === 'denoiser') unet.push({ name: mod.name, rest: r.rest, keys: mod.keys });
      continue;
    }
    if (r.component === 'clip_g') clipG ??= mod.name;
    if (r.component !== 'clip_l') continue;
    const layer = TE_LAYER.exec(`${r.module}.`);
    if (layer) deepestTe = Math.max(deepestTe, Number(layer[1]));
    const shape = /self_attn\.q_proj$/.test(r.module) ? deltaShape(mod.keys) : undefined;
    if (!teWidth && shape) teWidth = { name: mod.name, d: shape.inFlat };
  }
  const legacy = groups.modules.some((m) => isLegacyModuleName(m.name));
  if (legacy) evidence.push('old diffusers attention-processor names (processor.to_q_lora / lora_linear_layer)');

  const fits = SD_ARCHITECTURES.map((a) => fitFamily(a, unet));
  let alive = [...fits];
  const keep = (pred: (f: FamilyFit) => boolean, why: (winners: FamilyFit[]) => string) => {
    const winners = alive.filter(pred);
    if (winners.length > 0 && winners.length < alive.length) {
      evidence.push(why(winners));
      alive = winners;
    }
  };
  if (unet.length > 0) {
    const fewestMissing = Math.min(...alive.map((f) => f.missing.length));
    keep((f) => f.missing.length === fewestMissing, (w) => {
      const other = fits.find((f) => !w.includes(f))!;
      const name = other.missing.find((n) => !w[0]!.missing.includes(n));
      return `UNet block layout is ${w.map((f) => LABEL[f.arch]).join('/')}'s (${LABEL[other.arch]} has no ${name})`;
    });
    const misfits = (f: FamilyFit) => f.shaped - f.consistent;
    const fewestMisfits = Math.min(...alive.map(misfits));
    keep((f) => misfits(f) === fewestMisfits, (w) => {
      const f = w[0]!;
      const cross = f.cross ? `; cross-attention reads a ${f.cross.context}-wide context (${f.cross.name})` : '';
      return `${f.consistent} of ${f.shaped} UNet module shapes fit ${w.map((x) => LABEL[x.arch]).join('/')}${f.factor && f.factor > 1 ? ` at widths ÷${f.factor}` : ''}${cross}`;
    });
  }
  if (clipG) keep((f) => f.arch === 'sdxl', () => `second text encoder CLIP-G (${clipG})`);
  const te = (arch: SdArchitecture) => SD_TEXT_ENCODERS[arch].find((t) => t.component === 'clip_l')!;
  if (deepestTe >= 0) keep((f) => deepestTe < te(f.arch).layers, (w) => `text encoder layer ${deepestTe} (CLIP-L has 12 layers) fits ${w.map((f) => LABEL[f.arch]).join('/')}`);
  if (teWidth) {
    const factor = alive.find((f) => f.factor !== undefined)?.factor ?? 1;
    const d = teWidth.d * factor;
    keep((f) => te(f.arch).d === d, (w) => `text encoder width ${d} (${teWidth!.name}) fits ${w.map((f) => LABEL[f.arch]).join('/')}`);
  }
  const meta = metadataFamily(metadata);
  if (meta) keep((f) => f.arch === meta.family, () => meta.evidence);
  if (alive.length > 1) {
    const fallback = alive.find((f) => f.arch === guess.architecture) ?? alive[0]!;
    evidence.push(`${alive.map((f) => LABEL[f.arch]).join(' and ')} fit the keys equally; ${LABEL[fallback.arch]} assumed`);
    return { architecture: fallback.arch, confidence: 0.6, evidence, legacy };
  }
  const decided = alive[0]!;
  const strong = decided.found > 0 || clipG !== undefined;
  return { architecture: decided.arch, confidence: strong ? 0.95 : 0.8, evidence, legacy };
}

const METADATA: readonly { key: string; re: RegExp; family: SdArchitecture }[] = [
  { key: 'ss_base_model_version', re: /^sdxl/i, family: 'sdxl' },
  { key: 'ss_base_model_version', re: /^sd_?v?2/i, family: 'sd2' },
  { key: 'ss_base_model_version', re: /^sd_?v?1/i, family: 'sd1' },
  { key: 'ss_v2', re: /^true$/i, family: 'sd2' },
  { key: 'modelspec.architecture', re: /^stable-diffusion-xl/i, family: 'sdxl' },
  { key: 'modelspec.architecture', re: /^stable-diffusion-v2/i, family: 'sd2' },
  { key: 'modelspec.architecture', re: /^stable-diffusion-v1/i, family: 'sd1' },
];

function metadataFamily(metadata?: Readonly<Record<string, string>>): { family: SdArchitecture; evidence: string } | undefined {
  for (const h of METADATA) {
    const v = metadata?.[h.key];
    if (v !== undefined && h.re.test(v)) return { family: h.family, evidence: `metadata ${h.key}=${v}` };
  }
  return undefined;
}
