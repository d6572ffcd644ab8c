/**
 * Block ids and weight vectors of the LoRA Block Weight extension and sd-scripts' svd_merge_lora
 * for Stable Diffusion (sd-webui-lora-block-weight `scripts/lora_block_weight.py`): BASE (text encoders), INnn = `input_blocks.n`,
 * MID = `middle_block`, OUTnn = `output_blocks.n`. SD1/SD2 have 26 slots (IN00–IN11, OUT00–OUT11),
 * SDXL 20 (IN00–IN08, OUT00–OUT08). The short LoRA vectors (17 for SD1, 12 for SDXL) name only the
 * blocks a plain LoRA has attention in; the slots they leave out keep weight 1, as in sd-scripts.
 */
import type { Patch } from '../../adapter/model.ts';
import type { SdArchitecture } from './unet.ts';

const pad2 = (i: number) => String(i).padStart(2, '0');
const range = (kind: 'IN' | 'OUT', from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => `${kind}${pad2(from + i)}`);

interface Scheme {
  /** Every slot, in vector order of the longest (LyCORIS) vector. */
  slots: readonly string[];
  /** Vector length → the slots it sets, in order. */
  vectors: ReadonlyMap<number, readonly string[]>;
  label: string;
}

const SD1_SLOTS = ['BASE', ...range('IN', 0, 11), 'MID', ...range('OUT', 0, 11)];
const SDXL_SLOTS = ['BASE', ...range('IN', 0, 8), 'MID', ...range('OUT', 0, 8)];

const SD1: Scheme = {
  label: 'SD1.5/SD2',
  slots: SD1_SLOTS,
  vectors: new Map([
    [26, SD1_SLOTS],
    [17, ['BASE', 'IN01', 'IN02', 'IN04', 'IN05', 'IN07', 'IN08', 'MID', ...range('OUT', 3, 11)]],
  ]),
};
const SDXL: Scheme = {
  label: 'SDXL',
  slots: SDXL_SLOTS,
  vectors: new Map([
    [20, SDXL_SLOTS],
    [12, ['BASE', 'IN04', 'IN05', 'IN07', 'IN08', 'MID', ...range('OUT', 0, 5)]],
  ]),
};

const SCHEMES: Readonly<Record<SdArchitecture, Scheme>> = { sd1: SD1, sd2: SD1, sdxl: SDXL };

export function sdBlockIds(arch: SdArchitecture): readonly string[] {
  return SCHEMES[arch].slots;
}

/** Patch → slot: text encoders are BASE; the UNet by its LDM block. Embeddings and the output conv have no slot. */
export function sdBlockOf(patch: Pick<Patch, 'component' | 'target'>, arch: SdArchitecture): string | undefined {
  if (patch.component === 'clip_l' || patch.component === 'clip_g') return 'BASE';
  const m = /^(input_blocks|middle_block|output_blocks)\.(\d+)\./.exec(patch.target);
  if (!m) return undefined;
  const id = m[1] === 'middle_block' ? 'MID' : `${m[1] === 'input_blocks' ? 'IN' : 'OUT'}${pad2(Number(m[2]))}`;
  return SCHEMES[arch].slots.includes(id) ? id : undefined;
}

export type SdBlockWeightSpec = string | readonly number[] | Readonly<Record<string, number>>;

/** "BASE, IN00–IN11, MID, OUT00–OUT11". */
function slotRanges(scheme: Scheme): string {
  const of = (kind: string) => scheme.slots.filter((s) => s.startsWith(kind));
  const span = (ids: string[]) => `${ids[0]}–${ids.at(-1)}`;
  return `BASE, ${span(of('IN'))}, MID, ${span(of('OUT'))}`;
}

/** `IN4`, `in04`, `OUT00-OUT05` → slot ids; an error text when a token names no slot. */
function expand(token: string, scheme: Scheme): string[] | string {
  const id = token.trim().toUpperCase();
  const single = /^(BASE|MID)$|^(IN|OUT)(\d{1,2})$/.exec(id);
  if (single) {
    const norm = single[1] ?? `${single[2]}${pad2(Number(single[3]))}`;
    return scheme.slots.includes(norm) ? [norm] : `${token.trim()} is not an ${scheme.label} block (${slotRanges(scheme)})`;
  }
  const r = /^(IN|OUT)(\d{1,2})-(?:(IN|OUT))?(\d{1,2})$/.exec(id);
  if (r && (!r[3] || r[3] === r[1])) {
    const [lo, hi] = [Number(r[2]), Number(r[4])].sort((a, b) => a - b) as [number, number];
    const ids = range(r[1] as 'IN' | 'OUT', lo, hi);
    const missing = ids.find((x) => !scheme.slots.includes(x));
    return missing ? `range ${token.trim()} goes past the last ${scheme.label} block (${missing})` : ids;
  }
  return `unknown block id "${token.trim()}" (expected BASE, INnn, MID, OUTnn or a range like IN04-IN08)`;
}

/**
 * A weight per slot (all present, default 1) from a vector of one of the family's lengths
 * (list, or comma/space separated text) or `ID=value` pairs; an error text when the spec does not fit.
 */
export function parseSdBlockWeights(arch: SdArchitecture, spec: SdBlockWeightSpec): { weights: Map<string, number> } | { error: string } {
  const scheme = SCHEMES[arch];
  const weights = new Map(scheme.slots.map((id) => [id, 1]));
  const lengths = [...scheme.vectors.keys()].join(' or ');
  const fromList = (values: readonly number[]): string | undefined => {
    const ids = scheme.vectors.get(values.length);
    if (!ids) return `an ${scheme.label} weight list has ${lengths} values, got ${values.length}`;
    const bad = values.findIndex((v) => !Number.isFinite(v));
    if (bad >= 0) return `value ${bad + 1} (${ids[bad]}) is not a finite number`;
    ids.forEach((id, i) => weights.set(id, values[i]!));
    return undefined;
  };
  const assign = (token: string, value: number): string | undefined => {
    const ids = expand(token, scheme);
    if (typeof ids === 'string') return ids;
    if (!Number.isFinite(value)) return `${token.trim()}: ${value} is not a finite number`;
    for (const id of ids) weights.set(id, value);
    return undefined;
  };
  let error: string | undefined;
  if (Array.isArray(spec)) error = fromList(spec as readonly number[]);
  else if (typeof spec === 'string') {
    const parts = spec.split(/[,\s]+/).filter((p) => p !== '');
    if (parts.length === 0) error = 'empty specification';
    else if (parts.some((p) => p.includes('='))) {
      for (const part of parts) {
        const eq = part.indexOf('=');
        const value = Number(part.slice(eq + 1));
        error = eq < 0 ? `"${part}" is not an ID=value pair (do not mix a plain list with pairs)` : part.slice(eq + 1).trim() === '' ? `${part}: no value` : assign(part.slice(0, eq), value);
        if (error) break;
      }
    } else {
      const values = parts.map(Number);
      const bad = parts.findIndex((p, i) => !Number.isFinite(values[i]!) || p.trim() === '');
      error = bad >= 0 ? `value ${bad + 1}: "${parts[bad]}" is not a number` : fromList(values);
    }
  } else {
    for (const [token, value] of Object.entries(spec)) {
      error = typeof value === 'number' ? assign(token, value) : `${token}: ${String(value)} is not a finite number`;
      if (error) break;
    }
  }
  return error ? { error } : { weights };
}
