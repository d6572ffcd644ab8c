import { relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from '../parse-args.ts';
import { readLora } from '../../formats/read.ts';
import { runRecipe } from '../../graph/execute.ts';
import { readRecipeFile } from '../../graph/recipe.ts';
import { scaleSet } from '../../lora/scale.ts';
import { compareDeltas, referenceDeltas } from '../../samples/reference-delta.ts';
import { registry } from '../../../nodes/index.ts';
import { EXIT_FAILED, EXIT_OK, UsageError, type Command } from '../command.ts';
import { applyRecipe } from '../recipes/apply.ts';
import { humanReporter } from '../recipes/progress.ts';
import { writeSamples } from '../../samples/write-samples.ts';

const MERGE_GRAPH = fileURLToPath(new URL('../../../graphs/merge-aitoolkit-kohya.json', import.meta.url));

/** Checks the merged file against the exact sum of its inputs' deltas (dense, float64). */
async function verifyMerge(dir: string, merged: string): Promise<number> {
  const [a, b, m] = await Promise.all([
    readLora(resolve(dir, 'samples/flux-aitoolkit-lora.safetensors')),
    readLora(resolve(dir, 'samples/flux-kohya-lora.safetensors')),
    readLora(merged),
  ]);
  try {
    const expected = await referenceDeltas({ patches: [...a.patches, ...scaleSet(b, 0.8).set.patches] });
    return compareDeltas(expected, await referenceDeltas(m)).maxRelError;
  } finally {
    await Promise.all([a.close(), b.close(), m.close()]);
  }
}

export const demo: Command = {
  name: 'demo',
  summary: 'Write the sample files, merge an ai-toolkit and a kohya FLUX LoRA, merge the result into the base',
  usage: `loraflow demo [--dir DIR]

The end-to-end tour (what \`npm run demo\` runs), on built-in FLUX-shaped sample data:
  1. writes the samples into DIR/samples (loraflow samples);
  2. runs graphs/merge-aitoolkit-kohya.json: merges an ai-toolkit LoRA and a kohya LoRA (the
     pair sd-scripts' flux_merge_lora.py fails on) into DIR/out/flux-merged.safetensors, and
     checks the result against the exact sum of the inputs' ΔW;
  3. merges that LoRA into the base checkpoint: DIR/out/flux-merged-into-base.safetensors.

Options:
  --dir DIR  where samples/ and out/ go (default: the current directory)`,

  async run(args) {
    const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { dir: { type: 'string' } } });
    if (positionals.length > 0) throw new UsageError('demo takes no arguments (use --dir DIR)');
    const dir = resolve(values.dir ?? '.');
    const say = (s: string) => void process.stdout.write(`${s}\n`);
    const show = (p: string) => relative(process.cwd(), p) || '.';
    const reporter = humanReporter((s) => void process.stderr.write(s), !!process.stderr.isTTY, process.stderr.columns || 100);
    const roots = { loras: dir, checkpoints: dir, output: dir };

    say(`1. Sample data (FLUX.1 key names and block counts, widths ÷64) in ${show(resolve(dir, 'samples'))}:`);
    for (const f of await writeSamples(resolve(dir, 'samples'))) say(`   ${show(f.file)}: ${f.what}`);

    say(`\n2. Recipe ${show(MERGE_GRAPH)}: ai-toolkit LoRA + 0.8 × kohya LoRA, exact concat merge → kohya layout`);
    const merged = await runRecipe(await readRecipeFile(MERGE_GRAPH), { registry, roots, onEvent: (e) => reporter.event(e) });
    reporter.finish();
    if (merged.status !== 'success') return EXIT_FAILED;
    const mergedFile = merged.written[0]!;
    const err = await verifyMerge(dir, mergedFile);
    say(`   wrote ${show(mergedFile)}; ΔW check against the inputs: max relative difference ${err.toExponential(2)}${err < 1e-5 ? ' (exact)' : ''}`);
    if (!(err < 1e-5)) {
      say('   the merged LoRA does not reproduce the inputs\' sum');
      return EXIT_FAILED;
    }

    const out = resolve(dir, 'out/flux-merged-into-base.safetensors');
    say(`\n3. Merge it into the base checkpoint (streamed one tensor at a time) → ${show(out)}`);
    const applied = await runRecipe(
      applyRecipe({ base: 'samples/flux-base.safetensors', output: 'out/flux-merged-into-base.safetensors', loras: [{ path: relative(dir, mergedFile), weight: 1 }] }),
      { registry, roots, onEvent: (e) => reporter.event(e) },
    );
    reporter.finish();
    if (applied.status !== 'success') return EXIT_FAILED;
    const report = applied.outputs.apply as { modules?: number; backend?: string } | undefined;
    say(`   patched ${report?.modules ?? '?'} modules (backend ${report?.backend ?? '?'})`);

    say('\nEvery output carries its recipe: `loraflow recipe out/flux-merged.safetensors` prints it; `loraflow run` on that reproduces the file.');
    say('Next: `loraflow run graphs/<recipe>.json` (see graphs/), `loraflow nodes`, `loraflow --help`.');
    return EXIT_OK;
  },
};
