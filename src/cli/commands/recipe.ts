import { writeFile } from 'node:fs/promises';
import { parseArgs } from '../parse-args.ts';
import { recipeToJson } from '../../graph/canonical.ts';
import { parseExposePath, setAtPath } from '../../graph/overrides.ts';
import { exposePath, type ExposeEntry } from '../../graph/recipe.ts';
import { withSafetensors } from '../../safetensors/reader.ts';
import { PROVENANCE_KEY } from '../../../nodes/provenance.ts';
import { UsageError, type Command } from '../command.ts';

interface ProvenanceDoc {
  recipe: Record<string, unknown>;
  overrides?: Record<string, unknown>;
  version?: string;
  node?: string;
}

/** The recipe with the run's overrides written into the params they named, so it runs as it ran. */
export function bakeOverrides(recipe: Record<string, unknown>, overrides: Record<string, unknown>): Record<string, unknown> {
  const expose = (recipe.expose ?? {}) as Record<string, ExposeEntry>;
  const nodes = { ...(recipe.nodes as Record<string, Record<string, unknown>>) };
  for (const [name, value] of Object.entries(overrides)) {
    const entry = expose[name];
    const parts = entry ? parseExposePath(exposePath(entry)) : undefined;
    if (!parts || !nodes[parts.nodeId]) throw new Error(`provenance names override "${name}", which the embedded recipe does not expose`);
    const n = nodes[parts.nodeId]!;
    nodes[parts.nodeId] = { ...n, params: setAtPath((n.params ?? {}) as Record<string, unknown>, [parts.param, ...parts.rest], value) };
  }
  return { ...recipe, nodes };
}

export const recipe: Command = {
  name: 'recipe',
  summary: 'Recover the recipe a loraflow output file was made with',
  usage: `loraflow recipe FILE [-o OUT]

Every file loraflow saves carries the recipe that made it (metadata key ${PROVENANCE_KEY}, with
the --set overrides and the loraflow version). This writes it back out as a runnable recipe,
overrides applied, to OUT (or stdout). \`loraflow run OUT\` then makes the same file again.

Options:
  -o, --output OUT  write the recipe to OUT instead of stdout`,

  async run(args) {
    const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { output: { type: 'string', short: 'o' } } });
    if (positionals.length !== 1) throw new UsageError(`recipe takes exactly one FILE, got ${positionals.length}`);
    const file = positionals[0]!;
    const text = await withSafetensors(file, async (f) => f.metadata?.[PROVENANCE_KEY]);
    if (text === undefined) throw new UsageError(`${file}: no embedded recipe (metadata key ${PROVENANCE_KEY}); it was not written by loraflow`);
    let prov: ProvenanceDoc;
    try {
      prov = JSON.parse(text) as ProvenanceDoc;
      if (typeof prov.recipe !== 'object' || prov.recipe === null) throw new Error('no recipe object');
    } catch (e) {
      throw new UsageError(`${file}: metadata ${PROVENANCE_KEY} is not a loraflow provenance record (${(e as Error).message})`);
    }
    const overrides = prov.overrides ?? {};
    const doc = recipeToJson(bakeOverrides(prov.recipe, overrides));
    if (values.output) await writeFile(values.output, doc);
    else process.stdout.write(doc);
    const set = Object.entries(overrides).map(([k, v]) => `${k}=${JSON.stringify(v)}`);
    process.stderr.write(`recipe of ${file} (written by node "${prov.node ?? '?'}", loraflow ${prov.version ?? '?'})${set.length ? `; overrides applied: ${set.join(', ')}` : ''}${values.output ? `; saved to ${values.output}` : ''}\n`);
    return 0;
  },
};
