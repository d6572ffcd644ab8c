import { parseArgs } from '../parse-args.ts';
import { UsageError, type Command } from '../command.ts';
import { familiesWith } from '../../formats/families.ts';
import { writeSamples } from '../../samples/write-samples.ts';

export const samples: Command = {
  name: 'samples',
  summary: 'Write the built-in sample files (LoRAs and checkpoints of every family) the graphs/ recipes use',
  usage: `loraflow samples [DIR]

Writes deterministic sample files into DIR (default: ./samples), for
${familiesWith((f) => Boolean(f.writeSamples || f.samples))}:
LoRAs in several trainers' layouts and a single-file base (for FLUX.1 also a "fine-tune" of it).
Every key name and block count is the real model's; widths are divided by 64 or so, so the recipes
in graphs/ run in seconds:

  loraflow samples && loraflow run graphs/merge-aitoolkit-kohya.json`,

  async run(args) {
    const { positionals } = parseArgs({ args, allowPositionals: true, options: {} });
    if (positionals.length > 1) throw new UsageError(`samples takes at most one DIR, got ${positionals.length}`);
    const files = await writeSamples(positionals[0] ?? 'samples');
    for (const f of files) process.stdout.write(`${f.file}\n    ${f.what}\n`);
    return 0;
  },
};
