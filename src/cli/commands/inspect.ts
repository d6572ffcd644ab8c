import { parseArgs } from '../parse-args.ts';
import { formatSummary } from '../../safetensors/summary.ts';
import { formatDetection } from '../../formats/detect.ts';
import { inspectFile } from '../../formats/inspect-file.ts';
import { numberOption } from '../recipes/args.ts';
import { UsageError, type Command } from '../command.ts';
import { writePlot } from '../../report/write-plot.ts';

/** How many tensors `--tensors` lists unless `--limit` says otherwise. */
const LISTED_TENSORS = 1000;

export const inspect: Command = {
  name: 'inspect',
  summary: 'Show what a safetensors file holds (header only: tensors, dtypes, sizes, metadata)',
  usage: `loraflow inspect FILE [--json] [--tensors] [--limit N] [--offset N]
       loraflow inspect FILE [FILE2 …] --plot OUT.svg|OUT.png|OUT.html [--base CHECKPOINT]

Reads and validates the header of FILE (never the tensor data, so a 24 GB checkpoint takes
milliseconds) and prints the tensor count, bytes per dtype and the metadata, with JSON-valued
metadata (recipes, training arguments) expanded.

Options:
  --json        print the summary as one JSON object (includes every tensor's name, dtype, shape)
  --tensors     also list the tensors in the human-readable output (the first ${LISTED_TENSORS})
  --limit N     list at most N tensors (with --json too; the totals still cover every tensor)
  --offset N    start the list at tensor #N (data order)
  --plot OUT    also draw the LoRA's strength by block (‖ΔW‖_F per block id of its family: FLUX
                D00–D18/S00–S37, SDXL IN/MID/OUT, …; rank and alpha of each module on hover) to
                OUT.svg, OUT.png (the same picture at twice its size), or a self-contained
                OUT.html; with several FILEs, side by side with their cosine similarity per block
  --base FILE   with --plot: strength relative to this base checkpoint's weights (‖ΔW‖ / ‖W‖)
  -h, --help    show this help`,

  async run(args) {
    const { values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      options: { json: { type: 'boolean', default: false }, tensors: { type: 'boolean', default: false }, limit: { type: 'string' }, offset: { type: 'string' }, plot: { type: 'string' }, base: { type: 'string' } },
    });
    if (values.base !== undefined && values.plot === undefined) throw new UsageError('--base goes with --plot (strength relative to the base)');
    if (values.plot !== undefined) {
      if (positionals.length === 0) throw new UsageError('inspect --plot takes one or more FILEs');
      const written = await writePlot(positionals, values.plot, { base: values.base });
      if (positionals.length > 1) {
        process.stdout.write(`${written}\n`);
        return 0;
      }
      process.stderr.write(`${written}\n`);
    }
    if (positionals.length !== 1) throw new UsageError(`inspect takes exactly one FILE, got ${positionals.length}`);
    const limit = count('limit', values.limit) ?? (values.json ? undefined : LISTED_TENSORS);
    const offset = count('offset', values.offset) ?? 0;
    const { summary, detection } = await inspectFile(positionals[0]!, { limit, offset });
    if (values.json) process.stdout.write(`${JSON.stringify({ ...summary, detection }, null, 2)}\n`);
    else process.stdout.write(`${formatSummary(summary, { tensors: values.tensors })}\n${formatDetection(detection)}\n`);
    return 0;
  },
};

function count(name: string, value: string | undefined): number | undefined {
  const n = numberOption(value, name, true);
  if (n !== undefined && n < 0) throw new UsageError(`--${name} must be 0 or more, got ${n}`);
  return n;
}
