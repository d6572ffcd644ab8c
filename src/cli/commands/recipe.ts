import { writeFile } from 'node:fs/promises';
import { parseArgs } from '../parse-args.ts';
import { recipeToJson } from '../../graph/canonical.ts';
import { PROVENANCE_KEY, ProvenanceError, decodeProvenance, storedProvenance, type RecoveredRecipe } from '../../graph/provenance.ts';
import { withSafetensors } from '../../safetensors/reader.ts';
import { UsageError, type Command } from '../command.ts';

/** As decodeProvenance, with zod's issues in the message: a terminal has no `details` field. */
function decodeWithIssues(text: string, file: string): RecoveredRecipe {
  try {
    return decodeProvenance(text, file);
  } catch (e) {
    if (!(e instanceof ProvenanceError) || !e.zodError) throw e;
    const issues = e.zodError.issues.map((i) => `${i.path.join('.') || '(document)'}: ${i.message}`);
    throw new ProvenanceError(`${e.message} (${issues.join('; ')})`);
  }
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
    const text = await withSafetensors(file, async (f) => storedProvenance(f.metadata));
    if (text === undefined) throw new UsageError(`${file}: no embedded recipe (metadata key ${PROVENANCE_KEY}); it was not written by loraflow`);
    const prov = decodeWithIssues(text, file);
    const doc = recipeToJson(prov.recipe);
    if (values.output) await writeFile(values.output, doc);
    else process.stdout.write(doc);
    const set = Object.entries(prov.overrides).map(([k, v]) => `${k}=${JSON.stringify(v)}`);
    process.stderr.write(`recipe of ${file} (written by node "${prov.nodeId ?? '?'}", loraflow ${prov.version ?? '?'})${set.length ? `; overrides applied: ${set.join(', ')}` : ''}${values.output ? `; saved to ${values.output}` : ''}\n`);
    return 0;
  },
};
