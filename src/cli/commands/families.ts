import { parseArgs } from '../parse-args.ts';
import { FAMILIES } from '../../formats/families.ts';
import type { Family } from '../../formats/family.ts';
import { WRITE_FORMATS } from '../../formats/write/names.ts';
import type { Command } from '../command.ts';

/** What one family reads, writes and how it is told apart, as the family object says. */
function summary(f: Family) {
  return {
    id: f.id,
    label: f.label,
    denoiser: f.denoiser,
    moduleTable: f.table ? f.table.modules.length : undefined,
    reads: f.place ? 'every layout (kohya, diffusers/PEFT, ComfyUI, LyCORIS, …) onto its own names' : 'recognised only: targets keep the file names',
    writes: f.naming ? [...WRITE_FORMATS] : [],
    blockIds: f.blocks?.describe,
    loraSignals: f.detection.signals.map((s) => s.what),
    checkpointSignals: f.checkpoint.signals.map((s) => s.what),
    samples: f.samples ? `${f.id}-kohya-lora, ${f.id}-diffusers-lora, ${f.id}-base` : undefined,
  };
}

export const families: Command = {
  name: 'families',
  summary: 'List the model families loraflow knows: what it reads, writes, their block ids',
  usage: `loraflow families [--json]

One line per registered model family (src/formats/families.ts): its id (what inspect calls the
architecture), the layouts it writes, its block ids for block weights and filters, and the key
names that tell its LoRAs and checkpoints apart.`,

  async run(args) {
    const { values } = parseArgs({ args, options: { json: { type: 'boolean', default: false } } });
    const all = FAMILIES.map(summary);
    if (values.json) {
      process.stdout.write(`${JSON.stringify(all, null, 2)}\n`);
      return 0;
    }
    const lines: string[] = [];
    const width = Math.max(...all.map((f) => f.id.length)) + 1;
    for (const f of all) {
      lines.push(`${f.id.padEnd(width)} ${f.label}  (${f.denoiser}${f.moduleTable ? `, ${f.moduleTable} module templates` : ''})`);
      lines.push(`  reads       ${f.reads}`);
      lines.push(`  writes      ${f.writes.length ? f.writes.join(', ') : 'nothing (refused by name)'}`);
      if (f.blockIds) lines.push(`  block ids   ${f.blockIds}`);
      lines.push(`  LoRA keys   ${f.loraSignals.join('; ') || '(by its refinement of a family group)'}`);
      lines.push(`  checkpoints ${f.checkpointSignals.join('; ')}`);
      if (f.samples) lines.push(`  samples     ${f.samples}`);
    }
    process.stdout.write(`${lines.join('\n')}\n`);
    return 0;
  },
};
