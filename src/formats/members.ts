/**
 * Files that hold the LoRAs of both members of a model pair, told apart by a key infix
 * (`diffusion_model.transformer_1.blocks.0…` / `…transformer_2.…`, as ai-toolkit writes Wan 2.2's
 * two experts into one file). A set is for one model, so a reader takes one member's keys, with the
 * infix removed, and reports the other member's keys by name; which member is the user's choice
 * when both are there, never a guess.
 */
import { FAMILIES, labelOf } from './families.ts';
import { LoraFormatError } from '../adapter/errors.ts';

export interface MemberSelection {
  family: string;
  member: string;
  /** Names the readers see (infix removed) → the file's names. */
  fileName: Map<string, string>;
  /** Keys of the other member, left out. */
  leftOut: string[];
  /** The members the file holds. */
  present: string[];
}

interface Infix {
  family: string;
  member: string;
  needle: string;
}

const INFIXES: readonly Infix[] = FAMILIES.flatMap((f) => Object.entries(f.memberInfixes ?? {}).map(([member, infix]) => ({ family: f.id, member, needle: `.${infix}.` })));

/** Every member name some family's combined files use, for help texts and checks. */
export const MEMBER_NAMES: readonly string[] = [...new Set(INFIXES.map((i) => i.member))];

function infixOf(name: string): Infix | undefined {
  return INFIXES.find((i) => name.includes(i.needle) || name.startsWith(i.needle.slice(1)));
}

function withoutInfix(name: string, i: Infix): string {
  return name.startsWith(i.needle.slice(1)) ? name.slice(i.needle.length - 1) : name.replace(i.needle, '.');
}

/**
 * The member whose keys a reader takes, or undefined for a file with no member infixes. A file
 * with one member's infixes only is that member's; with both, `member` must say which.
 */
export function selectMember(names: readonly string[], member: string | undefined): MemberSelection | undefined {
  const found = new Map<string, Infix>();
  for (const n of names) {
    const i = infixOf(n);
    if (i) found.set(i.member, i);
  }
  if (member !== undefined && !MEMBER_NAMES.includes(member)) {
    throw new LoraFormatError('BAD_MEMBER', `member "${member}" is not a model-pair member loraflow knows (${MEMBER_NAMES.join(', ') || 'none'})`);
  }
  // a member asked for of a single-member file (one option for every input of a merge) chooses nothing:
  // the file is read as it is, and the pair checks compare what its name or metadata says
  if (found.size === 0) return undefined;
  const present = [...found.keys()];
  const family = labelOf([...found.values()][0]!.family);
  const describe = () => [...found.values()].map((i) => `${i.needle.slice(1, -1)} = ${i.member}`).join(', ');
  const chosen = member ?? (present.length === 1 ? present[0]! : undefined);
  if (chosen === undefined) {
    throw new LoraFormatError('COMBINED_MEMBERS', `holds the LoRAs of both ${family} models of a pair in one file (${describe()}): choose one with member ${present.join(' or ')} (load-lora's member param, --member on the command line)`);
  }
  const infix = found.get(chosen);
  if (!infix) throw new LoraFormatError('BAD_MEMBER', `member ${chosen} was asked for, but the file holds only ${describe()}`);
  const fileName = new Map<string, string>();
  const leftOut: string[] = [];
  for (const n of names) {
    const i = infixOf(n);
    if (i === infix) fileName.set(withoutInfix(n, i), n);
    else if (i) leftOut.push(n);
    else fileName.set(n, n);
  }
  return { family: infix.family, member: chosen, fileName, leftOut, present };
}
