/**
 * Module path templates (`double_blocks.{i}.img_attn.qkv`) as patterns, dotted or with `.` → `_`
 * as kohya, OneTrainer and LyCORIS spell them.
 */
export type Spelling = 'dotted' | 'underscore';

export function templateRegex(template: string, spelling: Spelling): RegExp {
  const body = spelling === 'dotted' ? template : template.replaceAll('.', '_');
  const escaped = body.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace('{i}', '(\\d+)');
  return new RegExp(`^${escaped}$`);
}

/** Fills `{i}` in a template. */
export function fillIndex(template: string, index: number | undefined): string {
  return index === undefined ? template : template.replace('{i}', String(index));
}
