/**
 * A transformer family described by a module table, as the one Family object every reader and
 * writer asks: what all such families have alike (a transformer denoiser, names resolved by the
 * table, only known modules placed, the extraction signal on the transformer) is stated here once;
 * each family file states only its own data.
 */
import type { Family } from '../family.ts';
import type { ModuleTable } from './module-table.ts';
import { placeKnown, tableDenoiser } from './denoiser.ts';

export interface TableFamilySpec extends Omit<Family, 'denoiser' | 'checkpoint' | 'table' | 'place'> {
  table: ModuleTable;
  checkpoint: Omit<Family['checkpoint'], 'extractionSignal'> & {
    /** Transformer key pattern that tells an extraction which family a checkpoint pair is. */
    extraction: RegExp;
  };
}

export function tableFamily(spec: TableFamilySpec): Family {
  const { id, label, detection, checkpoint: { signals, extraction, ...checkpoint }, table, ...rest } = spec;
  return {
    id,
    label,
    denoiser: 'transformer',
    detection,
    checkpoint: { signals, extractionSignal: { component: 'transformer', pattern: extraction }, ...checkpoint },
    table,
    resolveDenoiser: tableDenoiser(table),
    place: placeKnown,
    ...rest,
  };
}
