/**
 * What the validation steps share: the problems collector and the recipe as it is worked through
 * (entries per node, filled in step by step). Each step reads what the earlier ones left and adds
 * problems; none stops the others, so every problem is reported at once.
 */
import type { z } from 'zod';
import type { NodeDefinition } from '../node.ts';
import type { Problem } from '../problems.ts';
import type { NodeRegistry } from '../registry.ts';

/** One node of the recipe as validation knows it. */
export interface Entry {
  id: string;
  def?: NodeDefinition;
  type: string;
  title?: string;
  v: string;
  params: Record<string, unknown>;
  in: Record<string, string | string[]>;
  validParams?: Record<string, unknown>;
  /** Params with overrides applied, valid or not (paths are checked even when another param is bad). */
  givenParams?: Record<string, unknown>;
}

export interface Validation {
  problems: Problem[];
  registry: NodeRegistry;
  /** The document after migrations. */
  doc: Record<string, unknown>;
  /** The document's nodes as given (ids that failed their schema included). */
  rawNodes: Record<string, unknown>;
  entries: Map<string, Entry>;
  migrations: string[];
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function issueMessage(issue: z.core.$ZodIssue): string {
  return issue.message;
}
