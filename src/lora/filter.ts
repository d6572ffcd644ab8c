/**
 * Keeping or dropping patches by the block ids of the LoRA's family or by a regular expression on target names.
 * Every removed module is listed in the report.
 */
import type { AdapterSet, Patch } from '../adapter/model.ts';
import { familyOf, labelOf, withArticle } from '../formats/families.ts';
import { inputError, type LoraflowError } from '../errors.ts';

export interface FilterOptions {
  /** Keep only patches in these blocks (the family's block ids, e.g. FLUX `D00`, `S12`, `IN`; SDXL `IN04`, `MID`). */
  keepBlocks?: readonly string[];
  /** Drop patches in these blocks. */
  dropBlocks?: readonly string[];
  /** Keep only patches whose target (e.g. `double_blocks.3.img_attn.qkv.weight`) matches. */
  keep?: RegExp | string;
  /** Drop patches whose target matches. */
  drop?: RegExp | string;
}

export interface FilterReport {
  kept: number;
  /** Every removed module with the rule that removed it. */
  dropped: { module: string; target: string; reason: string }[];
}

export function filterError(message: string): LoraflowError {
  return inputError('FILTER', `filter: ${message}`);
}

function regex(value: RegExp | string | undefined, what: string): RegExp | undefined {
  if (value === undefined) return undefined;
  // A global or sticky regex remembers lastIndex between test() calls; matching needs neither.
  if (value instanceof RegExp) return new RegExp(value.source, value.flags.replace(/[gy]/g, ''));
  try {
    return new RegExp(value);
  } catch (e) {
    throw filterError(`${what} pattern "${value}" is not a valid regular expression (${(e as Error).message})`);
  }
}

/** Block ids of the set's family scheme, upper-cased; refused when the family has none or an id is not in it. */
function blockSet(ids: readonly string[] | undefined, what: string, set: AdapterSet): Set<string> | undefined {
  if (!ids) return undefined;
  const scheme = familyOf(set.architecture)?.blocks;
  if (!scheme) throw filterError(`${what}: ${labelOf(set.architecture)} LoRAs (format ${set.format}) have no block ids; filter by target pattern instead`);
  const upper = ids.map((id) => id.trim().toUpperCase());
  const bad = upper.filter((id) => !scheme.ids.includes(id));
  if (bad.length) throw filterError(`${what}: unknown block id${bad.length > 1 ? 's' : ''} ${bad.join(', ')} for ${withArticle(set.architecture)} LoRA (expected ${scheme.describe})`);
  return new Set(upper);
}

/** The rules in the order they are checked; the first that rejects a patch names the reason. */
type Rule = (patch: Patch, block: string | undefined) => string | undefined;

export function filterPatches(set: AdapterSet, options: FilterOptions): { set: AdapterSet; report: FilterReport } {
  const keepBlocks = blockSet(options.keepBlocks, 'keepBlocks', set);
  const dropBlocks = blockSet(options.dropBlocks, 'dropBlocks', set);
  const keep = regex(options.keep, 'keep');
  const drop = regex(options.drop, 'drop');
  const rules: Rule[] = [
    (_, block) => (keepBlocks && !(block && keepBlocks.has(block)) ? `block ${block ?? '(none)'} not in keepBlocks` : undefined),
    (_, block) => (dropBlocks && block && dropBlocks.has(block) ? `block ${block} in dropBlocks` : undefined),
    (p) => (keep && !keep.test(p.target) ? `target does not match keep /${keep.source}/` : undefined),
    (p) => (drop && drop.test(p.target) ? `target matches drop /${drop.source}/` : undefined),
  ];
  const report: FilterReport = { kept: 0, dropped: [] };
  const patches = set.patches.filter((patch) => {
    const block = familyOf(set.architecture)?.blocks?.blockOf(patch);
    for (const rule of rules) {
      const reason = rule(patch, block);
      if (reason) {
        report.dropped.push({ module: patch.source.module, target: patch.target, reason });
        return false;
      }
    }
    report.kept++;
    return true;
  });
  return { set: { ...set, patches }, report };
}
