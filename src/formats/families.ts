/**
 * The registered model families. Adding a family is a folder under `src/formats/` with its
 * family object, and one line here; the order is the order detection signals are tried in.
 */
import type { BlockScheme, Family } from './family.ts';
import type { ModuleTable } from './table/module-table.ts';
import { FLUX } from './flux/family.ts';
import { FLUX2 } from './flux2/family.ts';
import { SD3 } from './sd3/family.ts';
import { SD1, SD2, SDXL } from './sd/family.ts';
import { WAN } from './wan/family.ts';
import { QWEN_IMAGE } from './qwen-image/family.ts';
import { Z_IMAGE } from './z-image/family.ts';
import { HUNYUAN_VIDEO } from './hunyuan-video/family.ts';

// FLUX.2 and HunyuanVideo before FLUX.1: FLUX.1's checkpoint / extraction signals (and, for FLUX.2, metadata hints) also match their files
export const FAMILIES: readonly Family[] = [FLUX2, HUNYUAN_VIDEO, FLUX, SD3, SD1, SD2, SDXL, WAN, QWEN_IMAGE, Z_IMAGE];

const BY_ID = new Map(FAMILIES.map((f) => [f.id, f]));

/** The family of an architecture id; undefined for `unknown` and ids loraflow does not know. */
export function familyOf(id: string): Family | undefined {
  return BY_ID.get(id);
}

/** How messages name a family (`FLUX.1`, `SDXL`, `unrecognised model`). */
export function labelOf(id: string): string {
  return BY_ID.get(id)?.label ?? 'unrecognised model';
}

/** The label with its article ("an SDXL", "a FLUX.1", "an unrecognised model"). */
export function withArticle(id: string): string {
  const label = labelOf(id);
  return `${/^[SU]/i.test(label) ? 'an' : 'a'} ${label}`;
}

/** "FLUX.1, SD1.5, SD2 and SDXL": the families a predicate holds for. */
export function familiesWith(pred: (f: Family) => boolean): string {
  const labels = FAMILIES.filter(pred).map((f) => f.label);
  return labels.length <= 1 ? (labels[0] ?? 'no') : `${labels.slice(0, -1).join(', ')} and ${labels.at(-1)}`;
}

/** Every distinct block scheme (families may share one: SD1.5 and SD2), in registration order. */
export function blockSchemes(): BlockScheme[] {
  return [...new Set(FAMILIES.flatMap((f) => (f.blocks ? [f.blocks] : [])))];
}

/**
 * The first family whose module table knows a canonical target, with the component the table is for.
 * FLUX.1 first: FLUX.2 shares its BFL names, and a target alone (no family) is FLUX.1's.
 */
const TABLE_ORDER = [FLUX, ...FAMILIES.filter((f) => f !== FLUX)];

export function tableFor(target: string): { table: ModuleTable; component: Family['denoiser'] } | undefined {
  const f = TABLE_ORDER.find((x) => x.table?.target(target) !== undefined);
  return f && { table: f.table!, component: f.denoiser };
}
