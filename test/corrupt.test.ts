/**
 * Every malformed input gets its own error code and a message naming the file (and the tensor to
 * blame); the CLI answers each with exit code 2, promptly, without a crash.
 */
import { execFile } from 'node:child_process';
import { chmod } from 'node:fs/promises';
import { resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { SafetensorsError } from '../src/safetensors/errors.ts';
import { SafetensorsFile } from '../src/safetensors/reader.ts';
import { CORRUPT_CASES, generateCorpus, type CorruptCase } from './corrupt-corpus.ts';
import { useTempDir } from './helpers/temp-dir.ts';

const ROOT = resolve(import.meta.dirname, '..');
const CLI_TIMEOUT_MS = 30_000;
/**
 * Root reads any file whatever its mode, so as root the permission case runs in a child that
 * loads the code first and then drops to uid/gid 65534 (nobody) before touching the file: the
 * kernel then really refuses the open with EACCES, as it would for a user.
 */
const AS_ROOT = process.getuid?.() === 0;
const NOBODY = 65534;

interface Outcome {
  code?: string;
  message?: string;
  tensor?: string;
  opened?: boolean;
}

interface CliResult {
  status: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

function spawnNode(args: string[]): Promise<CliResult> {
  return new Promise((done) => {
    execFile(process.execPath, args, { cwd: ROOT, timeout: CLI_TIMEOUT_MS, encoding: 'utf8' }, (error, stdout, stderr) => {
      const e = error as (Error & { code?: number | string; killed?: boolean; signal?: string }) | null;
      done({
        status: e ? (typeof e.code === 'number' ? e.code : null) : 0,
        signal: e?.signal ?? null,
        stdout,
        stderr,
        timedOut: Boolean(e?.killed),
      });
    });
  });
}

const PROBE_AS_NOBODY = `
const [file, root] = process.argv.slice(1);
const { main } = await import(new URL('src/cli/main.ts', root));
const { SafetensorsFile } = await import(new URL('src/safetensors/reader.ts', root));
const { commands } = await import(new URL('src/cli/commands/index.ts', root));
await commands.find((c) => c.name === 'inspect').load(); // before dropping privileges: the repo may be unreadable to nobody
process.setgid(${NOBODY});
process.setuid(${NOBODY});
let outcome;
try { await (await SafetensorsFile.open(file)).close(); outcome = { opened: true }; }
catch (e) { outcome = { code: e.code, message: e.message, tensor: e.tensor }; }
process.stdout.write(JSON.stringify(outcome) + '\\n');
process.exitCode = await main(['inspect', file]);
`;

/** Opens as an unprivileged user: returns the reader's outcome and the CLI's result from the same child. */
async function probeAsNobody(path: string): Promise<{ outcome: Outcome; cli: CliResult }> {
  const cli = await spawnNode(['--import', 'tsx', '--input-type=module', '-e', PROBE_AS_NOBODY, path, `file://${ROOT}/`]);
  const [first = '{}', ...rest] = cli.stdout.split('\n');
  return { outcome: JSON.parse(first) as Outcome, cli: { ...cli, stdout: rest.join('\n') } };
}

async function openInProcess(path: string): Promise<Outcome> {
  try {
    await (await SafetensorsFile.open(path)).close();
    return { opened: true };
  } catch (e) {
    if (!(e instanceof SafetensorsError)) throw e;
    return { code: e.code, message: e.message, tensor: e.tensor };
  }
}

const runsAsNobody = (c: CorruptCase) => c.code === 'PERMISSION' && AS_ROOT;

const tmp = useTempDir('loraflow-corrupt-');
let paths: Map<string, string>;
const cli = new Map<string, CliResult>();
const childOutcomes = new Map<string, Outcome>();

beforeAll(async () => {
  await chmod(tmp.dir, 0o755); // the unprivileged probe must be able to reach the files
  paths = await generateCorpus(tmp.dir);
  // Every CLI run up front, a few at a time (each is a node start-up).
  const queue = [...CORRUPT_CASES];
  const worker = async () => {
    for (let c = queue.shift(); c; c = queue.shift()) {
      const path = paths.get(c.id)!;
      if (runsAsNobody(c)) {
        const { outcome, cli: result } = await probeAsNobody(path);
        childOutcomes.set(c.id, outcome);
        cli.set(c.id, result);
      } else {
        cli.set(c.id, await spawnNode(['bin/loraflow.js', 'inspect', path]));
      }
    }
  };
  await Promise.all([worker(), worker(), worker()]);
});

describe('corrupt corpus', () => {
  it('has at least 20 malformed inputs with distinct ids, covering every input error code', () => {
    expect(CORRUPT_CASES.length).toBeGreaterThanOrEqual(20);
    expect(new Set(CORRUPT_CASES.map((c) => c.id)).size).toBe(CORRUPT_CASES.length);
    const covered = new Set(CORRUPT_CASES.map((c) => c.code));
    const inputCodes = [
      'NOT_FOUND', 'NOT_A_FILE', 'PERMISSION', 'EMPTY_FILE', 'HEADER_LENGTH_TRUNCATED', 'HEADER_TOO_LARGE', 'HEADER_PAST_EOF',
      'HEADER_NOT_OBJECT', 'HEADER_NOT_UTF8', 'HEADER_NOT_JSON', 'DUPLICATE_NAME', 'BAD_ENTRY', 'UNKNOWN_DTYPE', 'BAD_SHAPE',
      'BAD_OFFSETS', 'OFFSET_GAP', 'OFFSET_OVERLAP', 'SIZE_MISMATCH', 'MISALIGNED', 'FILE_TOO_SHORT', 'FILE_TOO_LONG', 'BAD_METADATA',
    ];
    expect(inputCodes.filter((code) => !covered.has(code as CorruptCase['code']))).toEqual([]);
  });

  describe.each(CORRUPT_CASES.map((c) => [c.id, c] as const))('%s', (_, c) => {
    it(`reader: ${c.code}, naming the file${c.tensor ? ` and tensor "${c.tensor}"` : ''} (${c.what})`, async () => {
      const path = paths.get(c.id)!;
      const outcome = runsAsNobody(c) ? childOutcomes.get(c.id)! : await openInProcess(path);
      expect(outcome.opened, 'must not open').toBeUndefined();
      expect(outcome.code, outcome.message).toBe(c.code);
      expect(outcome.message!.startsWith(`${path}: `)).toBe(true);
      expect(outcome.tensor).toBe(c.tensor);
      if (c.tensor !== undefined) expect(outcome.message).toContain(`tensor "${c.tensor}"`);
    });

    it('CLI: exit code 2 with the code and file on stderr, no hang, no crash', () => {
      const r = cli.get(c.id)!;
      expect(r.timedOut, 'CLI hung').toBe(false);
      expect(r.signal).toBeNull();
      expect(r.status, r.stderr).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr).toContain(`[${c.code}]`);
      expect(r.stderr).toContain(paths.get(c.id)!);
      expect(r.stderr, 'no stack trace').not.toMatch(/^\s+at /m);
    });
  });

  it('text saved as a model is called out as such', async () => {
    const e = await openInProcess(paths.get('git-lfs-pointer')!);
    expect(e.message).toContain('starts with the text "version "');
    expect(e.message).toContain('Git LFS pointer');
  });
});
