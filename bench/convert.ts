/**
 * Converting a full-width FLUX LoRA to each writable format, against `cp` of the same file, in one
 * run. Each conversion runs in its own child process so its peak RSS is its own.
 *
 *   npm run bench:convert [-- --rank 32 --from kohya|aitoolkit --dtype bf16 --keep]
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { convertLora, WRITE_FORMATS, type WriteFormat } from '../src/formats/index.ts';
import { parseDType } from '../src/tensor/dtype.ts';
import { writeSampleLora } from '../src/samples/lora-fixtures.ts';

interface ChildResult {
  seconds: number;
  maxRssMb: number;
  tensors: number;
  bytes: number;
  notes: string[];
}

/** Child mode: one conversion, timed, reporting its own peak RSS. */
async function child(input: string, output: string, to: WriteFormat): Promise<void> {
  const t0 = performance.now();
  const report = await convertLora(input, output, { to });
  const seconds = (performance.now() - t0) / 1000;
  const result: ChildResult = { seconds, maxRssMb: process.resourceUsage().maxRSS / 1024, tensors: report.tensorsWritten, bytes: report.bytesWritten, notes: report.notes };
  process.stdout.write(JSON.stringify(result));
}

function runChild(input: string, output: string, to: WriteFormat): ChildResult {
  const r = spawnSync(process.execPath, ['--import', 'tsx', new URL(import.meta.url).pathname, '--child', input, output, to], { encoding: 'utf8', maxBuffer: 1 << 24 });
  if (r.status !== 0) throw new Error(`conversion to ${to} failed:\n${r.stderr}`);
  return JSON.parse(r.stdout) as ChildResult;
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      child: { type: 'boolean', default: false },
      rank: { type: 'string', default: '32' },
      from: { type: 'string', default: 'kohya' },
      dtype: { type: 'string', default: 'bf16' },
      keep: { type: 'boolean', default: false },
    },
  });
  if (values.child) return child(positionals[0]!, positionals[1]!, positionals[2] as WriteFormat);

  const from = values.from === 'aitoolkit' ? 'aitoolkit' : 'kohya';
  const rank = Number(values.rank);
  const dir = await mkdtemp(join(tmpdir(), 'loraflow-bench-convert-'));
  try {
    const src = join(dir, `flux-${from}-r${rank}.safetensors`);
    const tGen = performance.now();
    await writeSampleLora(src, { format: from, rank, factor: 1, dtype: parseDType(values.dtype), seed: 1 });
    const size = (await stat(src)).size;
    console.log(`generated a full-width FLUX.1 ${from} LoRA, rank ${rank}, ${values.dtype}: ${(size / 1e6).toFixed(1)} MB in ${((performance.now() - tGen) / 1000).toFixed(1)} s`);

    // warm the page cache the same way for every contender
    execFileSync('cat', [src], { stdio: ['ignore', 'ignore', 'inherit'] });
    const tCp = performance.now();
    execFileSync('cp', [src, join(dir, 'copy.safetensors')]);
    const cpSeconds = (performance.now() - tCp) / 1000;
    // loraflow's writer fsyncs before it renames the file into place; cp does not
    const tSync = performance.now();
    execFileSync('cp', [src, join(dir, 'copy2.safetensors')]);
    execFileSync('sync', [join(dir, 'copy2.safetensors')]);
    const syncSeconds = (performance.now() - tSync) / 1000;

    const rows: [string, number, number | undefined, string][] = [
      ['cp (baseline)', cpSeconds, undefined, `${(size / 1e6).toFixed(1)} MB`],
      ['cp + sync', syncSeconds, undefined, `${(size / 1e6).toFixed(1)} MB, fsynced like loraflow's writer`],
    ];
    for (const to of WRITE_FORMATS) {
      const out = join(dir, `out.${to}.safetensors`);
      const r = runChild(src, out, to);
      rows.push([`convert → ${to}`, r.seconds, r.maxRssMb, `${r.tensors} tensors, ${(r.bytes / 1e6).toFixed(1)} MB`]);
      await rm(out, { force: true });
    }
    console.log(`\n${'operation'.padEnd(22)}${'seconds'.padStart(9)}${'MB/s in'.padStart(10)}${'× cp'.padStart(8)}${'peak RSS'.padStart(11)}  output`);
    for (const [what, s, rss, out] of rows) {
      console.log(
        `${what.padEnd(22)}${s.toFixed(2).padStart(9)}${(size / 1e6 / s).toFixed(0).padStart(10)}${(s / cpSeconds).toFixed(1).padStart(8)}${(rss === undefined ? '–' : `${rss.toFixed(0)} MB`).padStart(11)}  ${out}`,
      );
    }
  } finally {
    if (values.keep) console.log(`kept ${dir}`);
    else await rm(dir, { recursive: true, force: true });
  }
}

await main();
