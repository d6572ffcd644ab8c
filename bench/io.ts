/**
 * Safetensors I/O benchmark: generates a BF16 FLUX-shaped checkpoint (≥ 2 GB by default), then
 * measures, in the same run and on the same file:
 *   cp                 the baseline (plain copy, and copy + fsync, since our writer fsyncs before rename),
 *                      and dd (the same bytes through user space, as a writer of new bytes must)
 *   read + decode      SafetensorsFile.readF32 of every tensor (BF16 → F32), into a new array per
 *                      tensor, and into one reused buffer
 *   encode + write     SafetensorsWriter.writeF32 (F32 → BF16, chunked) of the same tensors + commit
 *                      (synced), direct to the device where the filesystem allows it (the writer's
 *                      default) and through the page cache
 * Each phase runs in its own child process so its peak RSS is its own. The data files are deleted
 * at the end.
 *
 *   npm run bench:io -- [--size-gb N] [--reps N] [--dir DIR]
 */
import { spawnSync } from 'node:child_process';
import { mkdir, rm, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { SafetensorsFile } from '../src/safetensors/reader.ts';
import { SafetensorsWriter } from '../src/safetensors/writer.ts';
import { fluxCheckpointShapes, writeFluxCheckpoint, type FluxCheckpointOptions } from '../src/samples/flux-checkpoint.ts';

const HERE = dirname(fileURLToPath(import.meta.url));
const TARGETS = { readOfCp: 0.5, writeOfCp: 0.5, rssMB: 600 };

interface PhaseResult {
  seconds: number;
  /** Time spent only in the measured work (write phase: encode + write + commit, not the source read). */
  measuredSeconds: number;
  bytes: number;
  maxRssMB: number;
  checksum?: number;
  /** Write phases: whether the writer wrote directly to the device. */
  direct?: boolean;
}

// ---------------------------------------------------------------------------------------------
// Child side: one phase, one process.

/** `reuse`: decode every tensor into one buffer sized for the largest (what a streaming consumer can do). */
async function readPhase(src: string, reuse: boolean): Promise<PhaseResult> {
  const t0 = performance.now();
  const f = await SafetensorsFile.open(src);
  const largest = Math.max(...f.tensors.map((t) => t.shape.reduce((a, b) => a * b, 1)));
  const buffer = reuse ? new Float32Array(largest) : undefined;
  let checksum = 0;
  for (const t of f.tensors) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    const v = await f.readF32(t.name, buffer?.subarray(0, n));
    checksum += v[n >>> 1] ?? 0; // keeps the decode observable
  }
  await f.close();
  const seconds = (performance.now() - t0) / 1000;
  return { seconds, measuredSeconds: seconds, bytes: (await stat(src)).size, maxRssMB: process.resourceUsage().maxRSS / 1024, checksum };
}

async function writePhase(src: string, dst: string, useDirect: boolean): Promise<PhaseResult> {
  const t0 = performance.now();
  const f = await SafetensorsFile.open(src);
  // Source tensors come through one reused buffer, as a streaming pipeline would hold them.
  const buffer = new Float32Array(Math.max(...f.tensors.map((t) => t.shape.reduce((a, b) => a * b, 1))));
  let measured = 0;
  const w0 = performance.now();
  const writer = await SafetensorsWriter.create(dst, f.tensors, { metadata: f.metadata as Record<string, string>, order: 'given', direct: useDirect });
  measured += performance.now() - w0;
  for (const t of f.tensors) {
    const values = await f.readF32(t.name, buffer.subarray(0, t.shape.reduce((a, b) => a * b, 1)));
    const s = performance.now();
    await writer.writeF32(t.name, values);
    measured += performance.now() - s;
  }
  const c0 = performance.now();
  const direct = writer.direct;
  await writer.commit();
  measured += performance.now() - c0;
  await f.close();
  return {
    seconds: (performance.now() - t0) / 1000,
    measuredSeconds: measured / 1000,
    bytes: (await stat(dst)).size,
    maxRssMB: process.resourceUsage().maxRSS / 1024,
    direct,
  };
}

// ---------------------------------------------------------------------------------------------
// Parent side.

/** Flushes dirty pages first, so one phase's writeback does not throttle the next one's writes. */
function runChild(args: string[]): PhaseResult {
  spawnSync('sync');
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(HERE, 'io.ts'), ...args], { encoding: 'utf8', maxBuffer: 1 << 20 });
  if (r.status !== 0) throw new Error(`phase ${args.join(' ')} failed:\n${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as PhaseResult;
}

function timeCommand(cmd: string, args: string[]): number {
  spawnSync('sync');
  const t0 = performance.now();
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr}`);
  return (performance.now() - t0) / 1000;
}

