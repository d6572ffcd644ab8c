/**
 * Block-weight vectors in general: one weight per block id of a family's scheme, and the error
 * every scheme's parser throws. The schemes themselves live with their families.
 */
import { inputError, type LoraflowError } from '../errors.ts';
import type { BlockScheme } from './family.ts';

/** One weight per block id (every id of the scheme present). */
export type BlockWeights = ReadonlyMap<string, number>;

export type BlockWeightSpec = string | readonly number[] | Readonly<Record<string, number>>;

export function blockWeightError(message: string): LoraflowError {
  return inputError('BLOCK_WEIGHTS', `block weights: ${message}`);
}

export const pad2 = (i: number) => String(i).padStart(2, '0');

export interface IndexedSchemeSpec {
  /** Family label for messages (`Wan`). */
  label: string;
  /** Ids before the blocks (`IN`), after them (`OUT`). */
  head: readonly string[];
  tail: readonly string[];
  /** Block id prefix (`B` → B00, B01, …). */
  prefix: string;
  /** Block counts of the family's sizes, largest last (Wan: 30, 40): a full vector may have any. */
  sizes: readonly number[];
  blockOf(patch: { component: string; target: string }): string | undefined;
}

/** A scheme of one block kind numbered from 00 between named head and tail ids (Wan IN, B00–B39, OUT). */
export function indexedBlockScheme(spec: IndexedSchemeSpec): BlockScheme {
  const count = Math.max(...spec.sizes);
  const blocks = (n: number) => Array.from({ length: n }, (_, i) => `${spec.prefix}${pad2(i)}`);
  const ids = [...spec.head, ...blocks(count), ...spec.tail];
  const lengths = spec.sizes.map((n) => n + spec.head.length + spec.tail.length);
  const summary = `${[...spec.head, `${spec.prefix}00–${spec.prefix}${pad2(count - 1)}`, ...spec.tail].join(', ')}`;
  const expand = (token: string): string[] => {
    const id = token.trim().toUpperCase();
    if (ids.includes(id)) return [id];
    const range = new RegExp(`^${spec.prefix}(\\d{1,2})-(?:${spec.prefix})?(\\d{1,2})$`).exec(id);
    if (range) {
      const [lo, hi] = [Number(range[1]), Number(range[2])].sort((a, b) => a - b) as [number, number];
      if (hi >= count) throw blockWeightError(`range ${token.trim()} goes past the last ${spec.label} block (${spec.prefix}${pad2(count - 1)})`);
      return blocks(hi + 1).slice(lo);
    }
    throw blockWeightError(`unknown block id "${token.trim()}" (expected one of ${summary}, or a range like ${spec.prefix}00-${spec.prefix}09)`);
  };
  return {
    ids,
    blockOf: spec.blockOf,
    describe: `${spec.label} (${lengths.join(' or ')}: ${summary})`,
    parse: (input) =>
      parseWeightSpec(input, {
        ids,
        expand,
        fromList: (weights, values) => {
          const n = values.length - spec.head.length - spec.tail.length;
          if (!spec.sizes.includes(n)) throw blockWeightError(`a ${spec.label} weight list has ${lengths.join(' or ')} values (${summary}), got ${values.length}`);
          setInOrder(weights, values, [...spec.head, ...blocks(n), ...spec.tail]);
        },
      }),
  };
}

/** A full vector's values onto the ids of `order`, one by one, each a finite number. */
export function setInOrder(weights: Map<string, number>, values: readonly number[], order: readonly string[]): void {
  values.forEach((v, i) => {
    if (!Number.isFinite(v)) throw blockWeightError(`value ${i + 1} (${order[i]}) is not a finite number`);
    weights.set(order[i]!, v);
  });
}

/** The block of a transformer target in a scheme of one numbered container: its patterns and the model's largest block count. */
export interface NumberedTargets {
  /** Captures the block index (`^blocks\.(\d+)\.`). */
  block: RegExp;
  count: number;
  /** Targets of the head id (`IN`) and of the tail id (`OUT`). */
  head: RegExp;
  tail: RegExp;
}

