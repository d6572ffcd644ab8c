import { startServer } from '../../../server/app.ts';
import { DEFAULT_HOST, DEFAULT_PORT, PublicBindError } from '../../../server/bind.ts';
import { isLoopbackHost } from '../../../server/origin.ts';
import { DEFAULT_QUEUE_NAME } from '../../../server/queue-protocol.ts';
import { UsageError, type Command } from '../command.ts';
import { STOP_SIGNALS, logLine as log, parseServiceArgs, redisUrlArg } from '../service-options.ts';

export const serve: Command = {
  name: 'serve',
  summary: 'Start the visual editor and HTTP/WebSocket API (loopback only by default)',
  usage: `loraflow serve [--host 127.0.0.1] [--port 8188] [--root NAME=DIR …] [--recipes DIR] [--allow-public] [--backend NAME]
                      [--queue redis://HOST:PORT [--queue-name NAME]]

Serves the node editor at http://HOST:PORT/ and the API under /api (node definitions, recipes,
runs, file browser, header inspection) with live run events on ws://HOST:PORT/ws. Runs are queued
and executed one at a time, off the server's event loop, by the same engine as \`loraflow run\`;
a recipe saved or downloaded from the editor runs headless unchanged. With --queue, runs (and each
point of a sweep) are enqueued on Redis instead and executed by \`loraflow worker\` processes, here
or on other hosts that see the same model folders; their events still reach the editor live.

Options:
  --host HOST       address to listen on (default ${DEFAULT_HOST}); a non-loopback address
                    needs --allow-public
  --port N          port (default ${DEFAULT_PORT}; 0 picks a free one)
  --root NAME=DIR   model root for file params of kind NAME (loras, checkpoints, output, …),
                    as \`loraflow run\` takes it; repeatable; kinds without a root use the current
                    directory. The file browser (first DIR of a kind) and every path in a run stay
                    inside these roots.
  --recipes DIR     folder of saved recipes (default ./recipes)
  --allow-public    allow listening on a non-loopback address (anyone who can reach it can run
                    recipes and read headers under the roots)
  --backend NAME    compute backend for runs: auto, wasm, webgpu, tensorflow (default: auto)
  --queue URL       enqueue runs on this Redis server (BullMQ) for \`loraflow worker --queue URL\`
                    instead of running them in this process
  --queue-name NAME BullMQ queue name (default ${DEFAULT_QUEUE_NAME}); workers must use the same
  -h, --help        show this help`,

  async run(args) {
    const { values, roots, backend } = parseServiceArgs('serve', args, {
      host: { type: 'string', default: DEFAULT_HOST },
      port: { type: 'string', default: String(DEFAULT_PORT) },
      recipes: { type: 'string', default: 'recipes' },
      'allow-public': { type: 'boolean', default: false },
    });
    const port = Number(values.port);
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--port must be an integer 0–65535, got "${values.port}"`);
    const allowPublic = values['allow-public'];
    if (!allowPublic && !isLoopbackHost(values.host)) throw new UsageError(new PublicBindError(values.host).message);

    const queue = values.queue === undefined ? undefined : { url: redisUrlArg(values.queue), name: values['queue-name'] };

    const server = await startServer({ host: values.host, port, roots, recipesDir: values.recipes, allowPublic, backend, queue });
    if (!isLoopbackHost(server.host)) {
      log(`WARNING: listening on ${server.host}, which is not loopback. Anyone who can reach this address can run recipes, read`);
      log('         safetensors headers and write outputs under the configured roots. There is no authentication.');
    }
    log(`loraflow editor: ${server.url}/`);
    for (const [kind, dir] of Object.entries(server.engine.browseRoots())) log(`  root ${kind.padEnd(12)} ${dir}`);
    if (queue) log(`  runs go to ${queue.url} (queue ${queue.name}): start workers with \`loraflow worker --queue ${queue.url}\``);
    log('Press Ctrl+C to stop.');

    await new Promise<void>((resolve) => {
      const stop = () => {
        for (const signal of STOP_SIGNALS) process.off(signal, stop);
        log('stopping: cancelling runs…');
        void server.close().then(resolve);
      };
      for (const signal of STOP_SIGNALS) process.on(signal, stop);
    });
    return 0;
  },
};
