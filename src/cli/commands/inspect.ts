import { parseArgs } from '../parse-args.ts';
import { withSafetensors } from '../../safetensors/reader.ts';
import { formatSummary, summarizeSafetensors } from '../../safetensors/summary.ts';
import { formatDetection } from '../../formats/detect.ts';
import { detectFile } from '../../formats/inspect.ts';
import { UsageError, type Command } from '../command.ts';

export const inspect: Command = {
  name: 'inspect',
  summary: 'Show what a safetensors file holds (header only: tensors, dtypes, sizes, metadata)',
  usage: `loraflow inspect FILE [--json] [--tensors]

Reads and validates the header of FILE (never the tensor data, so a 24 GB checkpoint takes
milliseconds) and prints the tensor count, bytes per dtype and the metadata, with JSON-valued
metadata (recipes, training arguments) expanded.

Options:
  --json      print the summary as one JSON object (includes every tensor's name, dtype, shape)
  --tensors   also list every tensor in the human-readable output
  -h, --help  show this help`,

  async run(args) {
    const { values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      options: { json: { type: 'boolean', default: false }, tensors: { type: 'boolean', default: false } },
    });
    if (positionals.length !== 1) throw new UsageError(`inspect takes exactly one FILE, got ${positionals.length}`);
    const { summary, detection } = await withSafetensors(positionals[0]!, async (f) => ({ summary: summarizeSafetensors(f), detection: await detectFile(f) }));
    if (values.json) process.stdout.write(`${JSON.stringify({ ...summary, detection }, null, 2)}\n`);
    else process.stdout.write(`${formatSummary(summary, { tensors: values.tensors })}\n${formatDetection(detection)}\n`);
    return 0;
  },
};
