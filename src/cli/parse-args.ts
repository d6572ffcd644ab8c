import { parseArgs as nodeParseArgs, type ParseArgsConfig } from 'node:util';

/** A value that starts with a dash yet is a value: a negative or non-finite number. */
const NEGATIVE_NUMBER = /^-(\d|\.\d|inf|nan)/i;

/**
 * node:util's parseArgs, except that an option taking a value accepts a negative number as the
 * next argument (`--rank -3`), which Node refuses as "ambiguous"; the command's own check then
 * says what is wrong with the number.
 */
export function parseArgs<T extends ParseArgsConfig>(config: T): ReturnType<typeof nodeParseArgs<T>> {
  const options = config.options ?? {};
  const args = [...(config.args ?? process.argv.slice(2))];
  for (let i = 0; i < args.length - 1; i++) {
    const name = /^--([^=]+)$/.exec(args[i]!)?.[1];
    if (name !== undefined && options[name]?.type === 'string' && NEGATIVE_NUMBER.test(args[i + 1]!)) {
      args.splice(i, 2, `--${name}=${args[i + 1]}`);
    }
  }
  return nodeParseArgs({ ...config, args }) as ReturnType<typeof nodeParseArgs<T>>;
}
