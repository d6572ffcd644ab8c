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
