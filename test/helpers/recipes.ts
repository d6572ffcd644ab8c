/** Running recipes with the real node types in tests: graphs/ by name, and runs that must succeed. */
import { fileURLToPath } from 'node:url';
import { registry } from '../../nodes/index.ts';
import { readRecipeFile, runRecipe, type RunEvent, type RunOptions, type RunOutcome } from '../../src/graph/index.ts';

/** A recipe from graphs/, by file name without `.json`. */
export const graph = (name: string): Promise<unknown> =>
  readRecipeFile(fileURLToPath(new URL(`../../graphs/${name}.json`, import.meta.url)));

/**
 * Runs a recipe with the node registry of nodes/ (unless told otherwise), collecting its events;
 * any status but success throws with the run's error or validation problems, so a test's own
 * assertions only ever see finished runs.
 */
export async function runOk(doc: unknown, opts: Partial<RunOptions> & { cwd: string }): Promise<{ result: RunOutcome; events: RunEvent[] }> {
  const events: RunEvent[] = [];
  const result = await runRecipe(doc, {
    registry,
    ...opts,
    onEvent: (e) => {
      events.push(e);
      opts.onEvent?.(e);
    },
  });
  if (result.status !== 'success') throw new Error(`run ${result.status}: ${JSON.stringify(result.error ?? result.problems)}`);
  return { result, events };
}
