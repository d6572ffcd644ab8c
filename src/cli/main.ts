/**
 * `loraflow` command line: finds the command in the table, runs it, and turns every outcome into
 * an exit code — 0 ok, 1 the run failed, 2 the input (arguments or files) is invalid.
 */
import { readFileSync } from 'node:fs';
import { SafetensorsError } from '../safetensors/errors.ts';
import { EXIT_CODE, faultOf } from '../errors.ts';
import { EXIT_FAILED, EXIT_INVALID_INPUT, EXIT_OK, type Command } from './command.ts';
import { commands } from './commands/index.ts';
import { installStagingCleanup } from '../safetensors/staging.ts';

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

async function overview(): Promise<string> {
  const all = await Promise.all(commands.map((c) => c.load()));
  const width = Math.max(...all.map((c) => c.name.length));
  return [
    'Usage: loraflow COMMAND [ARGS…]',
    '',
    'Commands:',
    ...all.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    'Run `loraflow COMMAND --help` for a command\'s arguments and options.',
    'Exit codes: 0 ok, 1 the run failed, 2 invalid input.',
  ].join('\n');
}

function describe(error: unknown): string {
  if (error instanceof SafetensorsError) return `[${error.code}] ${error.message}`;
  if (error instanceof Error) return error.message;
  return String(error);
}

export async function main(argv: string[]): Promise<number> {
  installStagingCleanup();
  const [name, ...rest] = argv;
  if (name === undefined) {
    process.stderr.write(`${await overview()}\n`);
    return EXIT_INVALID_INPUT;
  }
  if (name === '--help' || name === '-h' || name === 'help') {
    const target = rest[0] !== undefined ? commands.find((c) => c.name === rest[0]) : undefined;
    if (rest[0] !== undefined && !target) return unknownCommand(rest[0]);
    process.stdout.write(`${target ? (await target.load()).usage : await overview()}\n`);
    return EXIT_OK;
  }
  if (name === '--version' || name === '-v') {
    process.stdout.write(`${version()}\n`);
    return EXIT_OK;
  }
  const entry = commands.find((c) => c.name === name);
  if (!entry) return unknownCommand(name);
  const command: Command = await entry.load();
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(`${command.usage}\n`);
    return EXIT_OK;
  }
  try {
    return await command.run(rest);
  } catch (error) {
    const code = EXIT_CODE[faultOf(error)];
    process.stderr.write(`loraflow ${command.name}: error: ${describe(error)}\n`);
    if (code === EXIT_INVALID_INPUT && !(error instanceof SafetensorsError)) {
      process.stderr.write(`Run \`loraflow ${command.name} --help\` for usage.\n`);
    }
    if (code === EXIT_FAILED && process.env.LORAFLOW_DEBUG && error instanceof Error) process.stderr.write(`${error.stack}\n`);
    return code;
  }
}

async function unknownCommand(name: string): Promise<number> {
  process.stderr.write(`loraflow: unknown command "${name}"\n\n${await overview()}\n`);
  return EXIT_INVALID_INPUT;
}
