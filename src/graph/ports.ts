/**
 * Port types are strings: a base name (`LORA`, `MODEL`, `REPORT`, …) optionally refined with what
 * the value is known to be, e.g. `LORA<flux>`. `*` as an input type accepts anything.
 *
 * Compatibility of an output (what a link carries) with an input (what a node accepts):
 *  - base names must be equal (an input may list several accepted types: any one may match);
 *  - an unrefined input (`LORA`) accepts every refinement of its base (`LORA<flux>`, `LORA<sdxl>`);
 *  - a refined input (`LORA<flux>`) accepts the same refinement, and an unrefined output, because
 *    what a file holds is only known once it is read: the node then checks the value at run time
 *    (e.g. a FLUX-only operation refuses an SDXL LoRA naming it);
 *  - two different refinements never connect (`LORA<sdxl>` → `LORA<flux>` is a validation error).
 */

export interface PortType {
  base: string;
  refinement?: string;
}

const PORT_TYPE = /^(?<base>\*|[A-Z][A-Z0-9_]*)(?:<(?<refinement>[a-z0-9][a-z0-9_.-]*)>)?$/;

export function isPortType(text: string): boolean {
  return PORT_TYPE.test(text);
}

export function parsePortType(text: string): PortType {
  const m = PORT_TYPE.exec(text);
  if (!m?.groups) throw new Error(`bad port type "${text}": expected NAME or NAME<refinement>, e.g. LORA or LORA<flux>`);
  const { base, refinement } = m.groups;
  return refinement ? { base: base!, refinement } : { base: base! };
}

function accepts1(input: PortType, output: PortType): boolean {
  if (input.base === '*') return true;
  if (input.base !== output.base) return false;
  if (!input.refinement || !output.refinement) return true;
  return input.refinement === output.refinement;
}

/** Whether an output of type `output` may be linked to an input declared as `input`. */
export function portAccepts(input: string | readonly string[], output: string): boolean {
  const out = parsePortType(output);
  const accepted = typeof input === 'string' ? [input] : input;
  return accepted.some((t) => accepts1(parsePortType(t), out));
}

export function formatPortType(input: string | readonly string[]): string {
  return typeof input === 'string' ? input : input.join(' | ');
}
