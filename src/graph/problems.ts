/**
 * Validation problems: a recipe is checked as a whole before anything runs, and every problem is
 * reported at once, each naming the node (id and type) and the input, param or expose entry involved.
 */
import { LoraflowError } from '../errors.ts';

export type ProblemCode =
  | 'parse_error'
  | 'bad_format'
  | 'unsupported_schema_version'
  | 'bad_recipe'
  | 'bad_node'
  | 'unknown_node_type'
  | 'node_version'
  | 'bad_param'
  | 'unknown_input'
  | 'missing_input'
  | 'bad_link'
  | 'link_to_missing_node'
  | 'link_to_missing_output'
  | 'type_mismatch'
  | 'cycle'
  | 'bad_expose'
  | 'unknown_override'
  | 'bad_output_target'
  | 'no_outputs'
  | 'bad_path'
  | 'file_not_found'
  | 'output_conflict'
  | 'node_check';

export interface Problem {
  code: ProblemCode;
  message: string;
  nodeId?: string;
  nodeType?: string;
  input?: string;
  param?: string;
  /** Exposed name (`expose` entry or `--set` override). */
  expose?: string;
  /** Where in the document, for problems found by the recipe schema. */
  path?: (string | number)[];
}

export function formatProblem(p: Problem): string {
  const where: string[] = [];
  if (p.nodeId !== undefined) where.push(`node "${p.nodeId}"${p.nodeType ? ` (${p.nodeType})` : ''}`);
  if (p.input !== undefined) where.push(`input "${p.input}"`);
  if (p.param !== undefined) where.push(`param "${p.param}"`);
  if (p.expose !== undefined) where.push(`exposed "${p.expose}"`);
  if (where.length === 0 && p.path && p.path.length > 0) where.push(p.path.join('.'));
  return where.length > 0 ? `${where.join(' ')}: ${p.message}` : p.message;
}

export function formatProblems(problems: readonly Problem[]): string {
  const head = `recipe is invalid (${problems.length} problem${problems.length === 1 ? '' : 's'}):`;
  return [head, ...problems.map((p) => `  - ${formatProblem(p)}`)].join('\n');
}

export class RecipeInvalidError extends LoraflowError {
  constructor(readonly problems: Problem[]) {
    super('input', 'RECIPE_INVALID', formatProblems(problems));
    this.name = 'RecipeInvalidError';
  }
}
