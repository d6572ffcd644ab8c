/** Argument helpers shared by the single-operation commands. */
import { parseFormatName } from '../../formats/index.ts';
import { dtypeChoice } from '../../../nodes/params.ts';
import { UsageError } from '../command.ts';

export function formatArg(value: string | undefined, name = 'to'): string | undefined {
  if (value === undefined) return undefined;
  try {
    return parseFormatName(value);
  } catch (e) {
    throw new UsageError(`--${name}: ${(e as Error).message}`);
  }
}

export function dtypeArg(value: string | undefined, name = 'dtype'): string | undefined {
  if (value === undefined) return undefined;
  try {
    return dtypeChoice(value);
  } catch (e) {
    throw new UsageError(`--${name}: ${(e as Error).message}`);
  }
}

export function numberOption(value: string | undefined, name: string, integer = false): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n) || (integer && !Number.isInteger(n))) throw new UsageError(`--${name} must be ${integer ? 'an integer' : 'a number'}, got "${value}"`);
  return n;
}

/** The options of the commands that choose a rank and write a LoRA (merge, extract, resize). */
export const LOW_RANK_OPTIONS = {
  rank: { type: 'string' },
  energy: { type: 'string' },
  to: { type: 'string' },
  dtype: { type: 'string' },
} as const;

type LowRankValues = { rank?: string; energy?: string; to?: string; dtype?: string };

/** Parsed LOW_RANK_OPTIONS; `needsChoice` names the command that requires --rank or --energy. */
export function lowRankArgs(values: LowRankValues, needsChoice?: string): { rank?: number; energy?: number; to?: string; dtype?: string } {
  if (needsChoice && values.rank === undefined && values.energy === undefined) throw new UsageError(`${needsChoice} needs --rank N or --energy F`);
  return { rank: numberOption(values.rank, 'rank', true), energy: numberOption(values.energy, 'energy'), to: formatArg(values.to), dtype: dtypeArg(values.dtype) };
}