/** `blockOf` of a scheme of one numbered container (Wan, Qwen-Image, SD3): B00… below the count, IN, OUT; other components are in no block. */
export function numberedBlockOf(t: NumberedTargets): IndexedSchemeSpec['blockOf'] {
  return (patch) => {
    if (patch.component !== 'transformer') return undefined;
    const m = t.block.exec(patch.target);
    if (m) return Number(m[1]) < t.count ? `B${pad2(Number(m[1]))}` : undefined;
    if (t.head.test(patch.target)) return 'IN';
    return t.tail.test(patch.target) ? 'OUT' : undefined;
  };
}

/** The ids of a double / single block scheme (FLUX.2, HunyuanVideo): IN, D00…, S00…, OUT. */
export function doubleSingleIds(double: number, single: number): string[] {
  const numbered = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}${pad2(i)}`);
  return ['IN', ...numbered('D', double), ...numbered('S', single), 'OUT'];
}

/**
 * `D03`, or a range of one kind (`D00-D07`, `S10-S47`) → the ids it covers, in a double / single
 * block scheme of the ids `known`; `label`, `summary` and `example` say the family's in messages.
 */
export function doubleSingleExpand(known: ReadonlySet<string>, label: string, summary: string, example: string): (token: string) => string[] {
  return (token) => {
    const id = token.trim().toUpperCase();
    if (known.has(id)) return [id];
    const range = /^([DS])(\d{1,2})-([DS])?(\d{1,2})$/.exec(id);
    if (range && (!range[3] || range[3] === range[1])) {
      const [lo, hi] = [Number(range[2]), Number(range[4])].sort((a, b) => a - b) as [number, number];
      const out = Array.from({ length: hi - lo + 1 }, (_, i) => `${range[1]}${pad2(lo + i)}`);
      const missing = out.find((x) => !known.has(x));
      if (missing) throw blockWeightError(`range ${token.trim()} goes past the last ${label} block (${missing} is not a ${label} block id)`);
      return out;
    }
    throw blockWeightError(`unknown block id "${token.trim()}" (expected one of ${summary}, or a range like ${example})`);
  };
}

function specNumber(text: string, where: string): number {
  const v = Number(text.trim());
  if (text.trim() === '' || !Number.isFinite(v)) throw blockWeightError(`${where}: "${text}" is not a number`);
  return v;
}

/**
 * The reading every scheme shares: a weight vector (array, or comma/space separated text) goes to
 * `fromList`; `ID=value` pairs (text or an object) go id by id through `expand` (an id or a range
 * → the ids it covers). Ids not named keep weight 1.
 */
export function parseWeightSpec(
  spec: BlockWeightSpec,
  scheme: { ids: readonly string[]; fromList(weights: Map<string, number>, values: readonly number[]): void; expand(token: string): string[] },
): Map<string, number> {
  const weights = new Map(scheme.ids.map((id) => [id, 1]));
  const assign = (token: string, value: number) => {
    for (const id of scheme.expand(token)) weights.set(id, value);
  };
  if (Array.isArray(spec)) scheme.fromList(weights, spec as readonly number[]);
  else if (typeof spec === 'string') {
    const parts = spec.split(/[,\s]+/).filter((p) => p !== '');
    if (parts.length === 0) throw blockWeightError('empty specification');
    if (parts.some((p) => p.includes('='))) {
      for (const part of parts) {
        const eq = part.indexOf('=');
        if (eq < 0) throw blockWeightError(`"${part}" is not an ID=value pair (do not mix a plain list with pairs)`);
        assign(part.slice(0, eq), specNumber(part.slice(eq + 1), part.slice(0, eq).trim()));
      }
    } else scheme.fromList(weights, parts.map((p, i) => specNumber(p, `value ${i + 1}`)));
  } else {
    for (const [token, value] of Object.entries(spec as Readonly<Record<string, number>>)) {
      if (typeof value !== 'number' || !Number.isFinite(value)) throw blockWeightError(`${token}: ${String(value)} is not a finite number`);
      assign(token, value);
    }
  }
  return weights;
}