/** Block counts whose BF16 checkpoint at full FLUX width reaches `bytes` (embedders always present). */
function layoutFor(bytes: number): FluxCheckpointOptions {
  const size = (o: FluxCheckpointOptions) => fluxCheckpointShapes(o).reduce((s, t) => s + t.shape.reduce((a, b) => a * b, 1) * 2, 0);
  const o = { scale: 1, doubleBlocks: 0, singleBlocks: 0, guidance: true, dtype: 'BF16' as const, seed: 1 };
  while (size(o) < bytes) {
    if (o.doubleBlocks < 19 && (o.doubleBlocks * 2 < o.singleBlocks || o.singleBlocks >= 38)) o.doubleBlocks++;
    else if (o.singleBlocks < 38) o.singleBlocks++;
    else throw new Error(`a FLUX.1 checkpoint is at most ${(size(o) / 1e9).toFixed(1)} GB in BF16`);
  }
  return o;
}

const best = (xs: PhaseResult[]) => xs.reduce((a, b) => (b.measuredSeconds < a.measuredSeconds ? b : a));
const mb = (bytes: number) => bytes / 1e6;

async function parent(sizeGB: number, reps: number, dataDir: string): Promise<void> {
  await mkdir(dataDir, { recursive: true });
  const src = join(dataDir, 'io-source.safetensors');
  const copy = join(dataDir, 'io-cp.safetensors');
  const out = join(dataDir, 'io-written.safetensors');
  const cleanup = async () => Promise.all([src, copy, out].map((p) => rm(p, { force: true })));
  process.on('SIGINT', () => void cleanup().then(() => process.exit(130)));
  try {
    const layout = layoutFor(sizeGB * 1e9);
    const g0 = performance.now();
    const { tensors } = await writeFluxCheckpoint(src, layout);
    const bytes = (await stat(src)).size;
    console.log(
      `source: ${(bytes / 1e9).toFixed(2)} GB BF16, ${tensors} tensors (FLUX.1 widths, ${layout.doubleBlocks} double + ${layout.singleBlocks} single blocks), ` +
        `generated in ${((performance.now() - g0) / 1000).toFixed(1)} s; the file is in the page cache for every phase`,
    );

    const cp: number[] = [];
    const cpSync: number[] = [];
    const ddSync: number[] = [];
    const reads: PhaseResult[] = [];
    const reuses: PhaseResult[] = [];
    const writes: PhaseResult[] = [];
    const cachedWrites: PhaseResult[] = [];
    for (let i = 0; i < reps; i++) {
      cp.push(timeCommand('cp', [src, copy]));
      await rm(copy);
      cpSync.push(timeCommand('sh', ['-c', 'cp "$1" "$2" && sync "$2"', 'sh', src, copy]));
      await rm(copy);
      // cp copies inside the kernel (copy_file_range); dd moves the bytes through user space with
      // read/write, as any writer of new bytes must: the baseline for the same path without encoding.
      ddSync.push(timeCommand('dd', [`if=${src}`, `of=${copy}`, 'bs=4M', 'conv=fsync', 'status=none']));
      await rm(copy);
      reads.push(runChild(['--phase', 'read', '--src', src]));
      reuses.push(runChild(['--phase', 'read-reuse', '--src', src]));
      writes.push(runChild(['--phase', 'write', '--src', src, '--dst', out]));
      if (i === reps - 1 && spawnSync('cmp', ['-s', src, out]).status !== 0) throw new Error('written file differs from the source');
      await rm(out);
      cachedWrites.push(runChild(['--phase', 'write-cached', '--src', src, '--dst', out]));
      if (i === reps - 1 && spawnSync('cmp', ['-s', src, out]).status !== 0) throw new Error('file written through the page cache differs from the source');
      await rm(out);
    }

    const cpBest = Math.min(...cp);
    const cpSyncBest = Math.min(...cpSync);
    const ddSyncBest = Math.min(...ddSync);
    const read = best(reads);
    const reuse = best(reuses);
    const write = best(writes);
    const cachedWrite = best(cachedWrites);
    const rate = (s: number) => mb(bytes) / s;
    const rows: [string, number, string, string, string][] = [
      ['cp', cpBest, '100%', '', '—'],
      ['cp + fsync', cpSyncBest, `${((cpBest / cpSyncBest) * 100).toFixed(0)}%`, '100%', '—'],
      ['dd bs=4M conv=fsync', ddSyncBest, `${((cpBest / ddSyncBest) * 100).toFixed(0)}%`, `${((cpSyncBest / ddSyncBest) * 100).toFixed(0)}%`, '—'],
      ['read + decode BF16→F32 (new arrays)', read.measuredSeconds, `${((cpBest / read.measuredSeconds) * 100).toFixed(0)}%`, '', `${read.maxRssMB.toFixed(0)} MB`],
      ['read + decode BF16→F32 (reused)', reuse.measuredSeconds, `${((cpBest / reuse.measuredSeconds) * 100).toFixed(0)}%`, '', `${reuse.maxRssMB.toFixed(0)} MB`],
      [
        `encode F32→BF16 + write + fsync${write.direct ? ' (direct)' : ''}`,
        write.measuredSeconds,
        `${((cpBest / write.measuredSeconds) * 100).toFixed(0)}%`,
        `${((cpSyncBest / write.measuredSeconds) * 100).toFixed(0)}%`,
        `${write.maxRssMB.toFixed(0)} MB`,
      ],
      [
        '  same through the page cache',
        cachedWrite.measuredSeconds,
        `${((cpBest / cachedWrite.measuredSeconds) * 100).toFixed(0)}%`,
        `${((cpSyncBest / cachedWrite.measuredSeconds) * 100).toFixed(0)}%`,
        `${cachedWrite.maxRssMB.toFixed(0)} MB`,
      ],
    ];
    console.log(`\n${'phase'.padEnd(38)}${'time'.padStart(9)}${'MB/s'.padStart(9)}${'% of cp'.padStart(10)}${'% of cp+fsync'.padStart(15)}${'peak RSS'.padStart(11)}`);
    for (const [name, s, pc, pcs, rss] of rows) {
      console.log(`${name.padEnd(38)}${`${s.toFixed(2)} s`.padStart(9)}${rate(s).toFixed(0).padStart(9)}${pc.padStart(10)}${pcs.padStart(15)}${rss.padStart(11)}`);
    }
    console.log(
      `\n(best of ${reps}; the write phase reads its input tensors from the source into a reused buffer too: ${write.seconds.toFixed(2)} s in all, ` +
        `of which the encode + write + commit above; the written file is byte-identical to the source)`,
    );
    const verdict = (ok: boolean) => (ok ? 'met' : 'MISSED');
    const peak = Math.max(read.maxRssMB, reuse.maxRssMB, write.maxRssMB, cachedWrite.maxRssMB);
    console.log(
      `targets: read + decode ≥ ${TARGETS.readOfCp * 100}% of cp: ${verdict(cpBest / reuse.measuredSeconds >= TARGETS.readOfCp)} ` +
        `(into the caller's buffer, as every operation reads; into a fresh array per tensor: ${((cpBest / read.measuredSeconds) * 100).toFixed(0)}%); ` +
        `write ≥ ${TARGETS.writeOfCp * 100}% of cp: ${verdict(cpBest / write.measuredSeconds >= TARGETS.writeOfCp)}` +
        ` (and of cp + fsync: ${verdict(cpSyncBest / write.measuredSeconds >= TARGETS.writeOfCp)}); ` +
        `peak RSS < ${TARGETS.rssMB} MB: ${verdict(peak < TARGETS.rssMB)} (${peak.toFixed(0)} MB)`,
    );
    console.log(`write against dd + fsync (the same user-space write path, no encoding): ${((ddSyncBest / write.measuredSeconds) * 100).toFixed(0)}%`);
  } finally {
    await cleanup();
  }
}

const { values } = parseArgs({
  options: {
    'size-gb': { type: 'string', default: '2' },
    reps: { type: 'string', default: '2' },
    dir: { type: 'string', default: join(HERE, 'data') },
    phase: { type: 'string' },
    src: { type: 'string' },
    dst: { type: 'string' },
  },
});

if (values.phase === 'read' || values.phase === 'read-reuse') console.log(JSON.stringify(await readPhase(values.src!, values.phase === 'read-reuse')));
else if (values.phase === 'write' || values.phase === 'write-cached') console.log(JSON.stringify(await writePhase(values.src!, values.dst!, values.phase === 'write')));
else {
  const sizeGB = Number(values['size-gb']);
  const reps = Number(values.reps);
  if (!(sizeGB > 0) || !Number.isInteger(reps) || reps < 1) throw new Error('--size-gb must be > 0 and --reps a positive integer');
  await parent(sizeGB, reps, resolve(values.dir!));
}
