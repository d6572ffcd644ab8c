/**
 * `loraflow merge OUT A B --method ties --rank 32` on two full-width rank-32 FLUX LoRAs (kohya
 * layout, bf16), against the same merge done dense in numpy in the same run (bench/ties_numpy.py:
 * ΔW per module, trim to the top density, sign election, disjoint mean, randomized SVD at the rank
 * with loraflow's oversampling 8 and 2 power iterations). Both run as child processes under
 * /usr/bin/time, so seconds and peak RSS are each program's own. Targets: ≤ 1.5× numpy's time,
 * peak RSS ≤ 2 GB. Generated files are deleted afterwards.
 *
 *   npm run bench:merge-ties [-- --double 19 --single 38 --density 0.5 --backend wasm]
 *
 * `--double` / `--single` cover fewer blocks (still full width) for a quicker run.
 */
import { spawnSync } from 'node:child_process';
import { mkdir, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { writeSampleLora } from '../src/samples/lora-fixtures.ts';

const { values: args } = parseArgs({
  options: {
    double: { type: 'string', default: '19' },
    single: { type: 'string', default: '38' },
    rank: { type: 'string', default: '32' },
    density: { type: 'string', default: '0.5' },
    backend: { type: 'string', default: 'wasm' },
  },
});
const DATA = resolve('bench/data');

/** Runs a command under /usr/bin/time: wall seconds and peak RSS in MB. */
function timed(cmd: string, argv: string[], env: NodeJS.ProcessEnv = process.env): { seconds: number; peakRssMB: number } {
  const r = spawnSync('/usr/bin/time', ['-f', 'TIME %e %M', cmd, ...argv], { encoding: 'utf8', env, stdio: ['ignore', 'pipe', 'pipe'] });
  const m = /TIME ([\d.]+) (\d+)/.exec(r.stderr);
  if (r.status !== 0 || !m) throw new Error(`${cmd} ${argv.join(' ')} failed (${r.status}):\n${r.stderr.slice(-3000)}`);
  return { seconds: Number(m[1]), peakRssMB: Number(m[2]) / 1024 };
}

async function main(): Promise<void> {
  await mkdir(DATA, { recursive: true });
  const p = (n: string) => join(DATA, `ties-${n}.safetensors`);
  const blocks = { double: Number(args.double), single: Number(args.single) };
  try {
    console.log(`generating two rank-${args.rank} full-width FLUX LoRAs (kohya, bf16; ${blocks.double} double + ${blocks.single} single blocks) …`);
    for (const [name, seed] of [['a', 1], ['b', 2]] as const) {
      await writeSampleLora(p(name), { format: 'kohya', rank: Number(args.rank), factor: 1, seed, blocks, dtype: 'BF16', scale: 1 });
    }
    const lf = timed(process.execPath, ['bin/loraflow.js', 'merge', p('out-loraflow'), p('a'), p('b'), '--method', 'ties', '--density', args.density!, '--rank', args.rank!, '--backend', args.backend!]);
    // numpy with this machine's BLAS defaults, not the tuning variables set for other programs
    const env = { ...process.env };
    delete env.OPENBLAS_CORETYPE;
    delete env.OPENBLAS_L2_SIZE;
    const np = timed('python3', ['bench/ties_numpy.py', p('out-numpy'), p('a'), p('b'), args.rank!, args.density!], env);
    console.log(`\nties, density ${args.density}, 2 × rank ${args.rank} → rank ${args.rank}; backend ${args.backend}`);
    console.log(['what', 's', 'vs numpy', 'peak RSS MB'].join('\t'));
    console.log(['numpy (dense, same algorithm)', np.seconds.toFixed(1), '1×', np.peakRssMB.toFixed(0)].join('\t'));
    console.log(['loraflow merge --method ties', lf.seconds.toFixed(1), `${(lf.seconds / np.seconds).toFixed(2)}×`, lf.peakRssMB.toFixed(0)].join('\t'));
    console.log(`targets: ≤ 1.5× numpy (${(lf.seconds / np.seconds).toFixed(2)}×), peak RSS ≤ 2048 MB (${lf.peakRssMB.toFixed(0)} MB)`);
  } finally {
    for (const n of ['a', 'b', 'out-loraflow', 'out-numpy']) await rm(p(n), { force: true });
  }
}

await main();
