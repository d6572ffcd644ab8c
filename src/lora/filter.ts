/**
 * Keeping or dropping patches by FLUX block id or by a regular expression on target names.
 * Every removed module is listed in the report.
 */
import type { AdapterSet, Patch } from '../formats/model.ts';
import { blockOf, isFluxBlockId } from './blocks.ts';
import { inputError, type LoraflowError } from '../errors.ts';

export interface FilterOptions {
  /** Keep only patches in these blocks (ids as in FLUX_BLOCK_IDS, e.g. `D00`, `S12`, `IN`). */
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

function blockSet(ids: readonly string[] | undefined, what: string): Set<string> | undefined {
  if (!ids) return undefined;
  const upper = ids.map((id) => id.trim().toUpperCase());
  const bad = upper.filter((id) => !isFluxBlockId(id));
  if (bad.length) throw filterError(`${what}: unknown block id${bad.length > 1 ? 's' : ''} ${bad.join(', ')} (expected CLIP, T5, IN, D00–D18, S00–S37, OUT)`);
  return new Set(upper);
}

/** The rules in the order they are checked; the first that rejects a patch names the reason. */
type Rule = (patch: Patch, block: string | undefined) => string | undefined;

export function filterPatches(set: AdapterSet, options: FilterOptions): { set: AdapterSet; report: FilterReport } {
  const keepBlocks = blockSet(options.keepBlocks, 'keepBlocks');
  const dropBlocks = blockSet(options.dropBlocks, 'dropBlocks');
  const keep = regex(options.keep, 'keep');
  const drop = regex(options.drop, 'drop');
  if ((keepBlocks || dropBlocks) && set.architecture !== 'flux') {
    throw filterError(`block ids are FLUX blocks; this LoRA is ${set.architecture} (format ${set.format}); filter by target pattern instead`);
  }
  const rules: Rule[] = [
    (_, block) => (keepBlocks && !(block && keepBlocks.has(block)) ? `block ${block ?? '(none)'} not in keepBlocks` : undefined),
    (_, block) => (dropBlocks && block && dropBlocks.has(block) ? `block ${block} in dropBlocks` : undefined),
    (p) => (keep && !keep.test(p.target) ? `target does not match keep /${keep.source}/` : undefined),
    (p) => (drop && drop.test(p.target) ? `target matches drop /${drop.source}/` : undefined),
  ];
  const report: FilterReport = { kept: 0, dropped: [] };
  const patches = set.patches.filter((patch) => {
    const block = blockOf(patch);
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
