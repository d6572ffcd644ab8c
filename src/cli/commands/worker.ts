import { resolve } from 'node:path';
import { DEFAULT_QUEUE_NAME } from '../../../server/queue-protocol.ts';
import { startQueueWorker } from '../../../server/queue-worker.ts';
import { UsageError, type Command } from '../command.ts';
import { STOP_SIGNALS, logLine as log, parseServiceArgs, redisUrlArg } from '../service-options.ts';

function positiveInt(flag: string, text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`${flag} must be a positive integer, got "${text}"`);
  return n;
}

export const worker: Command = {
  name: 'worker',
  summary: 'Execute runs queued by `loraflow serve --queue` (BullMQ on Redis)',
  usage: `loraflow worker --queue redis://HOST:PORT [--concurrency N] [--root NAME=DIR …] [--name NAME] [--backend NAME]

Takes runs from the queue that \`loraflow serve --queue\` fills and executes them with the same
engine as \`loraflow run\`; their events reach the editor through Redis. Start as many workers as
you like, on this machine or others: each host must see the model files under the same roots as
the server (a shared folder), and write outputs where the server's output root points.

A worker killed mid-run leaves no output under its final name: the run goes back to the queue
when its lock expires and another worker runs it again (a run that stalls twice fails, with that
reason). Ctrl+C (or SIGTERM) stops taking runs and lets the running ones finish; a second one
quits at once (those runs are retried elsewhere).

Options:
  --queue URL        Redis server of the queue (required)
  --queue-name NAME  BullMQ queue name (default ${DEFAULT_QUEUE_NAME}); must match the server's
  --concurrency N    runs executed at once, each in its own thread (default 1: merges want the
                     machine's memory)
  --root NAME=DIR    model roots by kind, as \`loraflow serve\` and \`loraflow run\` take them
  --name NAME        shown next to each run in the editor (default HOST:PID)
  --lock-ms N        how long a silent worker keeps its runs before others take them over
                     (default 30000)
  --nodes MODULE     node package to load (default: loraflow's own nodes)
  --backend NAME     compute backend: auto, wasm, webgpu, tensorflow (default: auto)
  -h, --help         show this help`,

  async run(args) {
    const { values, roots, backend } = parseServiceArgs('worker', args, {
      concurrency: { type: 'string', default: '1' },
      name: { type: 'string' },
      'lock-ms': { type: 'string', default: '30000' },
      nodes: { type: 'string' },
    });
    if (values.queue === undefined) throw new UsageError('worker needs --queue redis://HOST:PORT (the one given to `loraflow serve --queue`)');
    const url = redisUrlArg(values.queue);
    const concurrency = positiveInt('--concurrency', values.concurrency);
    const lockMs = positiveInt('--lock-ms', values['lock-ms']);
    const w = await startQueueWorker({
      url,
      queueName: values['queue-name'],
      name: values.name,
      concurrency,
      roots,
      cwd: process.cwd(),
      nodesModule: values.nodes === undefined ? undefined : resolve(values.nodes),
      backend,
      lockMs,
      log: (s) => log(`[${new Date().toISOString()}] ${s}`),
    });
    log(`loraflow worker ${w.name}: waiting for runs on ${url} (queue ${values['queue-name']}, concurrency ${concurrency})`);
    await new Promise<void>((done) => {
      let stops = 0;
      const stop = () => {
        if (++stops > 1) process.exit(130);
        log('stopping: taking no more runs, waiting for the running ones (Ctrl+C again to quit at once)…');
        void w.close().then(done);
      };
      for (const signal of STOP_SIGNALS) process.on(signal, stop);
    });
    return 0;
  },
};
